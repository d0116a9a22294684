"""End to end through a real kameng on 127.0.0.1 and the fake epay platform:
the buyer orders through the HTTP API, pays at the platform, the notify comes
back (retried until the shop says ``success``), the worker delivers the key;
a lost notify is found by the query job; an admin refund reaches the
platform once even when its answer is lost; a platform that answers garbage,
500 or nothing is a 502 with nothing written."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from kameng.catalog.models import Sku
from kameng.inventory import service as inventory
from kameng.orders.models import Order, Refund
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.testing import add_card_sku, app_request, run_jobs, set_plugin
from kameng_epay import provider
from kameng_epay.testing import TEST_KEY, key_pem

from epay_fakeprovider import acknowledged
from epay_helpers import FLAVOUR_IDS, FLAVOURS, admin_token, enable_epay, make_due

pytestmark = pytest.mark.slow

SKU = "EPAY1"


def body(channel="alipay", **extra) -> dict:
    out = {"sku": SKU, "quantity": 1, "contact": "buyer@example.com", "query_password": "pass1234",
           "payment_method": "epay", **extra}
    if channel:
        out["channel"] = channel
    return out


def place(shop, channel="alipay", status=201) -> dict:
    with shop.client() as client:
        resp = client.post("/api/v1/orders", json=body(channel))
    assert resp.status_code == status, resp.text
    return resp.json()


def view(shop, made) -> dict:
    with shop.client() as client:
        resp = client.get(f"/api/v1/orders/{made['order_no']}", params={"token": made["access_token"]})
    assert resp.status_code == 200, resp.text
    return resp.json()


def count(registry, model, *where) -> int:
    with app_request(registry) as req:
        return req.db.scalar(select(func.count()).select_from(model).where(*where))


def stored_action(registry, attempt_no) -> dict:
    with app_request(registry) as req:
        return json.loads(req.db.scalar(select(PaymentAttempt.action).where(PaymentAttempt.attempt_no == attempt_no)))


def keys_of(order_json) -> list:
    return [k["secret"] for item in order_json["items"] for k in item["keys"]]


@pytest.fixture
def setup(shop, fakes):
    """``setup(version, sign_mode, **settings)`` → the fake, with the shop selling ``EPAY1`` at 1.00 through it."""
    def make(version="1", sign_mode="plain", **settings):
        fake = fakes(version, sign_mode)
        add_card_sku(shop.registry, SKU, "1.00", keys=3)
        enable_epay(shop.registry, fake, **settings)
        return fake
    return make


def stranger_public_pem() -> str:
    """The public key of a pair that is neither the merchant's nor the platform's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# -- paying --------------------------------------------------------------------------------


