"""WeChat Pay end to end: a real shop (waitress on 127.0.0.1) and the fake
WeChat Pay of fakeprovider.py talking HTTP to each other.

The buyer orders through the JSON API, pays at the fake, the signed and
encrypted callback comes back (retried until the shop takes it), the worker
delivers; a lost callback is made good by the query job; an admin refund
reaches WeChat Pay once however often its job runs; a provider that
answers nonsense is a 502 with nothing written.
"""
from decimal import Decimal

import pytest
from kameng import jobs
from kameng.inventory import service as inventory
from kameng.orders.models import Order, Refund
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.testing import app_request, run_jobs
from sqlalchemy import func, select

from kameng_wechatpay.gateway import WechatPayGateway


def count(shop, model, *where) -> int:
    with app_request(shop.registry) as req:
        return req.db.scalar(select(func.count()).select_from(model).where(*where))


def make_due(shop) -> None:
    from kameng.db import utcnow
    from sqlalchemy import update

    with app_request(shop.registry) as req:
        req.db.execute(update(jobs.Job).where(jobs.Job.status == jobs.QUEUED).values(run_at=utcnow()))


def sku_counts(shop) -> dict:
    from kameng.catalog.models import Sku

    with app_request(shop.registry) as req:
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == "WXCARD"))
        return inventory.counts(req.db, sku_id)


def notices(shop, attempt_no) -> list[str]:
    with app_request(shop.registry) as req:
        return list(req.db.scalars(select(PaymentNotice.outcome).where(PaymentNotice.attempt_no == attempt_no)
                                   .order_by(PaymentNotice.id)))


def paid_and_delivered(shop, channel=None) -> dict:
    made = shop.order(channel)
    assert shop.fake.pay(made["payment"]["attempt_no"]) == [204]
    run_jobs(shop.registry)
    assert shop.view(made)["status"] == "delivered"
    return made


def test_a_native_order_is_paid_by_callback_and_delivered(shop):
    made = shop.order()
    payment = made["payment"]
    assert payment["gateway"] == "wechatpay" and payment["amount"] == "1.00"
    trade = shop.fake.trades[payment["attempt_no"]]
    assert payment["qr"] == f"weixin://wxpay/bizpayurl?pr={trade['prepay']}"
    assert trade["total"] == 100 and trade["notify_url"] == f"{shop.url}/pay/wechatpay/notify"
    assert trade["request"]["description"].startswith("Test card")
    assert shop.view(made)["status"] == "pending"

    assert shop.fake.pay(payment["attempt_no"]) == [204]
    run_jobs(shop.registry)
    seen = shop.view(made)
    assert seen["status"] == "delivered" and seen["items"][0]["keys"][0]["secret"].startswith("WXCARD-KEY-")
    with app_request(shop.registry) as req:
        attempt = req.db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == payment["attempt_no"]))
        assert attempt.status == "paid" and attempt.provider_trade_no == trade["transaction_id"]

    # WeChat Pay sends it again: taken (204), nothing more happens
    assert shop.fake.send_notify(payment["attempt_no"]) == [204]
    run_jobs(shop.registry)
    assert sku_counts(shop)["sold"] == 1
    assert notices(shop, payment["attempt_no"])[-2:] == ["applied", "duplicate"]


def test_a_refused_callback_is_retried_until_the_shop_takes_it(shop):
    made = shop.order()
    statuses = shop.fake.pay(made["payment"]["attempt_no"], tamper_first=True)
    assert statuses == [400, 204]
    run_jobs(shop.registry)
    assert shop.view(made)["status"] == "delivered"
    assert notices(shop, made["payment"]["attempt_no"]) == ["applied"]  # the refused one names no attempt


def test_the_refusal_is_wechat_pays_fail_json(shop):
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{shop.url}/pay/wechatpay/notify", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400 and json.loads(err.value.read()) == {"code": "FAIL", "message": "失败"}


def test_public_key_and_certificate_signatures_both_verify(shop):
    shop.fake.sign_mode, shop.fake.notify_mode = "public_key", "public_key"
    paid_and_delivered(shop)
    shop.fake.sign_mode, shop.fake.notify_mode = "certificate", "public_key"  # mid-migration: mixed
    paid_and_delivered(shop)


