"""The order core through the public API and the order service: pricing,
validation, idempotency, reservation and expiry, payment (gateway, balance,
late, duplicate, queried), delivery, refunds, the state machine and its audit
trail, access to orders, and the wallet ledger."""
import datetime as dt
import threading
import types

import kameng_ordertest as plug
import pytest
import webtest
from kameng_sandbox.gateway import SandboxGateway
from orders_helpers import (
    NO_LIMITS,
    count,
    enable_sandbox,
    key_counts,
    load_order,
    make_buyer,
    make_due,
    make_sku,
    order_body,
    post_notify,
    run_jobs,
    sold_keys,
    status_events,
)
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from kameng import jobs, ratelimit, wallet
from kameng.catalog.models import Sku
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.inventory.models import CardKey
from kameng.orders import pricing, service, states
from kameng.orders.models import Order, OrderEvent, Refund
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.testing import app_request, set_plugin
from kameng.types import Adjustment

ADMIN = "admin@example.com"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oapp(make_app):
    """The app with the order test plugin installed and the core's per-address limits off."""
    return make_app(extra_plugins=[("ordertest", plug)], **NO_LIMITS)


@pytest.fixture
def oregistry(oapp):
    return oapp.registry


@pytest.fixture
def api(oapp):
    return webtest.TestApp(oapp, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@pytest.fixture
def shop(oregistry):
    """Sandbox and the test plugin on; CARD10 (10.00, 5 keys). Gives the SKU's id."""
    plug.ADJUSTMENTS.clear()
    plug.QUERY_ANSWERS.clear()
    plug.CALLS.clear()
    enable_sandbox(oregistry)
    set_plugin(oregistry, "ordertest", enabled=True)
    yield make_sku(oregistry, "CARD10", price="10.00", keys=5)[1]
    plug.ADJUSTMENTS.clear()
    plug.QUERY_ANSWERS.clear()
    plug.HOLD_ON_PAID.clear()


def create(api, expect=201, headers=None, **body):
    return api.post_json("/api/v1/orders", order_body(**body), headers=headers or {}, status=expect)


def pay(api, created, expect=200):
    payment = created.json["payment"]
    return post_notify(api, payment["attempt_no"], payment["amount"], expect=expect)


def view(api, created_or_no, token=None, expect=200, **params):
    if not isinstance(created_or_no, str):
        token = created_or_no.json["access_token"]
        created_or_no = created_or_no.json["order_no"]
    if token is not None:
        params["token"] = token
    return api.get(f"/api/v1/orders/{created_or_no}", params, status=expect)


def error_code(resp):
    return resp.json["error"]["code"]


def assert_trail(registry, order_no):
    """Every status the order went through is in its audit trail, as one
    unbroken chain from ``pending`` to its current status, each with an actor."""
    order = load_order(registry, order_no)
    trail = status_events(registry, order_no)
    at = states.PENDING
    for old, new, actor, _msg in trail:
        assert old == at, trail
        assert states.can(old, new), trail
        assert actor, trail
        at = new
    assert at == order.status, trail
    return trail


def expire_now(registry, order_no):
    with app_request(registry) as req:
        req.db.execute(update(Order).where(Order.order_no == order_no)
                       .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    with app_request(registry) as req:
        jobs.enqueue(req.db, service.EXPIRE, {})
    run_jobs(registry)


def admin_refund(registry, order_no, amount=None, destination=None, reason="customer asked"):
    with app_request(registry, actor=ADMIN) as req:
        order = service.get(req.db, order_no, lock=True)
        refund = service.admin_refund(req, order, amount, reason, destination)
        return refund.refund_no if refund is not None else None


# -- pricing ---------------------------------------------------------------------------------


def test_pricing_keeps_the_best_of_each_exclusive_group_and_stores_the_steps(api, oregistry, shop):
    plug.ADJUSTMENTS[:] = [
        Adjustment("promo", "Spring sale", -100, code="SPRING", exclusive_group="promotion"),
        Adjustment("coupons", "Coupon BIG", -300, code="BIG", exclusive_group="promotion"),
        Adjustment("member", "Member discount", -50),
        Adjustment("fees", "Handling fee", 20),
    ]
    resp = create(api, quantity=2)
    # 2 × 10.00 = 20.00; of the group only the bigger discount (3.00) counts; -0.50 and +0.20 both count
    assert resp.json["amount"] == "16.70"
    assert resp.json["payment"]["amount"] == "16.70"
    order = load_order(oregistry, resp.json["order_no"])
    assert (order.subtotal, order.discount, order.amount, order.unit_price) == (2000, 330, 1670, 1000)
    steps = service.pricing_steps(order)
    assert steps[0] == {"step": "base", "unit": 1000, "quantity": 2, "amount": 2000}
    adjustments = sorted((s["source"], s["amount"]) for s in steps if s["step"] == "adjustment")
    assert adjustments == [("coupons", -300), ("fees", 20), ("member", -50)]
    assert steps[-1] == {"step": "total", "amount": 1670}
    # the buyer's page shows the same figures
    page = view(api, resp).json
    assert (page["subtotal"], page["discount"], page["amount"]) == ("20.00", "3.30", "16.70")


def test_pricing_order_of_plugins_does_not_matter_and_ties_are_stable():
    a = Adjustment("a", "A", -200, exclusive_group="g")
    b = Adjustment("b", "B", -200, exclusive_group="g")
    c = Adjustment("c", "C", -500, exclusive_group="g")
    for offered in ([a, b, c], [c, b, a], [b, c, a]):
        applied, dropped = pricing.resolve(offered)
        assert applied == [c] and sorted(d.source for d in dropped) == ["a", "b"]
    with pytest.raises(TypeError):
        pricing.resolve([Adjustment("x", "X", 1.5)])


def test_price_never_goes_below_zero_and_a_free_order_is_refused(api, oregistry, shop):
    from kameng.orders.checkout import find_sku

    plug.ADJUSTMENTS[:] = [Adjustment("coupons", "Huge coupon", -5000, code="HUGE")]
    with app_request(oregistry) as req:
        product, sku = find_sku(req.db, "CARD10")
        q = pricing.quote(req, product, sku, 1)
    assert (q.subtotal, q.discount, q.amount) == (1000, 5000, 0)
    assert {"step": "floor", "amount": 4000} in q.steps and q.steps[-1] == {"step": "total", "amount": 0}
    # discounts that add up to everything never give the goods away (SECURITY.md #36)
    resp = create(api, expect=422)
    assert error_code(resp) == "invalid_amount"
    assert count(oregistry, Order) == 0 and count(oregistry, PaymentAttempt) == 0
    assert key_counts(oregistry, shop)["reserved"] == 0
    plug.ADJUSTMENTS[:] = [Adjustment("coupons", "Coupon", -999, code="ALMOST")]
    assert create(api).json["amount"] == "0.01"


def test_client_sent_prices_are_ignored(api, oregistry, shop):
    resp = create(api, quantity=1, price="0.01", amount="0.01", total="0.01", discount="9.99", unit_price="0.01")
    assert resp.json["amount"] == "10.00"
    assert load_order(oregistry, resp.json["order_no"]).amount == 1000


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "1.5", "abc", True, None, [1], 10 ** 9, 11, "11"])
def test_bad_quantities_are_refused_and_nothing_is_written(api, oregistry, shop, quantity):
    resp = create(api, quantity=quantity, expect=422)
    assert error_code(resp) == "invalid_quantity"
    assert count(oregistry, Order) == 0
    assert key_counts(oregistry, shop) == {"available": 5, "reserved": 0, "sold": 0, "void": 0, "stock": 5}


