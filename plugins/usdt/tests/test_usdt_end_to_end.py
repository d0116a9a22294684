"""End to end through a real kameng and a fake epusdt/BEpusdt server, both on
127.0.0.1: the buyer orders through the HTTP API, pays at the fake, the
callback (and its retries) arrive, the worker delivers the key. Then what
goes wrong: lost, forged, waiting and expired callbacks, a server that
answers garbage, errors or nothing, and refunds, which are manual."""
from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from kameng import accounts
from kameng.orders.models import Order
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.testing import add_card_sku, app_request, run_jobs, set_plugin

from kameng_usdt.gateway import UsdtGateway

TOKEN = "epusdt-test-token-0123456789"  # the fakes' token (conftest.py)


def buy(shop, sku="USDT1", status=201) -> dict:
    body = {"sku": sku, "quantity": 1, "contact": "buyer@example.com", "query_password": "pass1234",
            "payment_method": "usdt"}
    resp = httpx.post(f"{shop.url}/api/v1/orders", json=body, timeout=30)
    assert resp.status_code == status, resp.text
    return resp.json()


def order_of(shop, made) -> dict:
    resp = httpx.get(f"{shop.url}/api/v1/orders/{made['order_no']}", params={"token": made["access_token"]},
                     timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def keys_of(got) -> list[str]:
    return [k["secret"] for item in got["items"] for k in item["keys"]]


def setup_shop(shop, fake, price="28.80", keys=2):
    add_card_sku(shop.registry, "USDT1", price=price, keys=keys)
    set_plugin(shop.registry, "usdt", enabled=True, api_url=fake.url, api_token=TOKEN)


def notices(shop) -> list[tuple[bool, str]]:
    with app_request(shop.registry) as req:
        return [(n.verified, n.outcome) for n in req.db.scalars(select(PaymentNotice).order_by(PaymentNotice.id))]


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["epusdt", "bepusdt"])
@pytest.mark.parametrize("price,sent", [("28.80", 28.8), ("10.00", 10.0)])
def test_buyer_pays_and_gets_the_key(shop, make_fake, flavor, price, sent):
    fake = make_fake(flavor)
    setup_shop(shop, fake, price)
    made = buy(shop)
    pay = made["payment"]
    no = pay["attempt_no"]
    assert pay["gateway"] == "usdt" and pay["amount"] == price
    assert pay["pay_url"].startswith(f"{fake.url}/pay/checkout-counter/")
    [call] = fake.requests
    # the fake verified our signature the Go way: 10.00 went out as 10, 28.80 as 28.8
    assert call["sign_ok"] and call["body"]["amount"] == sent and call["body"]["order_id"] == no
    assert call["body"]["notify_url"] == f"{shop.url}/pay/usdt/notify"
    assert call["body"]["redirect_url"] == f"{shop.url}/pay/return/{no}"
    cashier = httpx.get(pay["pay_url"], timeout=30)
    assert cashier.status_code == 200 and "USDT" in cashier.text
    if flavor == "bepusdt":  # "still waiting", validly signed: acknowledged, not paid
        assert fake.waiting(no) == [(200, "ok")]
        run_jobs(shop.registry)
        assert order_of(shop, made)["status"] == "pending"

    assert fake.pay(no) == [(200, "ok")]  # exactly "ok": epusdt retries anything else
    run_jobs(shop.registry)
    got = order_of(shop, made)
    assert got["status"] == "delivered" and keys_of(got) == ["USDT1-KEY-0000"]

    # the server sends it again (a retry after a lost reply): still one key
    assert fake.send(fake.trade_for(no), tries=1) == [(200, "ok")]
    run_jobs(shop.registry)
    assert keys_of(order_of(shop, made)) == ["USDT1-KEY-0000"]
    outcomes = [o for _v, o in notices(shop)]
    assert outcomes.count("applied") == 1 and outcomes.count("duplicate") == 1
    with app_request(shop.registry) as req:
        attempt = req.db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == no))
        assert attempt.provider_trade_no == fake.trade_for(no)["trade_id"]


