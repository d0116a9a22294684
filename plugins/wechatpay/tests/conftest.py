"""Fixtures for the WeChat Pay plugin's tests: the fake WeChat Pay, and a
real shop on 127.0.0.1 that uses it.

``fakeprovider.py`` is loaded under a name of its own and handed out as
fixtures (other plugins ship a ``fakeprovider.py`` too, and test modules
cannot import each other under pytest's importlib mode).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from kameng.testing import LiveServer, add_card_sku, app_request, free_port, load_sibling, set_plugin

from kameng_wechatpay import testing
from kameng_wechatpay.client import forget_downloaded_certificates

SKU = "WXCARD"
NO_LIMITS = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0"}


def _fakeprovider():
    return load_sibling(__file__, "fakeprovider", "kameng_wechatpay_tests")


@pytest.fixture(autouse=True)
def _no_downloaded_certificates():
    forget_downloaded_certificates()
    yield
    forget_downloaded_certificates()


@pytest.fixture
def fake():
    """A fake WeChat Pay that knows the test merchant's public key."""
    server = _fakeprovider().FakeWechatPay().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def wx_server(make_app):
    """A shop served by waitress whose base URL is its own address (so
    notify URLs lead back to it); query jobs are due at once."""
    port = free_port()
    # a failed job waits for make_due(): one run_jobs() runs each job once, on every database
    # (MariaDB keeps whole seconds, so a 0.01 s back-off would already be due)
    app = make_app(**{"kameng.base_url": f"http://127.0.0.1:{port}", "kameng.payments.query_delay_scale": "0",
                      "kameng.jobs.retry_base_seconds": "60", **NO_LIMITS})
    server = LiveServer(app, port).start()
    server.app = app
    yield server
    server.stop()


class Shop:
    """The live shop, configured for the fake WeChat Pay, with a card-key SKU
    priced 1.00 and three keys."""

    def __init__(self, server, fake):
        self.url, self.app, self.fake = server.url, server.app, fake
        self.registry = server.app.registry

    def call(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def order(self, channel=None, status=201) -> dict:
        body = {"sku": SKU, "quantity": 1, "contact": "buyer@example.com", "query_password": "pass1234",
                "payment_method": "wechatpay"}
        if channel:
            body["channel"] = channel
        got, out = self.call("POST", "/api/v1/orders", body)
        assert got == status, out
        return out

    def view(self, made: dict) -> dict:
        got, out = self.call("GET", f"/api/v1/orders/{made['order_no']}?token={made['access_token']}")
        assert got == 200, out
        return out

    def admin_headers(self) -> dict:
        from kameng import accounts

        with app_request(self.registry) as req:
            user = accounts.find_user(req.db, "wx-admin@example.com") or accounts.create_user(
                req.db, "wx-admin@example.com", "admin-password-123", role="admin")
            return {"Authorization": f"Bearer {accounts.create_token(req.db, user, 'wechatpay-tests')}"}


@pytest.fixture
def shop(wx_server, fake):
    set_plugin(wx_server.app.registry, "wechatpay", enabled=True, **testing.settings(api_url=fake.url))
    add_card_sku(wx_server.app.registry, SKU, "1.00", keys=3)
    return Shop(wx_server, fake)
