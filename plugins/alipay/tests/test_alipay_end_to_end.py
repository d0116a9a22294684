"""A real kameng (waitress on 127.0.0.1) against the fake Alipay: a buyer
orders through the HTTP API, pays at the fake, the signed notify arrives
(retried until the shop answers ``success``), the worker delivers; a lost
notify is found by reconciliation; an admin refund reaches Alipay once even
when its job is retried; a broken Alipay is a 502 with nothing written."""
from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from kameng import accounts
from kameng.inventory.models import CardKey
from kameng.orders.models import Order, Refund
from kameng.payments import GatewayError
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.payments.service import get_gateway
from kameng.testing import LiveServer, add_card_sku, app_request, free_port, run_jobs, set_plugin
from kameng_alipay.gateway import AlipayGateway
from kameng_alipay.testing import APP_ID, SELLER_ID, key_pem

from fake_alipay import FakeAlipay

SKU = "ALI88"
PRICE = "88.88"
SETTINGS = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0",
            "kameng.payments.query_delay_scale": "0"}


@pytest.fixture
def fake():
    provider = FakeAlipay().start()
    yield provider
    provider.stop()


@pytest.fixture
def shop(make_app, fake):
    """A live shop selling ``ALI88`` with Alipay enabled against the fake."""
    port = free_port()
    app = make_app(**{**SETTINGS, "kameng.base_url": f"http://127.0.0.1:{port}"})
    server = LiveServer(app, port).start()
    server.registry = app.registry
    add_card_sku(app.registry, SKU, PRICE, keys=3)
    set_plugin(app.registry, "alipay", enabled=True, app_id=APP_ID, app_private_key=key_pem("app_private_key"),
               alipay_public_key=key_pem("ali_public_key"), seller_id=SELLER_ID, gateway_url=fake.url)
    yield server
    server.stop()


def place(shop, **extra):
    body = {"sku": SKU, "quantity": 1, "contact": "buyer@example.com", "query_password": "pass1234",
            "payment_method": "alipay", **extra}
    return httpx.post(f"{shop.url}/api/v1/orders", json=body, timeout=30)


def read_order(shop, order: dict) -> dict:
    resp = httpx.get(f"{shop.url}/api/v1/orders/{order['order_no']}", params={"token": order["access_token"]},
                     timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def counts(registry) -> tuple[int, int, int]:
    """(orders, attempts, keys held by an order)"""
    with app_request(registry) as req:
        return (req.db.scalar(select(func.count()).select_from(Order)),
                req.db.scalar(select(func.count()).select_from(PaymentAttempt)),
                req.db.scalar(select(func.count()).select_from(CardKey).where(CardKey.order_ref.is_not(None))))


def admin_token(registry) -> dict:
    with app_request(registry) as req:
        user = accounts.create_user(req.db, "admin@example.com", "admin-password-1", role="admin")
        return {"Authorization": f"Bearer {accounts.create_token(req.db, user, 'alipay-tests')}"}


def run_until(registry, done, rounds: int = 200) -> None:
    """Run due jobs until ``done()``: retried jobs come due after a short back-off."""
    for _ in range(rounds):
        run_jobs(registry)
        if done():
            return
        time.sleep(0.02)
    raise AssertionError("the jobs did not finish")


# -- paying ----------------------------------------------------------------------------------


def test_qr_code_paid_notified_with_retries_and_delivered(shop, fake):
    resp = place(shop)
    assert resp.status_code == 201, resp.text
    order = resp.json()
    payment = order["payment"]
    assert payment["gateway"] == "alipay" and payment["qr"].startswith("https://qr.alipay.com/")
    trade = fake.trades[payment["attempt_no"]]
    assert trade.total_amount == PRICE and trade.notify_url == f"{shop.url}/pay/alipay/notify"
    assert trade.method == "alipay.trade.precreate" and trade.biz["timeout_express"] == "15m"

    fake.corrupt_first_notifies = 2  # the first two arrive damaged: the shop says fail, Alipay retries
    fake.pay(payment["attempt_no"])
    assert fake.wait_notified(payment["attempt_no"])
    replies = [(status, body) for no, status, body in fake.notifies if no == payment["attempt_no"]]
    assert replies == [(400, "fail"), (400, "fail"), (200, "success")]

    run_jobs(shop.registry)
    seen = read_order(shop, order)
    assert seen["status"] == "delivered"
    assert [k["secret"] for k in seen["items"][0]["keys"]] == [f"{SKU}-KEY-0000"]
    with app_request(shop.registry) as req:
        attempt = req.db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == payment["attempt_no"]))
        assert (attempt.status, attempt.provider_trade_no) == ("paid", trade.trade_no)
        outcomes = list(req.db.scalars(select(PaymentNotice.outcome).order_by(PaymentNotice.id)))
    assert outcomes == ["rejected", "rejected", "applied"]


