"""Test set-up of the webhooks plugin: the shop with the plugin registered
(installed by entry point, or passed to ``make_app`` when this checkout's
plugin is not installed), a fake receiver on 127.0.0.1 and a signed-in admin."""
from __future__ import annotations

import importlib.util
import os
import sys
from importlib.metadata import entry_points

import pytest

from kameng import httpclient
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login, set_plugin

if importlib.util.find_spec("kameng_webhooks") is None:  # not installed: the package next to this folder
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from webhooks_helpers import Receiver  # noqa: E402


@pytest.fixture(scope="session")
def wh_app(make_app):
    import kameng_webhooks

    installed = any(ep.name == "webhooks" for ep in entry_points(group="kameng"))
    extra = [] if installed else [("webhooks", kameng_webhooks)]
    return make_app(extra_plugins=extra, **{"kameng.limits.orders_per_ip_per_minute": "0",
                                            "kameng.limits.lookups_per_ip_per_minute": "0"})


@pytest.fixture
def wh(wh_app):
    """The registry, with the plugin enabled and loopback receivers allowed."""
    set_plugin(wh_app.registry, "webhooks", enabled=True)
    return wh_app.registry


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch):
    """The fake receiver listens on 127.0.0.1 over plain http: allowed in
    tests only (``make_app`` sets the same from ``kameng.http.allow_private_targets``)."""
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)


@pytest.fixture
def receiver():
    made = []

    def start(**kw):
        r = Receiver(**kw)
        made.append(r)
        return r

    yield start
    for r in made:
        r.stop()


@pytest.fixture
def wh_admin(wh_app, wh):
    """A webtest client signed in as an admin."""
    import webtest

    from kameng import accounts

    with app_request(wh) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    client = webtest.TestApp(wh_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    resp = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert resp.status_int == 302, resp.text
    return client