@pytest.mark.parametrize("version,sign_mode", FLAVOURS, ids=FLAVOUR_IDS)
def test_a_paid_order_is_notified_and_delivered_once(shop, setup, version, sign_mode):
    fake = setup(version, sign_mode)
    made = place(shop, "alipay")
    payment = made["payment"]
    assert payment["gateway"] == "epay" and payment["pay_url"].startswith(fake.url + "pay/")
    trade = fake.trades[payment["attempt_no"]]
    # V1 opens the trade through mapi.php (MD5 notifies), V2 through api/pay/create (RSA notifies)
    assert trade.api is (version == "2") and trade.money == "1.00" and trade.type == "alipay"
    assert trade.notify_url == shop.url + "/pay/epay/notify"
    assert trade.return_url == f"{shop.url}/pay/return/{payment['attempt_no']}"

    # the buyer pays on the platform's page; the platform notifies, then sends the buyer back
    with shop.client() as buyer:
        assert buyer.get(payment["pay_url"]).status_code == 200
        paid = buyer.post(payment["pay_url"])
        assert paid.status_code == 302 and fake.notify_replies == [(200, "success")]
        back = buyer.get(paid.headers["location"])  # the return URL's query proves nothing: only the notify counts
        assert back.status_code == 303
    run_jobs(shop.registry)
    order = view(shop, made)
    assert order["status"] == "delivered" and len(keys_of(order)) == 1

    # the platform sends it again (a replay): acknowledged, nothing more delivered
    assert fake.send_notify(trade) == (200, "success")
    run_jobs(shop.registry)
    assert keys_of(view(shop, made)) == keys_of(order)
    with app_request(shop.registry) as req:
        assert inventory.counts(req.db, req.db.scalar(select(Order.sku_id)))["sold"] == 1
        outcomes = [n.outcome for n in req.db.scalars(select(PaymentNotice).order_by(PaymentNotice.id))]
    assert outcomes == ["applied", "duplicate"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_the_platform_retries_until_the_shop_answers_success(shop, setup, version):
    fake = setup(version)
    made = place(shop)
    fake.pay(made["payment"]["attempt_no"])

    def before(i):  # the merchant had pasted the wrong key, and fixes it before the second try
        key = "ThisIsNotTheMerchantKey000000000" if i == 0 else TEST_KEY
        if version == "2":
            set_plugin(shop.registry, "epay", platform_public_key=stranger_public_pem() if i == 0
                       else key_pem("platform_public"))
        else:
            set_plugin(shop.registry, "epay", key=key)

    replies = fake.deliver_notifies(made["payment"]["attempt_no"], before_attempt=before)
    assert replies == [(400, "fail"), (200, "success")]
    run_jobs(shop.registry)
    assert view(shop, made)["status"] == "delivered"


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_forged_notify_is_refused_and_changes_nothing(shop, setup, version):
    fake = setup(version)
    made = place(shop)
    trade = fake.trades[made["payment"]["attempt_no"]]  # never paid: every notify below is a forgery
    real_sign = fake.notify_fields(trade)["sign"]
    forged = [{"money": "0.01"}, {"sign": real_sign[:-2] + ("00" if real_sign[-2:] != "00" else "11")},
              {"trade_status": "WAIT_BUYER_PAY"}]
    for change in forged:  # changed after signing
        assert fake.send_notify(trade, after_sign=change) == (400, "fail"), change
    # validly signed, but a penny (B1 #9) or for another merchant: the core refuses them
    for change in ({"money": "0.01"}, {"pid": "1002"}):
        assert fake.send_notify(trade, **change) == (400, "fail"), change
    # the return URL with a correctly signed success in its query (B3 #19): a redirect, nothing more
    with shop.client() as buyer:
        assert buyer.get(trade.return_url, params=fake.notify_fields(trade)).status_code == 303
    run_jobs(shop.registry)
    assert view(shop, made)["status"] == "pending"


@pytest.mark.parametrize("version", ["1", "2"])
def test_wechat_answers_a_qr_code_and_an_html_answer_becomes_the_signed_page_jump(shop, setup, version):
    fake = setup(version)
    qr = place(shop, "wxpay")["payment"]
    assert qr["qr"] == "weixin://wxpay/bizpayurl?pr=" + fake.trades[qr["attempt_no"]].trade_no
    html = place(shop, "qqpay")["payment"]
    assert html["pay_url"].startswith(shop.url) and "qr" not in html
    action = stored_action(shop.registry, html["attempt_no"])
    assert action["kind"] == "form_post" and action["url"] == fake.url + "submit.php"
    assert action["fields"]["type"] == "qqpay" and action["fields"]["sign_type"] == ("RSA" if version == "2" else "MD5")
    # the browser posts the form: the platform takes it for the same trade (no "parameters changed")
    with shop.client() as client:
        resp = client.post(action["url"], data=action["fields"])
    assert resp.status_code == 200 and fake.trades[html["attempt_no"]].trade_no in resp.text


@pytest.mark.parametrize("version,sign_mode", FLAVOURS, ids=FLAVOUR_IDS)
def test_without_a_channel_the_buyer_gets_the_cashier_form(shop, setup, version, sign_mode):
    # V2 takes the cashier's MD5 notifies when the MD5 key is set too
    fake = setup(version, sign_mode, **({"key": TEST_KEY} if version == "2" else {}))
    made = place(shop, channel=None)
    action = stored_action(shop.registry, made["payment"]["attempt_no"])
    assert action["kind"] == "form_post" and action["url"] == fake.url + "submit.php"
    assert "type" not in action["fields"] and "timestamp" not in action["fields"]
    with shop.client() as client:
        assert client.post(action["url"], data=action["fields"]).status_code == 200
    trade = fake.pay(made["payment"]["attempt_no"])
    assert not trade.api  # submit.php trades are notified with MD5
    assert fake.deliver_notifies(trade.out_trade_no) == [(200, "success")]
    run_jobs(shop.registry)
    assert view(shop, made)["status"] == "delivered"


def test_v2_without_an_md5_key_finds_a_cashier_payment_by_query(shop, setup):
    fake = setup("2")
    made = place(shop, channel=None)
    action = stored_action(shop.registry, made["payment"]["attempt_no"])
    with shop.client() as client:
        assert client.post(action["url"], data=action["fields"]).status_code == 200
    trade = fake.pay(made["payment"]["attempt_no"])
    replies = fake.deliver_notifies(trade.out_trade_no)
    assert len(replies) == 5 and all(r == (400, "fail") for r in replies)  # MD5, and no key to check it
    run_jobs(shop.registry)  # the query job asks api/pay/query
    assert view(shop, made)["status"] == "delivered"


# -- reconciliation ------------------------------------------------------------------------


@pytest.mark.parametrize("version,sign_mode", FLAVOURS, ids=FLAVOUR_IDS)
def test_a_lost_notify_is_found_by_the_query_job(shop, setup, version, sign_mode):
    fake = setup(version, sign_mode)
    made = place(shop)
    fake.pay(made["payment"]["attempt_no"])  # paid, and the notify never arrives
    run_jobs(shop.registry)
    order = view(shop, made)
    assert order["status"] == "delivered" and len(keys_of(order)) == 1
    assert ("api/pay/query" if version == "2" else "api.php?act=order") in fake.calls


@pytest.mark.parametrize("version", ["1", "2"])
def test_an_unpaid_attempt_stays_pending_after_every_query_round(shop, setup, version):
    fake = setup(version)
    made = place(shop)
    run_jobs(shop.registry)
    assert view(shop, made)["status"] == "pending"
    queried = "api/pay/query" if version == "2" else "api.php?act=order"
    assert fake.calls.count(queried) == 4  # every round of the query schedule asked once


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_query_answered_with_garbage_changes_nothing(shop, setup, version):
    fake = setup(version)
    made = place(shop)
    fake.pay(made["payment"]["attempt_no"])
    fake.faults["api/pay/query" if version == "2" else "api.php?act=order"] = ["garbage"]
    run_jobs(shop.registry, limit=1)
    assert view(shop, made)["status"] == "pending"
    make_due(shop.registry)
    run_jobs(shop.registry)  # the job is retried and the platform answers this time
    assert view(shop, made)["status"] == "delivered"


# -- refunds -------------------------------------------------------------------------------


def pay_and_deliver(shop, fake) -> dict:
    made = place(shop)
    fake.pay(made["payment"]["attempt_no"])
    assert fake.deliver_notifies(made["payment"]["attempt_no"])[-1] == (200, "success")
    run_jobs(shop.registry)
    return made


def admin_refund(shop, made, headers, status=200) -> dict:
    with shop.client() as client:
        resp = client.post(f"/api/v1/admin/orders/{made['order_no']}/refund", headers=headers,
                           json={"reason": "customer asked", "destination": "gateway"})
    assert resp.status_code == status, resp.text
    return resp.json()


def refunds(registry) -> list[tuple]:
    with app_request(registry) as req:
        return [(r.status, r.amount, r.destination) for r in req.db.scalars(select(Refund).order_by(Refund.id))]


@pytest.mark.parametrize("version,sign_mode", FLAVOURS, ids=FLAVOUR_IDS)
def test_an_admin_refund_reaches_the_platform_once_even_when_its_answer_is_lost(shop, setup, version, sign_mode,
                                                                              monkeypatch):
    fake = setup(version, sign_mode)
    made = pay_and_deliver(shop, fake)
    headers = admin_token(shop.registry)
    monkeypatch.setattr(provider, "TIMEOUT", 0.5)
    endpoint = "api/pay/refund" if version == "2" else "api.php?act=refund"
    fake.faults[endpoint] = ["hang_after"]  # refunded, then the answer never comes
    admin_refund(shop, made, headers)
    # one run: the retry is due 0.01 s later, and a second run_jobs pass would already take it
    assert run_jobs(shop.registry, limit=1) == 1
    assert refunds(shop.registry) == [("pending", 100, "gateway")]
    assert fake.refund_executions == [(made["payment"]["attempt_no"], "1.00")]
    make_due(shop.registry)
    run_jobs(shop.registry)  # asks first, finds it done, does not refund again
    assert refunds(shop.registry) == [("succeeded", 100, "gateway")]
    assert fake.refund_executions == [(made["payment"]["attempt_no"], "1.00")]
    assert fake.calls.count(endpoint) == 1
    with shop.client() as client:
        order = client.get(f"/api/v1/admin/orders/{made['order_no']}", headers=headers).json()
    assert order["status"] == "refunded" and order["refunded"] == "1.00"


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_refund_the_platform_refuses_is_failed_with_its_reason(shop, setup, version):
    fake = setup(version)
    made = pay_and_deliver(shop, fake)
    fake.refund_api = False
    admin_refund(shop, made, admin_token(shop.registry))
    run_jobs(shop.registry)
    with app_request(shop.registry) as req:
        (refund,) = req.db.scalars(select(Refund)).all()
        assert refund.status == "failed" and "商户未开启订单退款API接口" in refund.error
    assert fake.refund_executions == []


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_refund_answered_with_500_stays_pending_and_is_retried(shop, setup, version):
    fake = setup(version)
    made = pay_and_deliver(shop, fake)
    fake.faults["api/pay/refund" if version == "2" else "api.php?act=refund"] = ["500"]
    admin_refund(shop, made, admin_token(shop.registry))
    assert run_jobs(shop.registry, limit=1) == 1
    assert refunds(shop.registry) == [("pending", 100, "gateway")] and fake.refund_executions == []
    make_due(shop.registry)
    run_jobs(shop.registry)
    assert refunds(shop.registry) == [("succeeded", 100, "gateway")] and len(fake.refund_executions) == 1


# -- the platform misbehaving at checkout --------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("fault", ["garbage", "500", "refuse", "hang"])
def test_a_platform_that_fails_at_checkout_is_a_502_and_nothing_is_written(shop, setup, version, fault, monkeypatch):
    fake = setup(version)
    monkeypatch.setattr(provider, "TIMEOUT", 0.3)
    fake.faults["api/pay/create" if version == "2" else "mapi.php"] = [fault]
    with shop.client() as client:
        resp = client.post("/api/v1/orders", json=body("alipay"))
    assert resp.status_code == 502 and resp.json()["error"]["code"] == "gateway_unavailable"
    assert fake.key not in resp.text
    assert count(shop.registry, Order) == 0 and count(shop.registry, PaymentAttempt) == 0
    with app_request(shop.registry) as req:
        assert inventory.counts(req.db, req.db.scalar(select(Sku.id).where(Sku.code == SKU)))["available"] == 3
    # the next try works and the stock was never taken
    assert place(shop)["status"] == "pending"


def test_a_v2_answer_signed_with_the_wrong_key_is_refused(shop, setup):
    from kameng_epay import protocol
    from kameng_epay.testing import key_pem

    fake = setup("2")
    fake.platform_private = protocol.load_private_key(key_pem("merchant_private"))
    with shop.client() as client:
        resp = client.post("/api/v1/orders", json=body("alipay"))
    assert resp.status_code == 502 and count(shop.registry, Order) == 0


def test_a_notify_to_a_switched_off_gateway_is_not_taken_as_acknowledged(shop, setup):
    fake = setup("1")
    made = place(shop)
    trade = fake.pay(made["payment"]["attempt_no"])
    set_plugin(shop.registry, "epay", enabled=False)
    status, text = fake.send_notify(trade)
    assert status == 404 and not acknowledged(text)
