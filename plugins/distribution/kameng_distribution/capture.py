"""Remembering who sent a visitor: ``?ref=CODE`` on any page, or the
landing link ``/-/distribution/r/CODE``, sets the cookie ``kameng_ref``
(30 days, HttpOnly, SameSite=Lax, Secure over HTTPS). The register hook
reads it. The latest valid link a visitor followed wins.

The ``?ref=`` capture is a ``NewResponse`` subscriber. It runs after the
request's transaction has ended (and for pages the page cache served), so
it asks the database on a short session of its own, and only when a
``ref`` parameter is present.
"""
from __future__ import annotations

import logging

from pyramid.settings import asbool
from sqlalchemy import select

from kameng.pluginhost import PluginState

from kameng_distribution import members
from kameng_distribution.config import PLUGIN_ID
from kameng_distribution.models import Member
from kameng_distribution.service import COOKIE, COOKIE_DAYS

log = logging.getLogger(__name__)


def set_cookie(request, response, code: str) -> None:
    secure = request.scheme == "https" or asbool(request.registry.settings.get("kameng.secure_cookies", False))
    response.set_cookie(COOKIE, code, max_age=COOKIE_DAYS * 86400, path="/", httponly=True, samesite="Lax",
                        secure=secure)


def _enabled(request, db) -> bool:
    host = request.registry["kameng.plugins"]
    plugin = host.plugins.get(PLUGIN_ID)
    if plugin is None or plugin.errors:
        return False
    if "enabled_plugins" in request.__dict__:  # already read by this request
        return PLUGIN_ID in request.enabled_plugins
    return bool(db.scalar(select(PluginState.enabled).where(PluginState.id == PLUGIN_ID)))


def on_new_response(event) -> None:
    request, response = event.request, event.response
    if request.method not in ("GET", "HEAD") or "ref=" not in request.environ.get("QUERY_STRING", ""):
        return
    if response.status_code >= 400 or request.path_info.startswith(("/api/", "/static/", "/pay/")):
        return
    try:
        code = members.normalize_code(request.GET.get("ref"))
    except UnicodeDecodeError:  # a query string that is not UTF-8
        return
    if code is None:
        return
    factory = request.registry["kameng.session_factory"]
    try:
        with factory() as db:
            if not _enabled(request, db):
                return
            if db.scalar(select(Member.user_id).where(Member.code == code)) is None:
                return
    except Exception:  # the page itself answered: never turn it into an error for a cookie
        log.warning("referral_capture_failed", exc_info=True)
        return
    set_cookie(request, response, code)


def on_new_request(event) -> None:
    """The referrer's page makes the account's code on its first visit: on
    SQLite it takes the write lock at BEGIN, like a POST, instead of failing
    to upgrade a read under load."""
    if event.request.path_info == "/-/distribution/":
        event.request.environ["kameng.write"] = True
