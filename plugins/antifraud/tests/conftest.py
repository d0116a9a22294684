"""Fixtures for the anti-fraud tests: the shop with this plugin and the
sandbox gateway registered as installed (and no other installed plugin),
the core's own order and lookup limits off (so the plugin's are the ones
tested), and a Redis namespace of each test's own."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import webtest

if importlib.util.find_spec("kameng_antifraud") is None:  # a checkout without the plugin installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from antifraud_helpers import CORE_LIMITS_OFF, RedisNamespace


@pytest.fixture(scope="session")
def af_app(make_app):
    import kameng_antifraud
    import kameng_sandbox

    return make_app(extra_plugins=[("antifraud", kameng_antifraud), ("sandbox", kameng_sandbox)],
                    **{"kameng.plugins.load_entrypoints": "false", **CORE_LIMITS_OFF})


@pytest.fixture
def af_registry(af_app):
    return af_app.registry


@pytest.fixture
def af_testapp(af_app):
    return webtest.TestApp(af_app, extra_environ={"REMOTE_ADDR": "198.51.100.10"})


@pytest.fixture
def af_admin(af_app, af_registry):
    """An admin's browser (its own cookies: orders are placed with ``af_testapp``)."""
    from kameng import accounts
    from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login

    with app_request(af_registry) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    browser = webtest.TestApp(af_app, extra_environ={"REMOTE_ADDR": "198.51.100.200"})
    resp = login(browser, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert resp.status_int == 302, resp.text
    return browser


@pytest.fixture(autouse=True)
def _fresh_backends():
    from kameng_antifraud import backends

    backends.reset()
    yield
    backends.reset()


@pytest.fixture
def redis_ns():
    """A key prefix of this test's own on the local Redis (skips when Redis
    does not answer); its keys are deleted afterwards."""
    ns = RedisNamespace.connect()
    if ns is None:
        pytest.skip("no Redis answers on 127.0.0.1:6379")
    yield ns
    ns.cleanup()
