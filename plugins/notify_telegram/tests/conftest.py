"""Fixtures for the Telegram plugin's tests: the shop with this plugin and
the sandbox gateway, and a fake Bot API on 127.0.0.1 (``notify_telegram_fake.py``)."""
from __future__ import annotations

import notify_telegram_fake
import pytest

from kameng import httpclient


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch):
    """The fake listens on 127.0.0.1 over plain http: allowed in tests only."""
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)


@pytest.fixture(scope="session")
def tg_app(make_app):
    import kameng_notify_telegram
    import kameng_sandbox

    return make_app(extra_plugins=[("notify_telegram", kameng_notify_telegram), ("sandbox", kameng_sandbox)],
                    **{"kameng.plugins.load_entrypoints": "false"})


@pytest.fixture
def tg_registry(tg_app):
    return tg_app.registry


@pytest.fixture
def fake():
    server = notify_telegram_fake.FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture
def tg_testapp(tg_app):
    import webtest

    return webtest.TestApp(tg_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