def test_quantity_limits_come_from_the_sku(api, oregistry, shop):
    make_sku(oregistry, "BULK", price="1.00", keys=10, max_quantity=10)
    with app_request(oregistry) as req:
        req.db.execute(update(Sku).where(Sku.code == "BULK").values(min_quantity=3, max_quantity=4))
    resp = create(api, sku="BULK", quantity=2, expect=422)
    assert error_code(resp) == "invalid_quantity"
    assert (resp.json["error"]["min_quantity"], resp.json["error"]["max_quantity"]) == (3, 4)
    create(api, sku="BULK", quantity=5, expect=422)
    assert create(api, sku="BULK", quantity="4").json["amount"] == "4.00"


def test_more_than_the_stock_is_out_of_stock(api, oregistry, shop):
    resp = create(api, quantity=6, expect=409)
    assert error_code(resp) == "out_of_stock"
    create(api, quantity=5)
    resp = create(api, quantity=1, expect=409)
    assert error_code(resp) == "out_of_stock"
    assert count(oregistry, Order) == 1
    assert key_counts(oregistry, shop)["reserved"] == 5


@pytest.mark.parametrize("sku", ["NOPE", "", 123, None, "x" * 65])
def test_unknown_sku_is_404(api, oregistry, shop, sku):
    resp = api.post_json("/api/v1/orders", {**order_body(), "sku": sku}, status=(404, 422))
    if isinstance(sku, str) or sku is None:
        assert resp.status_int == 404 and error_code(resp) == "unknown_sku"
    else:
        assert error_code(resp) == "invalid_request"
    assert count(oregistry, Order) == 0


def test_hidden_sku_is_404_like_an_unknown_one(api, oregistry, shop):
    with app_request(oregistry) as req:
        req.db.execute(update(Sku).where(Sku.id == shop).values(visible=False))
    assert error_code(create(api, expect=404)) == "unknown_sku"


@pytest.mark.parametrize("contact", ["", "   ", "not-an-email", "a@b", "12345", "x" * 250 + "@example.com", 42])
def test_bad_contacts_are_refused(api, oregistry, shop, contact):
    resp = api.post_json("/api/v1/orders", {**order_body(), "contact": contact}, status=422)
    assert error_code(resp) in ("invalid_contact", "invalid_request")
    assert count(oregistry, Order) == 0


@pytest.mark.parametrize("contact", ["someone@example.com", "+8613800138000", "138-0013-8000"])
def test_good_contacts_are_accepted(api, shop, contact):
    create(api, contact=contact)


@pytest.mark.parametrize("password", ["", "abc", "x" * 65, None])
def test_guests_need_a_query_password_of_4_to_64_characters(api, oregistry, shop, password):
    resp = api.post_json("/api/v1/orders", {**order_body(), "query_password": password}, status=422)
    assert error_code(resp) == "invalid_query_password"
    assert count(oregistry, Order) == 0


def test_a_signed_in_buyer_needs_no_query_password(api, oregistry, shop):
    _uid, token = make_buyer(oregistry)
    resp = api.post_json("/api/v1/orders", {**order_body(), "query_password": "", "contact": ""},
                         headers={"Authorization": f"Bearer {token}"}, status=201)
    order = load_order(oregistry, resp.json["order_no"])
    assert order.contact == "buyer@example.com" and order.query_password_hash == ""
    # the owner reads it by token; nobody can read it with an empty password
    api.get(f"/api/v1/orders/{order.order_no}", headers={"Authorization": f"Bearer {token}"})
    view(api, order.order_no, query_password="", expect=404)


@pytest.mark.parametrize("method", ["nope", "", "SANDBOX", 7, "balance"])
def test_unavailable_payment_methods_are_refused(api, oregistry, shop, method):
    resp = api.post_json("/api/v1/orders", {**order_body(), "payment_method": method}, status=422)
    assert error_code(resp) in ("payment_method_unavailable", "invalid_request")
    if isinstance(method, str):
        assert error_code(resp) == "payment_method_unavailable"
    assert count(oregistry, Order) == 0
    assert key_counts(oregistry, shop)["reserved"] == 0


def test_a_disabled_gateway_is_unavailable(api, oregistry, shop):
    set_plugin(oregistry, "sandbox", enabled=False)
    assert error_code(create(api, expect=422)) == "payment_method_unavailable"
    assert count(oregistry, Order) == 0