@pytest.mark.slow
def test_lost_callbacks_are_retried_and_the_query_job_does_not_guess(shop, fake):
    setup_shop(shop, fake)
    made = buy(shop)
    no = made["payment"]["attempt_no"]
    fake.pay(no, send=False)  # paid on chain; the callback has not arrived
    assert run_jobs(shop.registry) >= 1  # every query round is due at once (query_delay_scale=0)
    assert order_of(shop, made)["status"] == "pending"  # no query call exists: nothing guessed
    assert len(fake.requests) == 1  # only the create reached the server
    assert notices(shop) == []  # and the core did not pretend to ask

    answers = fake.send(fake.trade_for(no), lost=2)
    assert answers == [(0, "lost"), (0, "lost"), (200, "ok")]
    run_jobs(shop.registry)
    assert order_of(shop, made)["status"] == "delivered"


@pytest.mark.slow
def test_waiting_and_expired_callbacks_never_deliver(shop, make_fake):
    """B3 #31: BEpusdt's status 1 and 3 callbacks are signed like a payment."""
    fake = make_fake("bepusdt")
    setup_shop(shop, fake)
    made = buy(shop)
    no = made["payment"]["attempt_no"]
    assert fake.waiting(no) == [(200, "ok")]
    assert fake.expire(no) == [(200, "ok")]
    run_jobs(shop.registry)
    got = order_of(shop, made)
    assert got["status"] == "pending" and keys_of(got) == []
    assert [o for _v, o in notices(shop)] == ["not_paid", "not_paid"]


@pytest.mark.slow
def test_forged_and_wrong_amount_callbacks_are_refused_every_time(shop, fake):
    setup_shop(shop, fake)
    made = buy(shop)
    no = made["payment"]["attempt_no"]
    trade = fake.trade_for(no)
    fake.pay(no, send=False)
    # signed with another token: refused on every one of epusdt's five tries
    assert fake.send(trade, token="a-token-that-is-not-ours") == [(400, "fail")] * 5
    # signed with ours but for 0.01 less (the "penny" notify, B1 #9)
    assert fake.send(trade, amount=28.79, tries=1) == [(400, "fail")]
    run_jobs(shop.registry)
    assert order_of(shop, made)["status"] == "pending"
    assert notices(shop) == [(False, "rejected")] * 5 + [(True, "amount_mismatch")]


def admin_headers(shop) -> dict:
    with app_request(shop.registry) as req:
        user = accounts.create_user(req.db, "admin@example.com", "admin-password-1", role="admin")
        return {"Authorization": f"Bearer {accounts.create_token(req.db, user, 'usdt-tests')}"}


@pytest.mark.slow
def test_refunds_are_manual_and_never_reach_the_server(shop, fake):
    setup_shop(shop, fake)
    made = buy(shop)
    fake.pay(made["payment"]["attempt_no"])
    run_jobs(shop.registry)
    headers = admin_headers(shop)
    url = f"{shop.url}/api/v1/admin/orders/{made['order_no']}"
    resp = httpx.post(f"{url}/refund", json={"reason": "test", "destination": "gateway"}, headers=headers, timeout=30)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "refund_unsupported"
    resp = httpx.post(f"{url}/refund", json={"reason": "buyer asked"}, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    refund = resp.json()["refund"]
    assert refund["destination"] == "manual" and refund["status"] == "pending"
    for _ in range(2):  # the worker has nothing to send, however often it runs
        run_jobs(shop.registry)
    assert [r["path"] for r in fake.requests] == ["/api/v1/order/create-transaction"]
    resp = httpx.post(f"{url}/refund_paid", json={"reason": "sent 4 USDT back", "refund_no": refund["refund_no"]},
                      headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert order_of(shop, made)["status"] == "refunded"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["garbage", "http500", "refuse", "slow", "wrong_token", "down"])
def test_server_failures_are_502s_and_nothing_is_half_written(shop, make_fake, monkeypatch, mode):
    fake = make_fake("epusdt", token="another-token" if mode == "wrong_token" else TOKEN)
    setup_shop(shop, fake)
    if mode == "slow":
        monkeypatch.setattr(UsdtGateway, "timeout", 0.3)
    if mode == "down":
        fake.stop()
    elif mode != "wrong_token":
        fake.mode = mode
    resp = httpx.post(f"{shop.url}/api/v1/orders", json={
        "sku": "USDT1", "quantity": 1, "contact": "buyer@example.com", "query_password": "pass1234",
        "payment_method": "usdt"}, timeout=30)
    fake.release.set()
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["code"] == "gateway_unavailable"
    with app_request(shop.registry) as req:
        assert req.db.scalar(select(func.count()).select_from(Order)) == 0
        assert req.db.scalar(select(func.count()).select_from(PaymentAttempt)) == 0
    assert fake.trades == {} or mode == "slow"
