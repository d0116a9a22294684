"""Fixtures for the dock connector's tests: a fake upstream kameng shop on
127.0.0.1 (``dock_fake.py``) and a connector configured against it."""
from __future__ import annotations

import pytest
from dock_helpers import build_fake, make_connector
from kameng_dock.connector import NONCES

from kameng import httpclient


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch):
    """The fake listens on 127.0.0.1 over plain http: allowed in tests only
    (``make_app`` sets the same from ``kameng.http.allow_private_targets``)."""
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)


@pytest.fixture(autouse=True)
def _fresh_nonce_memory():
    NONCES.seen.clear()
    yield
    NONCES.seen.clear()


@pytest.fixture
def fake():
    upstream = build_fake()
    yield upstream
    upstream.stop()


@pytest.fixture
def connector(fake):
    return make_connector(fake)