def test_direct_recharge_checks_the_account_and_waits_for_the_shop(api, oregistry, shop):
    make_sku(oregistry, "PHONE50", price="50.00", type_="direct_recharge", keys=0, name="Phone credit",
             recharge_fields=[{"name": "phone", "label": "Phone", "kind": "mobile_cn"}])
    for recharge in ({}, {"phone": "12345"}, {"phone": "23800138000"}, {"phone": 13800138000}):
        resp = create(api, sku="PHONE50", recharge=recharge, expect=422)
        assert error_code(resp) == "invalid_recharge_account" and resp.json["error"]["field"] == "phone"
    resp = api.post_json("/api/v1/orders", {**order_body(sku="PHONE50"), "recharge": "13800138000"}, status=422)
    assert error_code(resp) == "invalid_request"
    assert count(oregistry, Order) == 0
    resp = create(api, sku="PHONE50", recharge={"phone": "13800138000", "extra": "dropped"})
    assert view(api, resp).json["recharge"] == {"phone": "13800138000"}
    pay(api, resp)
    run_jobs(oregistry)
    page = view(api, resp).json
    assert page["status"] == "delivering" and page["items"][0]["keys"] == []
    assert any("top up the account" in e["message"] for e in page["events"])
    with app_request(oregistry, actor=ADMIN) as req:
        order = service.get(req.db, resp.json["order_no"], lock=True)
        service.fulfil_by_hand(req, order, "topped up, receipt 42", actor=ADMIN)
    page = view(api, resp).json
    assert page["status"] == "delivered" and page["delivery_note"] == "topped up, receipt 42"
    assert assert_trail(oregistry, resp.json["order_no"])[-2:] == [
        ("paid", "delivering", "system", "Waiting for the shop to top up the account."),
        ("delivering", "delivered", ADMIN, "Fulfilled by the shop")]


def test_manual_goods_with_a_counted_stock(api, oregistry, shop):
    _pid, sku_id = make_sku(oregistry, "MANUAL", price="5.00", type_="manual", keys=0, stock=3)

    def stock():
        with app_request(oregistry) as req:
            return req.db.get(Sku, sku_id).stock

    first = create(api, sku="MANUAL", quantity=2)
    assert stock() == 1
    assert error_code(create(api, sku="MANUAL", quantity=2, expect=409)) == "out_of_stock"
    api.post(f"/api/v1/orders/{first.json['order_no']}/cancel?token={first.json['access_token']}")
    assert stock() == 3
    second = create(api, sku="MANUAL", quantity=3)
    pay(api, second)
    run_jobs(oregistry)
    assert load_order(oregistry, second.json["order_no"]).status == "delivering"
    assert stock() == 0  # sold: it does not come back


# -- idempotency -----------------------------------------------------------------------------


def test_same_idempotency_key_and_body_replays_the_order(api, oregistry, shop):
    headers = {"Idempotency-Key": "checkout-0001"}
    first = create(api, headers=headers, quantity=2)
    assert "Idempotent-Replayed" not in first.headers
    again = create(api, headers=headers, quantity=2)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["order_no"] == first.json["order_no"]
    assert again.json["payment"]["attempt_no"] == first.json["payment"]["attempt_no"]
    assert count(oregistry, Order) == 1 and count(oregistry, PaymentAttempt) == 1
    assert key_counts(oregistry, shop)["reserved"] == 2


def test_same_idempotency_key_with_another_body_is_a_conflict(api, oregistry, shop):
    headers = {"Idempotency-Key": "checkout-0002"}
    create(api, headers=headers, quantity=1)
    for changed in ({"quantity": 2}, {"contact": "other@example.com"}, {"query_password": "other-pass"}):
        resp = create(api, headers=headers, expect=409, **changed)
        assert error_code(resp) == "idempotency_conflict"
    assert count(oregistry, Order) == 1 and key_counts(oregistry, shop)["reserved"] == 1


def test_keys_are_scoped_to_the_buyer(api, oregistry, shop):
    _uid, token = make_buyer(oregistry)
    key = {"Idempotency-Key": "checkout-0003"}
    guest = create(api, headers=key)
    mine = create(api, headers={**key, "Authorization": f"Bearer {token}"})
    assert guest.json["order_no"] != mine.json["order_no"] and count(oregistry, Order) == 2


def test_without_a_key_two_requests_are_two_orders(api, oregistry, shop):
    a, b = create(api), create(api)
    assert a.json["order_no"] != b.json["order_no"]
    assert count(oregistry, Order) == 2 and key_counts(oregistry, shop)["reserved"] == 2


def test_a_refused_request_stores_nothing_under_its_key(api, oregistry, shop):
    headers = {"Idempotency-Key": "checkout-0004"}
    create(api, headers=headers, quantity=6, expect=409)
    create(api, headers=headers, quantity=5)  # the same key, now a request that works
    assert count(oregistry, Order) == 1
    for bad in ("short", "has spaces in it", "x" * 129):
        resp = create(api, headers={"Idempotency-Key": bad}, expect=400)
        assert error_code(resp) == "invalid_request"


# -- reservation, expiry, cancellation --------------------------------------------------------


def test_stock_is_reserved_at_creation_and_released_at_expiry(api, oregistry, shop):
    resp = create(api, quantity=2)
    no = resp.json["order_no"]
    assert key_counts(oregistry, shop) == {"available": 3, "reserved": 2, "sold": 0, "void": 0, "stock": 3}
    with app_request(oregistry) as req:
        assert service.expire_due(req) == 0  # not due yet
    assert load_order(oregistry, no).status == "pending"
    expire_now(oregistry, no)
    assert load_order(oregistry, no).status == "expired"
    assert key_counts(oregistry, shop) == {"available": 5, "reserved": 0, "sold": 0, "void": 0, "stock": 5}
    assert assert_trail(oregistry, no) == [("pending", "expired", "system", "Not paid in time")]
    # an expired order cannot be paid again through the API
    resp = api.post_json(f"/api/v1/orders/{no}/pay?token={resp.json['access_token']}",
                         {"payment_method": "sandbox"}, status=409)
    assert error_code(resp) == "order_not_payable"


def test_cancel_releases_and_only_unpaid_orders_cancel(api, oregistry, shop):
    resp = create(api, quantity=3)
    no, token = resp.json["order_no"], resp.json["access_token"]
    api.post(f"/api/v1/orders/{no}/cancel", status=404)  # no token, no password: not found
    assert api.post(f"/api/v1/orders/{no}/cancel?token={token}").json["status"] == "cancelled"
    assert key_counts(oregistry, shop) == {"available": 5, "reserved": 0, "sold": 0, "void": 0, "stock": 5}
    assert error_code(api.post(f"/api/v1/orders/{no}/cancel?token={token}", status=409)) == "illegal_transition"
    assert assert_trail(oregistry, no) == [("pending", "cancelled", "buyer", "Cancelled by the buyer")]
    paid = create(api)
    pay(api, paid)
    resp = api.post(f"/api/v1/orders/{paid.json['order_no']}/cancel?token={paid.json['access_token']}", status=409)
    assert error_code(resp) == "illegal_transition"
    assert load_order(oregistry, paid.json["order_no"]).status == "delivered"


