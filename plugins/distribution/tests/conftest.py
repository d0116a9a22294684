"""Fixtures for the distribution plugin's tests: a shop with this plugin and
the sandbox gateway registered as installed (and no other installed plugin),
the core's per-address limits off."""
from __future__ import annotations

import os
import sys

import pytest

try:
    import kameng_distribution  # noqa: F401  (installed: pip install -e plugins/distribution)
except ImportError:  # run from the checkout without installing it
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def dist_app(make_app):
    import kameng_distribution
    import kameng_sandbox

    return make_app(extra_plugins=[("distribution", kameng_distribution), ("sandbox", kameng_sandbox)],
                    **{"kameng.plugins.load_entrypoints": "false",
                       "kameng.limits.orders_per_ip_per_minute": "0",
                       "kameng.limits.lookups_per_ip_per_minute": "0"})


@pytest.fixture
def dreg(dist_app):
    return dist_app.registry


@pytest.fixture
def web(dist_app):
    import webtest

    return webtest.TestApp(dist_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@pytest.fixture
def shop(dreg):
    """Sandbox and distribution on (levels 3: 10 %, 5 %, 2.5 %; minimum
    withdrawal 10.00, fee 1 %), and the card CARD10 at 100.00 with 10 keys.
    Gives the product's id."""
    from distribution_helpers import enable, make_sku

    enable(dreg)
    return make_sku(dreg, "CARD10", price="100.00", keys=10)[0]