@pytest.mark.parametrize("channel,method", [("page", "alipay.trade.page.pay"), ("wap", "alipay.trade.wap.pay")])
def test_website_channels_redirect_to_a_signed_alipay_url(shop, fake, channel, method):
    resp = place(shop, channel=channel)
    assert resp.status_code == 201, resp.text
    order = resp.json()
    payment = order["payment"]
    assert "qr" not in payment and payment["pay_url"].startswith(fake.url + "?")
    cashier = httpx.get(payment["pay_url"], timeout=30)  # the browser follows it: the fake checks the signature
    assert cashier.status_code == 200 and "cashier" in cashier.text, fake.rejected
    trade = fake.trades[payment["attempt_no"]]
    assert trade.method == method and trade.total_amount == PRICE
    product = {"page": "FAST_INSTANT_TRADE_PAY", "wap": "QUICK_WAP_WAY"}[channel]
    assert trade.biz["product_code"] == product
    fake.pay(payment["attempt_no"])
    assert fake.wait_notified(payment["attempt_no"])
    run_jobs(shop.registry)
    assert read_order(shop, order)["status"] == "delivered"


def test_unknown_channel_is_refused(shop, fake):
    resp = place(shop, channel="alipay_app")
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "payment_method_unavailable"
    assert fake.calls == []


def notice_outcomes(registry, attempt_no) -> list[str]:
    with app_request(registry) as req:
        return list(req.db.scalars(select(PaymentNotice.outcome).where(PaymentNotice.attempt_no == attempt_no)
                                   .order_by(PaymentNotice.id)))


def test_lost_notify_is_found_by_the_query_job(shop, fake):
    paid, unpaid = place(shop).json(), place(shop).json()
    fake.pay(paid["payment"]["attempt_no"], notify=False)  # paid, but every notify is lost
    run_jobs(shop.registry)  # the query rounds come due at once (query_delay_scale 0)
    assert read_order(shop, paid)["status"] == "delivered"
    assert notice_outcomes(shop.registry, paid["payment"]["attempt_no"]) == ["query:applied"]
    # the other QR code was never scanned: Alipay knows no such trade, every round says so
    assert read_order(shop, unpaid)["status"] == "pending"
    assert set(notice_outcomes(shop.registry, unpaid["payment"]["attempt_no"])) == {"query:unknown"}


def test_a_forged_notify_over_http_changes_nothing(shop, fake):
    order = place(shop).json()
    attempt_no = order["payment"]["attempt_no"]
    trade = fake.trades[attempt_no]  # not paid: only the forger says so
    form = dict(fake.notify_fields(replace(trade, status="TRADE_SUCCESS")))
    for change in ({"total_amount": "0.01"}, {"sign_type": "RSA"}, {"seller_id": "2088000000000000"}):
        resp = httpx.post(trade.notify_url, data={**form, **change}, timeout=30)
        assert (resp.status_code, resp.text) == (400, "fail")
    resp = httpx.get(trade.notify_url, params=form, timeout=30)  # Alipay notifies by POST only
    assert (resp.status_code, resp.text) == (400, "fail")
    run_jobs(shop.registry)
    with app_request(shop.registry) as req:
        attempt = req.db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == attempt_no))
        assert attempt.status == "pending"


# -- refunds ---------------------------------------------------------------------------------


def paid_order(shop, fake) -> dict:
    order = place(shop).json()
    fake.pay(order["payment"]["attempt_no"])
    assert fake.wait_notified(order["payment"]["attempt_no"])
    run_jobs(shop.registry)
    assert read_order(shop, order)["status"] == "delivered"
    return order


def refund(shop, order, auth, **body):
    return httpx.post(f"{shop.url}/api/v1/admin/orders/{order['order_no']}/refund",
                      json={"reason": "the buyer changed their mind", **body}, headers=auth, timeout=30)


def refund_rows(registry, order) -> list[Refund]:
    with app_request(registry) as req:
        oid = req.db.scalar(select(Order.id).where(Order.order_no == order["order_no"]))
        return list(req.db.scalars(select(Refund).where(Refund.order_id == oid).order_by(Refund.id)))