# -- payment -----------------------------------------------------------------------------------


def test_paid_order_is_delivered_once_with_its_keys(api, oregistry, shop):
    resp = create(api, quantity=2)
    no = resp.json["order_no"]
    assert view(api, resp).json["items"][0]["keys"] == []
    assert pay(api, resp).text == "success"
    # its own stock's keys are handed over in the notify's commit: no job, no wait;
    # and the reconciliation query queued with the attempt has nothing left to ask
    assert count(oregistry, jobs.Job, jobs.Job.kind == service.DELIVER) == 0
    assert count(oregistry, jobs.Job, jobs.Job.kind == service.QUERY) == 0
    page = view(api, resp).json
    assert page["status"] == "delivered"
    secrets_ = [k["secret"] for k in page["items"][0]["keys"]]
    assert len(secrets_) == 2 and len(set(secrets_)) == 2 and all(s.startswith("CARD10-KEY-") for s in secrets_)
    assert key_counts(oregistry, shop) == {"available": 3, "reserved": 0, "sold": 2, "void": 0, "stock": 3}
    # the same notify again changes nothing
    assert pay(api, resp).text == "success"
    run_jobs(oregistry)
    assert len(sold_keys(oregistry, no)) == 2
    assert plug.CALLS == [("paid", no), ("delivered", no)]
    assert count(oregistry, jobs.Job, jobs.Job.kind == service.DELIVER) == 0
    assert assert_trail(oregistry, no) == [("pending", "paid", "gateway:sandbox", ""),
                                           ("paid", "delivered", "system", "Card keys delivered")]


def test_a_plugin_can_hold_a_paid_order_for_review_before_it_is_delivered(api, oregistry, shop):
    plug.HOLD_ON_PAID.append("risk: new buyer")
    resp = create(api)
    no = resp.json["order_no"]
    assert pay(api, resp).text == "success"
    order = load_order(oregistry, no)
    assert order.status == "paid" and order.held == "risk: new buyer"
    assert sold_keys(oregistry, no) == [] and key_counts(oregistry, shop)["reserved"] == 1
    run_jobs(oregistry)  # the delivery job sees the hold and waits
    assert load_order(oregistry, no).status == "paid" and plug.CALLS == [("paid", no)]


def test_a_failed_payment_leaves_the_order_pending_and_payable(api, oregistry, shop):
    resp = create(api)
    no, token = resp.json["order_no"], resp.json["access_token"]
    assert pay_failed(api, resp).text == "success"
    order = load_order(oregistry, no)
    assert order.status == "pending" and order.paid_at is None
    assert key_counts(oregistry, shop)["reserved"] == 1
    assert any("payment failed" in e["message"] for e in view(api, resp).json["events"])
    # the buyer tries again: a new attempt, which pays
    again = api.post_json(f"/api/v1/orders/{no}/pay?token={token}", {"payment_method": "sandbox"}).json
    assert again["payment"]["attempt_no"] != resp.json["payment"]["attempt_no"]
    post_notify(api, again["payment"]["attempt_no"], again["payment"]["amount"])
    run_jobs(oregistry)
    assert load_order(oregistry, no).status == "delivered"
    assert len(sold_keys(oregistry, no)) == 1


def pay_failed(api, created):
    payment = created.json["payment"]
    return post_notify(api, payment["attempt_no"], payment["amount"], status="failed")


@pytest.mark.parametrize("amount", ["9.99", "10.01", "0.01", "100.00", "1000"])
def test_a_wrong_amount_is_refused(api, oregistry, shop, amount):
    resp = create(api)
    post_notify(api, resp.json["payment"]["attempt_no"], amount, expect=400)
    run_jobs(oregistry)
    assert load_order(oregistry, resp.json["order_no"]).status == "pending"
    assert sold_keys(oregistry, resp.json["order_no"]) == []
    with app_request(oregistry) as req:
        assert req.db.scalar(select(PaymentNotice.outcome)) == "amount_mismatch"


def test_the_amount_is_the_order_snapshot_not_the_current_price(api, oregistry, shop):
    resp = create(api)
    with app_request(oregistry) as req:
        req.db.execute(update(Sku).where(Sku.id == shop).values(price=1))
    post_notify(api, resp.json["payment"]["attempt_no"], "0.01", expect=400)
    pay(api, resp)
    assert load_order(oregistry, resp.json["order_no"]).status == "delivered"


def test_late_payment_with_stock_left_is_delivered(api, oregistry, shop):
    resp = create(api, quantity=2)
    no = resp.json["order_no"]
    expire_now(oregistry, no)
    assert key_counts(oregistry, shop)["available"] == 5
    assert pay(api, resp).text == "success"
    run_jobs(oregistry)
    assert load_order(oregistry, no).status == "delivered"
    assert len(sold_keys(oregistry, no)) == 2
    assert key_counts(oregistry, shop) == {"available": 3, "reserved": 0, "sold": 2, "void": 0, "stock": 3}
    trail = assert_trail(oregistry, no)
    assert [(a, b) for a, b, _actor, _m in trail] == [("pending", "expired"), ("expired", "paid"),
                                                      ("paid", "delivered")]
    assert trail[1][2] == "gateway:sandbox" and "after the order had expired" in trail[1][3]


