"""Fixtures for the epay tests: a fake epay platform and a real kameng on
127.0.0.1 (its worker jobs run in the test's thread with ``run_jobs``)."""
from __future__ import annotations

import pytest

from kameng.testing import LiveServer, free_port

from epay_fakeprovider import FakeEpay
from epay_helpers import Shop


@pytest.fixture
def fakes():
    """``fakes(version, sign_mode)`` → a started :class:`FakeEpay`, stopped after the test."""
    made = []

    def start(version="1", sign_mode="plain"):
        fake = FakeEpay(version, sign_mode=sign_mode).start()
        made.append(fake)
        return fake

    yield start
    for fake in made:
        fake.stop()


@pytest.fixture
def shop(make_app):
    """A live kameng whose payment queries are due at once and without per-address limits."""
    port = free_port()
    app = make_app(**{"kameng.base_url": f"http://127.0.0.1:{port}", "kameng.payments.query_delay_scale": "0",
                      "kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0"})
    server = LiveServer(app, port).start()
    yield Shop(server.url, app.registry, app)
    server.stop()
