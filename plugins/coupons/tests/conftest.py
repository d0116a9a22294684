"""Fixtures for the coupons plugin's tests: the shop with this plugin and the
sandbox gateway registered from the checkout (no other installed plugin),
its own admin, and a card-key SKU to sell."""
from __future__ import annotations

import os
import sys

import pytest
import webtest

# the plugin's package, importable without installing the distribution
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from coupons_helpers import NO_LIMITS, enable, make_admin  # noqa: E402


@pytest.fixture(scope="session")
def coupons_app(make_app):
    import kameng_coupons
    import kameng_sandbox

    return make_app(extra_plugins=[("coupons", kameng_coupons), ("sandbox", kameng_sandbox)],
                    **{"kameng.plugins.load_entrypoints": "false"}, **NO_LIMITS)


@pytest.fixture
def creg(coupons_app):
    return coupons_app.registry


@pytest.fixture
def capi(coupons_app):
    return webtest.TestApp(coupons_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@pytest.fixture
def shop(creg):
    """Sandbox and coupons on; CARD10 at 10.00 with 30 keys. Gives the SKU's id."""
    from coupons_helpers import make_product

    enable(creg)
    return make_product(creg, "CARD10", "10.00", keys=30)[1]


@pytest.fixture
def cadmin(creg):
    """A signed-in admin (webtest) and an admin API token: ``(testapp, token)``."""
    return make_admin(creg)


@pytest.fixture
def admin_web(coupons_app, cadmin):
    from kameng.testing import login

    app = webtest.TestApp(coupons_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    resp = login(app, *cadmin[:2])
    assert resp.status_int == 302, resp.text
    return app


@pytest.fixture
def admin_token(cadmin):
    return cadmin[2]
