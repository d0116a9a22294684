"""Forgotten passwords: asking for a reset link (``/password/forgot``) and
using it (``/password/reset/{token}``).

The link goes out as the ``account.password_reset`` notification (the
``notify_email`` plugin sends it). The request page answers the same for an
account that exists and for one that does not, so that it tells no one who
has an account. A link works once, for :data:`kameng.accounts.RESET_MINUTES`
minutes; using it sets the new password and signs the account out
everywhere. Neither the token nor the link is ever logged.
"""
from __future__ import annotations

import logging

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from kameng import accounts, notifications, risk
from kameng.errors import APIError
from kameng.i18n import _
from kameng.storefront.views import login_subject
from kameng.theming import tpl

log = logging.getLogger(__name__)

NO_STORE = "no-store"
BAD_LINK = _("This password-reset link is not valid: it was used already, has expired, or was copied "
             "incompletely. Ask for a new one.")


def send_link(request, identifier: str) -> None:
    """Email a reset link to the account ``identifier`` names, if there is
    one that may have it. Nothing tells the caller which happened."""
    user = accounts.find_user(request.db, identifier)
    if user is None or not user.is_active:
        log.info("password_reset_unknown")
        return
    if user.is_admin:
        # an admin's password is reset on the server (kameng admin reset-password), never by email
        log.info("password_reset_admin_refused", extra={"user_id": user.id})
        return
    token = accounts.create_password_reset(request.db, user, ip=request.remote_addr or "")
    if token is None:
        log.info("password_reset_limited", extra={"user_id": user.id})
        return
    notifications.emit(request.db, "account.password_reset", {
        "to": user.email, "url": request.public_url("password.reset", token=token),
        "expires_minutes": accounts.RESET_MINUTES, "user_id": user.id})
    log.info("password_reset_sent", extra={"user_id": user.id})


@view_config(route_name="password.forgot", renderer=tpl("storefront/password_forgot.pt"))
def forgot(request):
    """Ask for a link with the account's email or phone number."""
    request.response.headers["Cache-Control"] = NO_STORE
    form = {"identifier": "", "error": None, "sent": None}
    if request.method == "POST":
        identifier = request.POST.get("identifier", "").replace("\x00", "").strip()[:254]
        form["identifier"] = identifier
        if not identifier:
            form["error"] = _("Enter the email address or the phone number of your account.")
            request.response.status = 400
            return {"form": form}
        try:
            risk.check(request, "password_reset", **login_subject(identifier))
        except APIError as exc:
            form["error"] = exc.message
            request.response.status = exc.status
            return {"form": form}
        send_link(request, identifier)
        form["sent"] = _("If an account with this email or phone number exists, we have sent a link to reset "
                         "its password to the account's email address. The link works for ${minutes} minutes.",
                         mapping={"minutes": accounts.RESET_MINUTES})
    return {"form": form}


@view_config(route_name="password.reset", renderer=tpl("storefront/password_reset.pt"))
def reset(request):
    """Choose a new password with a link from the email."""
    request.response.headers["Cache-Control"] = NO_STORE
    token = request.matchdict.get("token", "")
    form = {"error": None, "valid": True}
    if accounts.password_reset_for(request.db, token) is None:
        form.update(valid=False, error=BAD_LINK)
        request.response.status = 404
        return {"form": form}
    if request.method == "POST":
        password = request.POST.get("password", "")[:200]
        if password != request.POST.get("password2", "")[:200]:
            form["error"] = _("The two passwords differ.")
        else:
            try:
                user = accounts.consume_password_reset(request.db, token, password)
            except accounts.AccountError:
                form["error"] = _("Choose a password of at least 10 characters.")
            else:
                if user is None:  # used by a concurrent request a moment ago
                    form.update(valid=False, error=BAD_LINK)
                    request.response.status = 404
                    return {"form": form}
                log.info("password_reset_used", extra={"user_id": user.id})
                request.session.flash(request.localizer.translate(
                    _("Your password is changed and every device is signed out. Sign in with the new password.")),
                    "info")
                return HTTPSeeOther(request.route_url("login"))
        request.response.status = 400
    return {"form": form}
