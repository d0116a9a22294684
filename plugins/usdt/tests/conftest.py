"""Fixtures for the usdt plugin's tests: a fake epusdt server and a real
kameng on 127.0.0.1 that reconciles at once."""
from __future__ import annotations

import pytest

from kameng.testing import LiveServer, free_port, load_sibling


def _load(name: str):
    return load_sibling(__file__, name, "kameng_usdt_tests")


fakeprovider = _load("fakeprovider")

TOKEN = "epusdt-test-token-0123456789"


@pytest.fixture
def make_fake():
    """``make_fake(flavor="epusdt")`` → a started :class:`FakeEpusdt`, stopped afterwards."""
    made = []

    def factory(flavor: str = "epusdt", token: str = TOKEN):
        fake = fakeprovider.FakeEpusdt(token, flavor=flavor).start()
        made.append(fake)
        return fake

    yield factory
    for fake in made:
        fake.stop()


@pytest.fixture
def fake(make_fake):
    return make_fake("epusdt")


@pytest.fixture
def shop(make_app):
    """A live kameng whose query job runs at once and without the per-address limits."""
    port = free_port()
    app = make_app(**{"kameng.base_url": f"http://127.0.0.1:{port}", "kameng.payments.query_delay_scale": "0",
                      "kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0"})
    server = LiveServer(app, port).start()
    server.registry = app.registry
    yield server
    server.stop()