def test_late_payment_without_stock_is_refunded_through_the_gateway(api, oregistry, shop):
    late = create(api, quantity=3)
    no = late.json["order_no"]
    expire_now(oregistry, no)
    other = create(api, quantity=4)  # takes what the expired order gave back
    pay(api, other)
    run_jobs(oregistry)
    assert pay(api, late).text == "success"  # the money arrived: acknowledge it
    run_jobs(oregistry)
    order = load_order(oregistry, no)
    assert order.status == "refunded" and order.refunded_amount == 3000
    assert sold_keys(oregistry, no) == [] and len(sold_keys(oregistry, other.json["order_no"])) == 4
    assert key_counts(oregistry, shop) == {"available": 1, "reserved": 0, "sold": 4, "void": 0, "stock": 1}
    with app_request(oregistry) as req:
        refunds = service.refunds_of(req.db, order)
    assert [(r.destination, r.status, r.amount) for r in refunds] == [("gateway", "succeeded", 3000)]
    assert refunds[0].provider_refund_no == "SBXR" + refunds[0].refund_no
    assert [(a, b) for a, b, _actor, _m in assert_trail(oregistry, no)] == [
        ("pending", "expired"), ("expired", "paid"), ("paid", "failed"), ("failed", "refunded")]


def test_late_payment_after_cancel_takes_the_same_path(api, oregistry, shop):
    resp = create(api)
    api.post(f"/api/v1/orders/{resp.json['order_no']}/cancel?token={resp.json['access_token']}")
    pay(api, resp)
    run_jobs(oregistry)
    assert load_order(oregistry, resp.json["order_no"]).status == "delivered"


def test_a_second_paid_attempt_for_a_paid_order_is_refunded(api, oregistry, shop, monkeypatch):
    from kameng_sandbox.gateway import SandboxGateway

    monkeypatch.setattr(SandboxGateway, "channels", lambda self: [("other", "Other")])
    first = create(api)
    no, token = first.json["order_no"], first.json["access_token"]
    # the buyer opened a second payment (another channel) and then paid both
    second = api.post_json(f"/api/v1/orders/{no}/pay?token={token}",
                           {"payment_method": "sandbox", "channel": "other"}).json["payment"]
    assert second["attempt_no"] != first.json["payment"]["attempt_no"]
    pay(api, first)
    run_jobs(oregistry)
    assert post_notify(api, second["attempt_no"], second["amount"]).text == "success"
    run_jobs(oregistry)
    order = load_order(oregistry, no)
    assert order.status == "delivered" and len(sold_keys(oregistry, no)) == 1  # no second delivery
    assert order.refunded_amount == 0  # the order's own payment is untouched
    with app_request(oregistry) as req:
        refunds = service.refunds_of(req.db, order)
        second_id = req.db.scalar(select(PaymentAttempt.id).where(PaymentAttempt.attempt_no == second["attempt_no"]))
    assert [(r.attempt_id, r.amount, r.destination, r.status) for r in refunds] == [
        (second_id, 1000, "gateway", "succeeded")]
    assert plug.CALLS.count(("paid", no)) == 1 and plug.CALLS.count(("delivered", no)) == 1


# -- balance payments and the wallet ---------------------------------------------------------


def test_balance_payment_debits_the_wallet_and_delivers(api, oregistry, shop):
    uid, token = make_buyer(oregistry, balance=10000)
    resp = api.post_json("/api/v1/orders", {**order_body(quantity=2), "payment_method": "balance"},
                         headers={"Authorization": f"Bearer {token}"}, status=201)
    no = resp.json["order_no"]
    assert resp.json["status"] == "delivered" and resp.json["payment"]["gateway"] == "balance"
    assert load_order(oregistry, no).status == "delivered" and len(sold_keys(oregistry, no)) == 2
    with app_request(oregistry) as req:
        assert wallet.balance(req.db, uid) == 8000
        entries = [(e.amount, e.balance_after, e.reason, e.ref) for e in reversed(wallet.entries(req.db, uid))]
    assert entries == [(10000, 10000, "admin", None), (-2000, 8000, "order", f"order:{no}")]
    assert assert_trail(oregistry, no)[0] == ("pending", "paid", "buyer@example.com", "Paid from balance")


def test_insufficient_balance_is_409_and_writes_nothing(api, oregistry, shop):
    uid, token = make_buyer(oregistry, balance=500)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "balance-0001"}
    body = {**order_body(quantity=1), "payment_method": "balance"}
    resp = api.post_json("/api/v1/orders", body, headers=headers, status=409)
    assert error_code(resp) == "insufficient_balance" and resp.json["error"]["balance"] == "5.00"
    assert count(oregistry, Order) == 0 and count(oregistry, OrderEvent) == 0
    assert count(oregistry, wallet.LedgerEntry) == 1
    assert count(oregistry, jobs.Job) == 0
    assert key_counts(oregistry, shop) == {"available": 5, "reserved": 0, "sold": 0, "void": 0, "stock": 5}
    with app_request(oregistry) as req:
        wallet.post(req.db, uid, 500, "CNY", "admin")
    # the refused request left nothing under its key: the retry creates the order
    resp = api.post_json("/api/v1/orders", body, headers=headers, status=201)
    assert "Idempotent-Replayed" not in resp.headers and resp.json["status"] == "delivered"
    with app_request(oregistry) as req:
        assert wallet.balance(req.db, uid) == 0


def test_guests_cannot_pay_with_a_balance(api, oregistry, shop):
    resp = api.post_json("/api/v1/orders", {**order_body(), "payment_method": "balance"}, status=422)
    assert error_code(resp) == "payment_method_unavailable"


def test_refund_to_the_balance(api, oregistry, shop):
    uid, token = make_buyer(oregistry)
    auth = {"Authorization": f"Bearer {token}"}
    resp = api.post_json("/api/v1/orders", order_body(quantity=2), headers=auth, status=201)
    no = resp.json["order_no"]
    pay(api, resp)
    run_jobs(oregistry)
    refund_no = admin_refund(oregistry, no, destination="balance")
    order = load_order(oregistry, no)
    assert order.status == "refunded" and order.refunded_amount == 2000
    with app_request(oregistry) as req:
        assert wallet.balance(req.db, uid) == 2000
        entry = wallet.existing(req.db, f"refund:{refund_no}")
        assert (entry.amount, entry.reason) == (2000, "refund")
        (refund,) = service.refunds_of(req.db, order)
    assert (refund.destination, refund.status, refund.created_by) == ("balance", "succeeded", ADMIN)
    # the delivered keys stay sold (the buyer has seen them); nothing is refunded twice
    assert len(sold_keys(oregistry, no)) == 2
    with pytest.raises(APIError) as exc:
        admin_refund(oregistry, no, destination="balance")
    assert exc.value.code == "illegal_transition"
    assert assert_trail(oregistry, no)[-1] == ("delivered", "refunded", ADMIN, "customer asked")