def test_an_h5_order_redirects_to_wechat_pay_and_back(shop):
    made = shop.order(channel="h5")
    url = made["payment"]["pay_url"]
    assert url.startswith("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx")
    from urllib.parse import parse_qs, urlsplit

    back = parse_qs(urlsplit(url).query)["redirect_url"][0]
    assert back == f"{shop.url}/pay/return/{made['payment']['attempt_no']}"
    trade = shop.fake.trades[made["payment"]["attempt_no"]]
    assert trade["request"]["scene_info"] == {"payer_client_ip": "127.0.0.1", "h5_info": {"type": "Wap"}}
    assert shop.fake.pay(made["payment"]["attempt_no"]) == [204]
    run_jobs(shop.registry)
    assert shop.view(made)["status"] == "delivered"


def test_an_unknown_channel_is_refused(shop):
    out = shop.order(channel="jsapi", status=422)
    assert out["error"]["code"] == "payment_method_unavailable"


def test_a_lost_callback_is_made_good_by_the_query_job(shop):
    made = shop.order()
    attempt_no = made["payment"]["attempt_no"]
    assert shop.fake.pay(attempt_no, notify=False) == []
    run_jobs(shop.registry)  # the query job (due at once here) asks WeChat Pay
    assert shop.view(made)["status"] == "delivered"
    assert notices(shop, attempt_no)[-1] == "query:applied"
    assert ("GET", f"/v3/pay/transactions/out-trade-no/{attempt_no}", 200) in shop.fake.calls


def test_an_admin_refund_reaches_wechat_pay_once_even_when_its_job_is_retried(shop, monkeypatch):
    made = paid_and_delivered(shop)
    # WeChat Pay takes the refund, then answers too late: the job cannot know it went through
    monkeypatch.setattr(WechatPayGateway, "timeout", 0.3)
    fake = shop.fake
    fake.fault, fake.fault_path, fake.fault_method, fake.fault_times = "slow", "/v3/refund/", "POST", 1
    got, out = shop.call("POST", f"/api/v1/admin/orders/{made['order_no']}/refund",
                         {"reason": "the buyer asked", "destination": "gateway"}, headers=shop.admin_headers())
    assert got == 200, out
    refund_no = out["refund"]["refund_no"]
    run_jobs(shop.registry)
    with app_request(shop.registry) as req:
        refund = req.db.scalar(select(Refund).where(Refund.refund_no == refund_no))
        assert refund.status == "pending"
    assert shop.fake.refund_posts[refund_no] == 1 and shop.fake.refunded_fen == 100
    make_due(shop)
    run_jobs(shop.registry)
    with app_request(shop.registry) as req:
        refund = req.db.scalar(select(Refund).where(Refund.refund_no == refund_no))
        assert refund.status == "succeeded" and refund.provider_refund_no == shop.fake.refunds[refund_no]["refund_id"]
        assert req.db.scalar(select(Order.status).where(Order.order_no == made["order_no"])) == "refunded"
    assert shop.fake.refund_posts[refund_no] == 1 and shop.fake.refunded_fen == 100
    request = shop.fake.refunds[refund_no]
    assert request["amount"]["refund"] == 100 and request["amount"]["total"] == 100


def test_a_refund_still_processing_is_asked_about_until_done(shop):
    made = paid_and_delivered(shop)
    shop.fake.refund_processing_queries = 1
    got, out = shop.call("POST", f"/api/v1/admin/orders/{made['order_no']}/refund",
                         {"reason": "part", "amount": "0.40", "destination": "gateway"}, headers=shop.admin_headers())
    assert got == 200, out
    refund_no = out["refund"]["refund_no"]
    run_jobs(shop.registry)
    assert shop.fake.refunds[refund_no]["status"] == "PROCESSING"
    make_due(shop)
    run_jobs(shop.registry)
    with app_request(shop.registry) as req:
        refund = req.db.scalar(select(Refund).where(Refund.refund_no == refund_no))
        order = req.db.scalar(select(Order).where(Order.order_no == made["order_no"]))
        assert refund.status == "succeeded" and order.refunded_amount == 40 and order.status == "delivered"
    assert shop.fake.refund_posts[refund_no] == 1 and shop.fake.refunded_fen == 40


