"""Fixtures for the email plugin's tests: the shop with the plugin (installed
through its entry point, or registered from this checkout), a certificate
the tests' TLS servers use and the plugin trusts
(``kameng.notify_email.cafile``), and real SMTP servers on 127.0.0.1."""
from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import kameng_notify_email
except ImportError:  # not installed: use the checkout
    sys.path.insert(0, os.path.dirname(HERE))
    import kameng_notify_email

from notify_email_helpers import SmtpServer, make_tls_files  # noqa: E402


def _installed() -> bool:
    return any(ep.name == "notify_email" for ep in entry_points(group="kameng"))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return make_tls_files(str(tmp_path_factory.mktemp("smtp-tls")))


@pytest.fixture(scope="session")
def email_app(make_app, tls_files):
    extra = [] if _installed() else [("notify_email", kameng_notify_email)]
    return make_app(extra_plugins=extra, **{"kameng.notify_email.cafile": tls_files.cert,
                                            "kameng.limits.orders_per_ip_per_minute": "0",
                                            "kameng.limits.lookups_per_ip_per_minute": "0"})


@pytest.fixture
def email_registry(email_app):
    return email_app.registry


@pytest.fixture
def email_testapp(email_app):
    import webtest

    return webtest.TestApp(email_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@pytest.fixture
def email_admin(email_app, email_testapp):
    """``email_testapp`` signed in as an admin."""
    from kameng import accounts
    from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login

    with app_request(email_app.registry) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    assert login(email_testapp, ADMIN_EMAIL, ADMIN_PASSWORD).status_int == 302
    return email_testapp


@pytest.fixture
def smtp():
    """A plain SMTP server (no TLS, no AUTH) on 127.0.0.1."""
    server = SmtpServer("none").start()
    yield server
    server.stop()


@pytest.fixture
def smtp_factory(tls_files):
    started = []

    def factory(kind="none", auth=False, port=None, mechanisms=("LOGIN", "PLAIN")):
        server = SmtpServer(kind, tls=tls_files, auth=auth, port=port, mechanisms=mechanisms).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