def test_a_balance_paid_order_is_refunded_to_the_balance(api, oregistry, shop):
    uid, token = make_buyer(oregistry, balance=1000)
    resp = api.post_json("/api/v1/orders", {**order_body(), "payment_method": "balance"},
                         headers={"Authorization": f"Bearer {token}"}, status=201)
    run_jobs(oregistry)
    admin_refund(oregistry, resp.json["order_no"], destination="gateway")  # a balance payment goes back there
    with app_request(oregistry) as req:
        assert wallet.balance(req.db, uid) == 1000


def test_partial_refunds_never_exceed_what_was_paid(api, oregistry, shop):
    resp = create(api, quantity=2)
    no = resp.json["order_no"]
    pay(api, resp)
    run_jobs(oregistry)
    admin_refund(oregistry, no, amount=500)
    run_jobs(oregistry)
    order = load_order(oregistry, no)
    assert order.status == "delivered" and order.refunded_amount == 500
    for too_much in (1501, 2000):
        with pytest.raises(APIError) as exc:
            admin_refund(oregistry, no, amount=too_much)
        assert exc.value.code == "refund_too_large"
    admin_refund(oregistry, no, amount=1500)
    run_jobs(oregistry)
    order = load_order(oregistry, no)
    assert order.status == "refunded" and order.refunded_amount == 2000
    with pytest.raises(APIError):
        admin_refund(oregistry, no, amount=1)


def test_a_gateway_refund_retry_reuses_its_refund_number(api, oregistry, shop, monkeypatch):
    resp = create(api)
    no = resp.json["order_no"]
    pay(api, resp)
    run_jobs(oregistry)
    calls = []
    real = SandboxGateway.refund
    engine = oregistry["kameng.engine"]

    def flaky(self, request, attempt, refund):
        # the refund row (and its number) was committed before the gateway is called
        with Session(engine) as s:
            stored = s.scalar(select(Refund.refund_no).where(Refund.id == refund.id))
        calls.append((refund.refund_no, stored))
        if len(calls) == 1:
            raise TimeoutError("the gateway did not answer")
        return real(self, request, attempt, refund)

    monkeypatch.setattr(SandboxGateway, "refund", flaky)
    refund_no = admin_refund(oregistry, no)
    assert run_jobs(oregistry, limit=1) == 1  # the refund job, failing
    with app_request(oregistry) as req:
        (refund,) = service.refunds_of(req.db, load_order(oregistry, no))
        job = req.db.scalar(select(jobs.Job).where(jobs.Job.kind == service.REFUND))
    assert refund.status == "pending" and refund.refund_no == refund_no
    assert job.status == jobs.QUEUED and "did not answer" in job.last_error
    make_due(oregistry)
    run_jobs(oregistry)
    assert calls == [(refund_no, refund_no), (refund_no, refund_no)]
    with app_request(oregistry) as req:
        refunds = service.refunds_of(req.db, load_order(oregistry, no))
    assert [(r.refund_no, r.status, r.provider_refund_no) for r in refunds] == [
        (refund_no, "succeeded", "SBXR" + refund_no)]
    assert load_order(oregistry, no).status == "refunded"


def test_refunding_an_undelivered_order_stops_its_delivery(api, oregistry, shop):
    resp = create(api, quantity=2)
    no = resp.json["order_no"]
    with app_request(oregistry) as req:  # held for review: paid, not delivered
        req.db.execute(update(Order).where(Order.order_no == no).values(held="review"))
    pay(api, resp)
    assert load_order(oregistry, no).status == "paid"
    admin_refund(oregistry, no, reason="changed mind")
    run_jobs(oregistry)
    assert load_order(oregistry, no).status == "refunded"
    assert sold_keys(oregistry, no) == []
    assert key_counts(oregistry, shop) == {"available": 5, "reserved": 0, "sold": 0, "void": 0, "stock": 5}


# -- the state machine and its audit trail -----------------------------------------------------


def test_transition_refuses_every_jump_not_in_the_table():
    added = []
    db = types.SimpleNamespace(add=added.append)
    for old in states.STATUSES:
        for new in states.STATUSES:
            order = types.SimpleNamespace(id=1, order_no="1", status=old, paid_at=None, delivered_at=None,
                                          updated_at=None)
            if new in states.TRANSITIONS[old]:
                states.transition(db, order, new, actor="t")
                assert order.status == new
            else:
                with pytest.raises(states.IllegalTransition):
                    states.transition(db, order, new, actor="t")
                assert order.status == old
    legal = sum(len(v) for v in states.TRANSITIONS.values())
    assert len(added) == legal
    # the jumps that would give goods or money away are among the refused ones
    for old, new in (("pending", "delivered"), ("pending", "delivering"), ("pending", "refunded"),
                     ("expired", "delivered"), ("cancelled", "delivered"), ("refunded", "paid"),
                     ("delivered", "paid"), ("delivered", "delivered"), ("paid", "pending")):
        assert not states.can(old, new)


def test_illegal_transitions_on_real_orders_write_nothing(api, oregistry, shop):
    resp = create(api)
    no = resp.json["order_no"]
    pay(api, resp)
    run_jobs(oregistry)
    before = count(oregistry, OrderEvent)
    for target in ("pending", "paid", "expired", "cancelled", "delivering"):
        with pytest.raises(states.IllegalTransition), app_request(oregistry) as req:
                states.transition(req.db, service.get(req.db, no, lock=True), target, actor="t")
    assert load_order(oregistry, no).status == "delivered" and count(oregistry, OrderEvent) == before
    with app_request(oregistry, actor=ADMIN) as req:
        order = service.get(req.db, no, lock=True)
        with pytest.raises(APIError):
            service.cancel(req, order, actor=ADMIN, reason="x")
        with pytest.raises(APIError):
            service.redeliver(req, order, actor=ADMIN, reason="x")
        with pytest.raises(APIError):
            service.fulfil_by_hand(req, order, "x", actor=ADMIN)


