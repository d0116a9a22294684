"""A coupon use and sale units follow their order: given back exactly once
when it expires or is cancelled unpaid (the core's expiry job and cancel),
kept when it is paid, not taken again by a late payment (SECURITY.md #15);
and the shop keeps working with the plugin disabled."""
from coupons_helpers import (
    add_coupon,
    add_promotion,
    add_sale,
    cancel,
    coupon_state,
    enable,
    error_code,
    expire_now,
    order_status,
    pay,
    place,
    sale_state,
)
from sqlalchemy import select

from kameng import jobs
from kameng.orders.models import Order
from kameng.testing import app_request, run_jobs, set_plugin


def order_id(registry, order_no) -> int:
    with app_request(registry) as req:
        return req.db.scalar(select(Order.id).where(Order.order_no == order_no))


def test_expiry_gives_the_coupon_and_sale_units_back_exactly_once(capi, creg, shop):
    from kameng_coupons import pricing

    add_coupon(creg, "ONCE", "fixed", "1.00", max_uses=1)
    sale = add_sale(creg, "CARD10", price="8.00", cap=2)
    first = place(capi, quantity=2, coupon="ONCE", contact="a@example.com")
    assert first.json["amount"] == "15.00"
    assert coupon_state(creg, "ONCE") == (1, ["used"])
    assert sale_state(creg, sale) == (2, [(2, "used")])
    assert error_code(place(capi, expect=409, coupon="ONCE", contact="b@example.com")) == "coupon_unavailable"

    expire_now(creg, first.json["order_no"])
    assert order_status(creg, first.json["order_no"]) == "expired"
    assert coupon_state(creg, "ONCE") == (0, ["released"])
    assert sale_state(creg, sale) == (0, [(2, "released")])

    # the release hook called again (a second expiry run, a retried job) changes nothing
    with app_request(creg) as req:
        assert pricing.release(req.db, order_id(creg, first.json["order_no"])) == 0
        assert pricing.release_stale(req.db) == 0
    expire_now(creg, first.json["order_no"])
    assert coupon_state(creg, "ONCE") == (0, ["released"])
    assert sale_state(creg, sale) == (0, [(2, "released")])

    # the use is free again
    second = place(capi, quantity=2, coupon="ONCE", contact="b@example.com")
    assert second.json["amount"] == "15.00"
    assert coupon_state(creg, "ONCE") == (1, ["released", "used"])


def test_cancelling_an_unpaid_order_gives_the_coupon_back(capi, creg, shop):
    add_coupon(creg, "ONCE", "fixed", "1.00", max_uses=1, per_buyer=1)
    first = place(capi, coupon="ONCE")
    assert cancel(capi, first).json["status"] == "cancelled"
    assert coupon_state(creg, "ONCE") == (0, ["released"])
    # the same buyer may use it again: a released use does not count against the per-buyer limit
    place(capi, coupon="ONCE")
    assert coupon_state(creg, "ONCE") == (1, ["released", "used"])


def test_a_paid_order_keeps_its_coupon(capi, creg, shop):
    add_coupon(creg, "ONCE", "fixed", "1.00", max_uses=1)
    first = place(capi, coupon="ONCE")
    pay(capi, first)
    run_jobs(creg)
    assert order_status(creg, first.json["order_no"]) == "delivered"
    expire_now(creg, first.json["order_no"])  # nothing is due: it is paid
    assert coupon_state(creg, "ONCE") == (1, ["used"])
    assert error_code(place(capi, expect=409, coupon="ONCE", contact="b@example.com")) == "coupon_unavailable"


def test_a_late_payment_after_expiry_does_not_take_the_coupon_again(capi, creg, shop):
    add_coupon(creg, "ONCE", "fixed", "1.00", max_uses=1)
    sale = add_sale(creg, "CARD10", price="8.00", cap=1)
    late = place(capi, coupon="ONCE", contact="late@example.com")
    expire_now(creg, late.json["order_no"])
    assert coupon_state(creg, "ONCE") == (0, ["released"])
    # another buyer takes the freed use and the freed sale unit
    other = place(capi, coupon="ONCE", contact="other@example.com")
    assert other.json["amount"] == "7.00"
    # the first buyer's money arrives after all: the core delivers (stock is there), the coupon stays with the other
    pay(capi, late)
    run_jobs(creg)
    assert order_status(creg, late.json["order_no"]) in ("paid", "delivering", "delivered")
    assert coupon_state(creg, "ONCE") == (1, ["released", "used"])
    assert sale_state(creg, sale) == (1, [(1, "released"), (1, "used")])


def test_a_late_payment_alone_leaves_the_coupon_free(capi, creg, shop):
    add_coupon(creg, "ONCE", "fixed", "1.00", max_uses=1)
    late = place(capi, coupon="ONCE")
    expire_now(creg, late.json["order_no"])
    pay(capi, late)
    run_jobs(creg)
    assert coupon_state(creg, "ONCE") == (0, ["released"])
    assert place(capi, coupon="ONCE", contact="next@example.com").json["amount"] == "9.00"


def test_disabled_plugin_orders_without_a_coupon_work_and_with_one_are_refused(capi, creg, shop):
    add_coupon(creg, "SAVE1", "fixed", "1.00")
    add_sale(creg, "CARD10", price="8.00", cap=5)
    add_promotion(creg, "满减", tiers=[{"threshold": "10.00", "kind": "amount", "value": "1.00"}])
    set_plugin(creg, "coupons", enabled=False)
    assert place(capi).json["amount"] == "10.00"
    assert error_code(place(capi, expect=409, coupon="SAVE1")) == "coupon_unavailable"
    # pages that show prices still work
    with app_request(creg) as req:
        from kameng.catalog.models import Sku

        product_id = req.db.scalar(select(Sku.product_id).where(Sku.code == "CARD10"))
    page = capi.get(f"/p/{product_id}")
    assert "coupons-offers" not in page.text
    capi.get(f"/checkout/{product_id}", {"sku": "CARD10", "coupon": "SAVE1"})
    assert coupon_state(creg, "SAVE1") == (0, [])


def test_uses_of_orders_closed_while_disabled_are_given_back_when_enabled_again(capi, creg, shop):
    add_coupon(creg, "ONCE", "fixed", "1.00", max_uses=1)
    first = place(capi, coupon="ONCE")
    set_plugin(creg, "coupons", enabled=False)
    expire_now(creg, first.json["order_no"])  # the release hook of a disabled plugin is not called
    assert coupon_state(creg, "ONCE") == (1, ["used"])
    enable(creg)
    with app_request(creg) as req:
        jobs.enqueue(req.db, "coupons.release_stale", {})
    run_jobs(creg)
    assert coupon_state(creg, "ONCE") == (0, ["released"])