def test_admin_refund_reaches_alipay_once(shop, fake):
    order = paid_order(shop, fake)
    auth = admin_token(shop.registry)
    resp = refund(shop, order, auth, amount="10.00")
    assert resp.status_code == 200, resp.text
    refund_no = resp.json()["refund"]["refund_no"]
    run_until(shop.registry, lambda: refund_rows(shop.registry, order)[0].status == "succeeded")
    assert fake.refunds == {(order["payment"]["attempt_no"], refund_no): Decimal("10.00")}
    assert fake.refunds_done == 1 and fake.count("alipay.trade.refund") == 1
    # the rest, as a second refund request with its own number
    assert refund(shop, order, auth).status_code == 200
    run_until(shop.registry, lambda: all(r.status == "succeeded" for r in refund_rows(shop.registry, order)))
    assert fake.refunds_done == 2 and read_order(shop, order)["status"] == "refunded"


def test_a_refund_whose_answer_is_lost_is_not_sent_twice(shop, fake, monkeypatch):
    """The refund went through but its answer never came (a timeout): the
    retried job asks Alipay first and finds it done."""
    order = paid_order(shop, fake)
    auth = admin_token(shop.registry)
    monkeypatch.setattr(AlipayGateway, "timeout", 0.3)
    fake.lose_refund_answer = True  # for good: a second alipay.trade.refund would time out as well
    assert refund(shop, order, auth).status_code == 200
    # the first try times out after Alipay refunded; the job is retried after a back-off
    run_until(shop.registry, lambda: refund_rows(shop.registry, order)[0].status == "succeeded")
    assert fake.refunds_done == 1 and fake.count("alipay.trade.refund") == 1
    assert fake.count("alipay.trade.fastpay.refund.query") == 2
    assert read_order(shop, order)["status"] == "refunded"


def test_a_refund_alipay_refuses_is_failed_with_its_reason(shop, fake):
    order = paid_order(shop, fake)
    fake.trades[order["payment"]["attempt_no"]].status = "TRADE_FINISHED"  # past the refund period
    assert refund(shop, order, admin_token(shop.registry)).status_code == 200
    run_until(shop.registry, lambda: refund_rows(shop.registry, order)[0].status == "failed")
    row = refund_rows(shop.registry, order)[0]
    assert "ACQ.TRADE_STATUS_ERROR" in row.error and fake.refunds_done == 0


# -- a broken Alipay ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["http500", "garbage", "timeout", "badsign", "reorder", "unsigned"])
def test_a_broken_alipay_is_a_502_with_nothing_written(shop, fake, mode, monkeypatch):
    fake.mode = mode
    monkeypatch.setattr(AlipayGateway, "timeout", 0.3)
    before = counts(shop.registry)
    resp = place(shop)
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["code"] == "gateway_unavailable"
    assert "PRIVATE KEY" not in resp.text and "sign" not in resp.text
    assert counts(shop.registry) == before


def test_close_payment(shop, fake):
    order = place(shop).json()
    attempt_no = order["payment"]["attempt_no"]
    with app_request(shop.registry) as req:
        gateway = get_gateway(req, "alipay")
        attempt = req.db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == attempt_no))
        gateway.close_payment(req, attempt)  # never scanned: nothing to close, the QR code runs out
        fake.scan(attempt_no)
        gateway.close_payment(req, attempt)
        assert fake.trades[attempt_no].status == "TRADE_CLOSED"
        gateway.close_payment(req, attempt)  # closed already: done
        assert gateway.query_payment(req, attempt).status == "closed"


def test_a_paid_trade_is_not_reported_closed(shop, fake):
    """Paid just before the order expired: closing fails, so the attempt
    stays open for its notify or the query job."""
    order = place(shop).json()
    attempt_no = order["payment"]["attempt_no"]
    fake.pay(attempt_no, notify=False)
    with app_request(shop.registry) as req:
        attempt = req.db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == attempt_no))
        with pytest.raises(GatewayError, match="cannot be closed"):
            get_gateway(req, "alipay").close_payment(req, attempt)


def test_a_cancelled_order_closes_its_trade(shop, fake):
    order = place(shop).json()
    attempt_no = order["payment"]["attempt_no"]
    fake.scan(attempt_no)
    resp = httpx.post(f"{shop.url}/api/v1/orders/{order['order_no']}/cancel", params={"token": order["access_token"]},
                      timeout=30)
    assert resp.status_code == 200, resp.text
    run_jobs(shop.registry)
    assert fake.trades[attempt_no].status == "TRADE_CLOSED" and fake.count("alipay.trade.close") == 1
    with app_request(shop.registry) as req:
        assert req.db.scalar(select(PaymentAttempt.status).where(PaymentAttempt.attempt_no == attempt_no)) == "closed"