def test_the_audit_trail_records_every_transition_with_actor_and_reason(api, oregistry, shop):
    resp = create(api)
    no = resp.json["order_no"]
    pay(api, resp)
    run_jobs(oregistry)
    admin_refund(oregistry, no, reason="key did not work")
    run_jobs(oregistry)
    trail = assert_trail(oregistry, no)
    assert trail == [("pending", "paid", "gateway:sandbox", ""),
                     ("paid", "delivered", "system", "Card keys delivered"),
                     ("delivered", "refunded", ADMIN, "key did not work")]
    with app_request(oregistry) as req:
        order = service.get(req.db, no)
        everything = [(e.kind, e.actor) for e in service.events_of(req.db, order, public_only=False)]
    assert everything[0] == ("created", "buyer")
    assert ("payment", "buyer") in everything  # the attempt was recorded (not shown to the buyer)
    assert ("refund", ADMIN) in everything
    # the buyer sees the public part of the same trail
    shown = [(e["from"], e["to"]) for e in view(api, resp).json["events"] if e["kind"] == "status"]
    assert shown == [("pending", "paid"), ("paid", "delivered"), ("delivered", "refunded")]


# -- invalid keys ------------------------------------------------------------------------------


def replace(registry, no, key_id):
    with app_request(registry, actor=ADMIN) as req:
        return service.replace_key(req, service.get(req.db, no, lock=True), key_id, actor=ADMIN,
                                   reason="buyer says it is used")


def test_an_invalid_key_is_replaced_from_stock(api, oregistry, shop):
    resp = create(api, quantity=2)
    no = resp.json["order_no"]
    pay(api, resp)
    run_jobs(oregistry)
    before = [k["secret"] for k in view(api, resp).json["items"][0]["keys"]]
    bad, good = sold_keys(oregistry, no)
    assert replace(oregistry, no, bad) == "replaced"
    now = [k["secret"] for k in view(api, resp).json["items"][0]["keys"]]
    assert len(now) == 2 and before[1] in now and before[0] not in now
    assert bad not in sold_keys(oregistry, no) and good in sold_keys(oregistry, no)
    with app_request(oregistry) as req:
        assert req.db.get(CardKey, bad).state == "void"
    assert key_counts(oregistry, shop) == {"available": 2, "reserved": 0, "sold": 2, "void": 1, "stock": 2}
    assert load_order(oregistry, no).status == "delivered" and count(oregistry, Refund) == 0
    with pytest.raises(APIError) as exc:
        replace(oregistry, no, bad)  # a void key is not a delivered key any more
    assert exc.value.code == "not_replaceable"


def test_an_invalid_key_with_no_stock_left_refunds_its_share(api, oregistry, shop):
    resp = create(api, quantity=5)  # every key
    no = resp.json["order_no"]
    pay(api, resp)
    run_jobs(oregistry)
    bad = sold_keys(oregistry, no)[0]
    assert replace(oregistry, no, bad) == "refunded"
    run_jobs(oregistry)
    order = load_order(oregistry, no)
    assert order.status == "delivered" and order.refunded_amount == 1000
    with app_request(oregistry) as req:
        (refund,) = service.refunds_of(req.db, order)
    assert (refund.amount, refund.destination, refund.status) == (1000, "gateway", "succeeded")
    assert len(sold_keys(oregistry, no)) == 4
    assert key_counts(oregistry, shop) == {"available": 0, "reserved": 0, "sold": 4, "void": 1, "stock": 0}


def test_a_key_of_another_order_cannot_be_replaced(api, oregistry, shop):
    a, b = create(api), create(api)
    for r in (a, b):
        pay(api, r)
    run_jobs(oregistry)
    with pytest.raises(APIError):
        replace(oregistry, a.json["order_no"], sold_keys(oregistry, b.json["order_no"])[0])
    assert count(oregistry, CardKey, CardKey.state == "void") == 0


# -- payments that never notify -----------------------------------------------------------------


def test_the_query_job_pays_an_order_whose_notify_never_came(api, oregistry, shop):
    resp = create(api, payment_method="ordertest", quantity=2)
    no, attempt_no = resp.json["order_no"], resp.json["payment"]["attempt_no"]
    assert resp.json["payment"]["qr"] == f"fake://{attempt_no}"
    assert run_jobs(oregistry) == 0  # the first query is minutes away
    make_due(oregistry)
    run_jobs(oregistry)  # the gateway knows nothing yet: asked again later
    assert load_order(oregistry, no).status == "pending"
    with app_request(oregistry) as req:
        assert req.db.scalar(select(jobs.Job.dedupe_key).where(jobs.Job.status == jobs.QUEUED)) == \
            f"query:{attempt_no}:1"
    plug.QUERY_ANSWERS[attempt_no] = ("paid", "19.99")  # a wrong amount is not taken from a query either
    make_due(oregistry)
    run_jobs(oregistry)
    assert load_order(oregistry, no).status == "pending"
    plug.QUERY_ANSWERS[attempt_no] = ("paid", "20.00")
    make_due(oregistry)
    run_jobs(oregistry)
    order = load_order(oregistry, no)
    assert order.status == "delivered" and len(sold_keys(oregistry, no)) == 2
    assert assert_trail(oregistry, no)[0][:3] == ("pending", "paid", "gateway:ordertest")
    with app_request(oregistry) as req:
        outcomes = list(req.db.scalars(select(PaymentNotice.outcome).order_by(PaymentNotice.id)))
    # "not known yet" is kept too: the admin sees the shop asked
    assert outcomes == ["query:unknown", "query:amount_mismatch", "query:applied"]
    make_due(oregistry)
    run_jobs(oregistry)  # a paid attempt is not asked about any more
    assert count(oregistry, PaymentNotice) == 3
    assert plug.CALLS.count(("delivered", no)) == 1


# -- who may read an order ----------------------------------------------------------------------


