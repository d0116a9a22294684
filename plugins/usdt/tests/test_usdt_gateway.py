"""The gateway class on its own: what it reads from a notify request, what it
answers, and what it refuses before calling the server."""
from __future__ import annotations

import json
import os
from decimal import Decimal
from types import SimpleNamespace

import pytest
from webob import Request

from kameng.payments import GatewayError, NotificationRejected

from kameng_usdt import protocol
from kameng_usdt.gateway import UsdtGateway

with open(os.path.join(os.path.dirname(__file__), "vectors", "kat.json"), encoding="utf-8") as _fh:
    VECTORS = json.load(_fh)
TOKEN = VECTORS["epusdt_official"]["token"]
PAID = next(c for c in VECTORS["callbacks"] if c["name"] == "bepusdt_paid_amount_28_80")
WAITING = next(c for c in VECTORS["callbacks"] if c["name"] == "bepusdt_waiting_empty_hash")


def notify(body: str | bytes, method="POST", query="", content_type="application/json") -> Request:
    req = Request.blank("/pay/usdt/notify" + query, method=method)
    if method == "POST":
        req.body = body.encode() if isinstance(body, str) else body
        req.content_type = content_type
    return req


def gateway(token=TOKEN) -> UsdtGateway:
    return UsdtGateway({"api_url": "http://127.0.0.1:9", "api_token": token})


def test_a_paid_callback_is_reported():
    n = gateway().parse_notification(notify(PAID["body"]))
    assert (n.attempt_no, n.provider_trade_no, n.amount, n.currency, n.status, n.merchant_id) == (
        "P251126120000123456789012345678", "b3d2477c-d945-41da-96b7-f925bbd1b415", Decimal("28.80"), "CNY",
        "paid", None)
    assert n.raw["amount"] == "28.8" and n.raw["signature"] == PAID["signature"]


def test_the_content_type_does_not_matter_but_the_body_must_be_json():
    assert gateway().parse_notification(notify(PAID["body"], content_type="text/plain")).status == "paid"
    with pytest.raises(NotificationRejected, match="not JSON"):
        gateway().parse_notification(notify("order_id=P1&amount=1", content_type="application/x-www-form-urlencoded"))


def test_a_waiting_callback_is_pending():
    assert gateway().parse_notification(notify(WAITING["body"])).status == "pending"


@pytest.mark.parametrize("req,reason", [
    (notify("", method="GET", query="?order_id=P1"), "by POST"),
    (notify(PAID["body"], query="?amount=1"), "query parameters"),
    (notify(PAID["body"], query="?order_id=P251126120000123456789012345678"), "query parameters"),
    (notify(b"{" + b" " * protocol.MAX_BODY + b"}"), "too large"),
    (notify(PAID["body"][:-1] + ',"status":3}'), "twice"),
    (notify(PAID["body"].replace('"52b3', '"52B3')), "malformed signature"),
])
def test_refused_requests(req, reason):
    with pytest.raises(NotificationRejected, match=reason):
        gateway().parse_notification(req)


def test_another_token_or_none_refuses():
    with pytest.raises(NotificationRejected, match="bad signature"):
        gateway("another-token").parse_notification(notify(PAID["body"]))
    with pytest.raises(NotificationRejected, match="no API token"):
        UsdtGateway({}).parse_notification(notify(PAID["body"]))


def test_ack_is_the_exact_reply_epusdt_waits_for():
    assert gateway().ack(True) == (200, "ok", "text/plain")
    assert gateway().ack(False)[:2] == (400, "fail")


def test_only_cny_payments_are_created():
    attempt = SimpleNamespace(attempt_no="P1", amount=100, currency="USD")
    with pytest.raises(GatewayError, match="CNY"):
        gateway().create_payment(None, attempt)


def test_settings_missing_are_gateway_errors():
    attempt = SimpleNamespace(attempt_no="P1", amount=100, currency="CNY")
    request = SimpleNamespace(public_url=lambda *a, **kw: "https://shop.example/x")
    with pytest.raises(GatewayError, match="server URL is not set"):
        UsdtGateway({"api_token": TOKEN}).create_payment(request, attempt)
    with pytest.raises(GatewayError, match="API token is not set"):
        UsdtGateway({"api_url": "https://pay.example.com"}).create_payment(request, attempt)


def test_a_pasted_endpoint_url_is_tolerated():
    g = UsdtGateway({"api_url": "https://pay.example.com/api/v1/order/create-transaction/"})
    assert g._url() == "https://pay.example.com/api/v1/order/create-transaction"
    assert UsdtGateway({"api_url": "https://pay.example.com/epusdt/"})._url() == (
        "https://pay.example.com/epusdt/api/v1/order/create-transaction")


def test_refund_is_never_sent():
    with pytest.raises(GatewayError, match="by hand"):
        gateway().refund(None, None, None)