def test_a_refund_wechat_pay_refuses_is_failed_for_the_admin(shop):
    made = paid_and_delivered(shop)
    shop.fake.trades[made["payment"]["attempt_no"]]["total"] = 50  # WeChat Pay knows another total: PARAM_ERROR
    got, out = shop.call("POST", f"/api/v1/admin/orders/{made['order_no']}/refund",
                         {"reason": "x", "destination": "gateway"}, headers=shop.admin_headers())
    assert got == 200, out
    run_jobs(shop.registry)
    with app_request(shop.registry) as req:
        refund = req.db.scalar(select(Refund).where(Refund.refund_no == out["refund"]["refund_no"]))
        assert refund.status == "failed" and "PARAM_ERROR" in refund.error
    assert shop.fake.refunded_fen == 0


@pytest.mark.parametrize("fault", ["500", "garbage", "signed_garbage", "unsigned", "badsig", "slow"])
def test_a_provider_answering_nonsense_is_a_502_with_nothing_written(shop, monkeypatch, fault):
    monkeypatch.setattr(WechatPayGateway, "timeout", 0.3)
    shop.fake.fault, shop.fake.slow_seconds = fault, 0.6
    before = sku_counts(shop)
    got, out = shop.call("POST", "/api/v1/orders", {"sku": "WXCARD", "quantity": 1, "contact": "buyer@example.com",
                                                    "query_password": "pass1234", "payment_method": "wechatpay"})
    assert got == 502 and out["error"]["code"] == "gateway_unavailable", out
    assert count(shop, Order) == 0 and count(shop, PaymentAttempt) == 0
    assert sku_counts(shop) == before
    assert count(shop, jobs.Job) == 0


def test_wrong_merchant_key_is_refused_by_wechat_pay(shop):
    from kameng_wechatpay import testing

    shop.fake.merchant_public_key = testing.stranger_key().public_key()
    got, out = shop.call("POST", "/api/v1/orders", {"sku": "WXCARD", "quantity": 1, "contact": "buyer@example.com",
                                                    "query_password": "pass1234", "payment_method": "wechatpay"})
    assert got == 502, out
    assert shop.fake.calls == [("POST", "/v3/pay/transactions/native", 401)]


def _gateway_and_attempt(shop, made):
    from kameng_wechatpay import testing

    with app_request(shop.registry) as req:
        attempt = req.db.scalar(select(PaymentAttempt).where(
            PaymentAttempt.attempt_no == made["payment"]["attempt_no"]))
        req.db.expunge(attempt)
    return WechatPayGateway(testing.settings(api_url=shop.fake.url)), attempt


def test_close_and_query(shop):
    from kameng.payments import GatewayError

    made = shop.order()
    gw, attempt = _gateway_and_attempt(shop, made)
    n = gw.query_payment(None, attempt)
    assert (n.status, n.amount, n.currency, n.provider_trade_no) == ("pending", Decimal(1), "CNY", "")
    gw.close_payment(None, attempt)
    assert shop.fake.trades[attempt.attempt_no]["trade_state"] == "CLOSED"
    gw.close_payment(None, attempt)  # closing twice is fine
    assert gw.query_payment(None, attempt).status == "closed"
    paid = shop.order()
    gw, paid_attempt = _gateway_and_attempt(shop, paid)
    shop.fake.pay(paid_attempt.attempt_no, notify=False)
    with pytest.raises(GatewayError, match="already paid"):
        gw.close_payment(None, paid_attempt)
    n = gw.query_payment(None, paid_attempt)
    assert n.status == "paid" and n.provider_trade_no == shop.fake.trades[paid_attempt.attempt_no]["transaction_id"]


def test_an_order_wechat_pay_does_not_know_queries_as_none(shop):
    made = shop.order()
    gw, attempt = _gateway_and_attempt(shop, made)
    del shop.fake.trades[attempt.attempt_no]
    assert gw.query_payment(None, attempt) is None


def test_an_unknown_certificate_serial_is_downloaded_once(shop):
    """Settings without platform certificates: the first answer signed by
    one makes the plugin fetch /v3/certificates (decrypted with the APIv3
    key); later ones use the kept copy."""
    from kameng_wechatpay import testing

    made = shop.order()
    gw = WechatPayGateway(testing.settings(api_url=shop.fake.url, platform_certificates=""))
    _gw, attempt = _gateway_and_attempt(shop, made)
    assert gw.query_payment(None, attempt).status == "pending"
    assert gw.query_payment(None, attempt).status == "pending"
    assert [c for c in shop.fake.calls if c[1] == "/v3/certificates"] == [("GET", "/v3/certificates", 200)]