def test_wrong_password_is_404_exactly_like_an_unknown_order(api, oregistry, shop):
    resp = create(api)
    no = resp.json["order_no"]
    other = create(api)
    unknown = "2" + no[1:] if no[0] != "2" else "3" + no[1:]
    answers = [
        view(api, no, query_password="wrong-pass", expect=404),
        view(api, unknown, query_password="wrong-pass", expect=404),
        view(api, unknown, query_password="pass1234", expect=404),
        view(api, no, expect=404),
        view(api, no, token=other.json["access_token"], expect=404),
        view(api, no, token="0" * 64, expect=404),
        view(api, "not-a-number", query_password="pass1234", expect=404),
    ]
    assert all(a.json == answers[0].json for a in answers)
    assert all(a.headers["Content-Type"] == answers[0].headers["Content-Type"] for a in answers)
    assert view(api, no, query_password="pass1234").json["order_no"] == no
    assert view(api, resp).json["order_no"] == no


def test_keys_are_only_shown_to_who_may_see_the_order(api, oregistry, shop):
    resp = create(api)
    pay(api, resp)
    run_jobs(oregistry)
    no = resp.json["order_no"]
    secret = view(api, resp).json["items"][0]["keys"][0]["secret"]
    for wrong in ({"query_password": "PASS1234"}, {"query_password": "pass1234 "}, {"query_password": "pass123"},
                  {"token": ""}, {}):
        r = api.get(f"/api/v1/orders/{no}", wrong, status=404)
        assert secret not in r.text


@pytest.fixture(scope="module")
def limited_app(make_app):
    return make_app(**{"kameng.limits.lookups_per_ip_per_minute": "3",
                       "kameng.limits.orders_per_ip_per_minute": "2"})


@pytest.fixture
def frozen_window(monkeypatch):
    """Pin the rate limiter's clock inside one window, so a test never straddles two."""
    start = int(utcnow().timestamp()) // 60 * 60 + 1
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: float(start)))


def test_lookups_are_rate_limited_per_address(limited_app, frozen_window):
    registry = limited_app.registry
    enable_sandbox(registry)
    make_sku(registry, "CARD10", keys=2)
    app = webtest.TestApp(limited_app, extra_environ={"REMOTE_ADDR": "198.51.100.7"})
    resp = create(app)
    no, token = resp.json["order_no"], resp.json["access_token"]
    for guess in ("aaaa", "bbbb"):
        view(app, no, query_password=guess, expect=404)
    view(app, "1" * 20, query_password="cccc", expect=404)  # unknown numbers count as guesses too
    limited = view(app, no, query_password="pass1234", expect=429)  # even the right one, now
    assert error_code(limited) == "rate_limited"
    view(app, no, token=token)  # the access token is not a guess
    other = webtest.TestApp(limited_app, extra_environ={"REMOTE_ADDR": "198.51.100.8"})
    assert view(other, no, query_password="pass1234").json["order_no"] == no


def test_order_creation_is_rate_limited_per_address(limited_app, frozen_window):
    registry = limited_app.registry
    enable_sandbox(registry)
    _pid, sku_id = make_sku(registry, "CARD10", keys=5)
    app = webtest.TestApp(limited_app, extra_environ={"REMOTE_ADDR": "198.51.100.9"})
    create(app)
    create(app)
    assert error_code(create(app, expect=429)) == "rate_limited"
    assert count(registry, Order) == 2 and key_counts(registry, sku_id)["reserved"] == 2


# -- the wallet ledger --------------------------------------------------------------------------


def test_ledger_rows_are_never_changed_and_balance_is_the_last_balance_after(oapp, oregistry):
    uid, _token = make_buyer(oregistry)
    engine = oregistry["kameng.engine"]
    rewrites = []

    def watch(conn, cursor, statement, params, context, executemany):
        s = statement.lstrip().upper()
        if "LEDGER_ENTRIES" in s and s.startswith(("UPDATE", "DELETE")):
            rewrites.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        moves = [5000, -1200, 300, -4100, 2500]
        for i, amount in enumerate(moves):
            with app_request(oregistry) as req:
                wallet.post(req.db, uid, amount, "CNY", "admin" if amount > 0 else "order", ref=f"test:{i}")
            with app_request(oregistry) as req:
                first = [(e.id, e.seq, e.amount, e.balance_after) for e in wallet.entries(req.db, uid)]
            if i == 0:
                kept = first
        with app_request(oregistry) as req:
            with pytest.raises(wallet.InsufficientBalance):
                wallet.post(req.db, uid, -2501, "CNY", "order")
            rows = list(reversed(wallet.entries(req.db, uid)))
            assert wallet.balance(req.db, uid) == rows[-1].balance_after == sum(moves) == 2500
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert rewrites == []
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    running = 0
    for r, amount in zip(rows, moves):
        running += amount
        assert (r.amount, r.balance_after) == (amount, running)
    assert (rows[0].id, rows[0].seq, rows[0].amount, rows[0].balance_after) == kept[0]


def test_a_retried_credit_with_the_same_ref_is_a_no_op(oregistry):
    uid, _token = make_buyer(oregistry)
    for _ in range(3):
        with app_request(oregistry) as req:
            entry = wallet.post(req.db, uid, 700, "CNY", "refund", ref="refund:R1")
    with app_request(oregistry) as req:
        assert wallet.balance(req.db, uid) == 700
        assert len(wallet.entries(req.db, uid)) == 1 and entry.ref == "refund:R1"
    with app_request(oregistry) as req:
        with pytest.raises(ValueError):
            wallet.post(req.db, uid, 0, "CNY", "admin")
        with pytest.raises(ValueError):
            wallet.post(req.db, uid, 5, "CNY", "gift")


def test_concurrent_debits_never_overdraw(oregistry):
    uid, _token = make_buyer(oregistry, balance=1000)
    engine = oregistry["kameng.write_engine"]
    n = 20
    start = threading.Barrier(n)
    won, refused, errors = [], [], []

    def spend(i):
        start.wait()
        try:
            with Session(engine) as s, s.begin():
                won.append(wallet.post(s, uid, -100, "CNY", "order", ref=f"spend:{i}").seq)
        except wallet.InsufficientBalance:
            refused.append(i)
        except Exception as exc:  # noqa: BLE001 - any other outcome is a failure of the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(won) == 10 and len(refused) == 10
    with app_request(oregistry) as req:
        rows = list(reversed(wallet.entries(req.db, uid, limit=100)))
        assert wallet.balance(req.db, uid) == 0
    assert [r.seq for r in rows] == list(range(1, 12))
    assert all(r.balance_after >= 0 for r in rows)
    assert sum(r.amount for r in rows) == 0
