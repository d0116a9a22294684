"""Caps on unpaid orders (stock cannot be held hostage) and per-buyer
purchase limits per product."""
from __future__ import annotations

import datetime as dt

from antifraud_helpers import error, make_sku, place, retry_after, setup_shop, sign_up
from sqlalchemy import update

from kameng.db import utcnow
from kameng.orders.models import Order
from kameng.testing import app_request
from kameng_antifraud.models import ProductLimit


def _set(registry, order_no, **values):
    with app_request(registry) as req:
        req.db.execute(update(Order).where(Order.order_no == order_no).values(**values))


def test_unpaid_per_contact(af_testapp, af_registry):
    setup_shop(af_registry, max_unpaid_per_contact=2)
    made = [place(af_testapp, ip=f"203.0.113.{i}", contact="Hoarder@example.com") for i in (1, 2)]
    assert [r.status_int for r in made] == [201, 201]
    resp = place(af_testapp, ip="203.0.113.3", contact="hoarder@example.com")
    assert resp.status_int == 429, resp.text
    assert error(resp)["code"] == "rate_limited"
    assert "unpaid orders" in error(resp)["message"]
    # Retry-After: until the first of them expires (kameng.orders.expire_minutes, 15 by default)
    assert 14 * 60 <= retry_after(resp) <= 15 * 60
    # once one is no longer pending (paid, cancelled or expired) there is room again
    _set(af_registry, made[0].json["order_no"], status="cancelled")
    assert place(af_testapp, ip="203.0.113.3", contact="hoarder@example.com").status_int == 201
    assert place(af_testapp, ip="203.0.113.3", contact="hoarder@example.com").status_int == 429


def test_expired_unpaid_orders_do_not_count(af_testapp, af_registry):
    setup_shop(af_registry, max_unpaid_per_contact=1)
    first = place(af_testapp, contact="late@example.com")
    assert place(af_testapp, contact="late@example.com").status_int == 429
    # past its expiry but not yet swept by the worker: it no longer holds anything
    _set(af_registry, first.json["order_no"], expires_at=utcnow() - dt.timedelta(seconds=1))
    assert place(af_testapp, contact="late@example.com").status_int == 201


def test_unpaid_per_account_whatever_the_contact(af_testapp, af_registry):
    setup_shop(af_registry, max_unpaid_per_contact=1)
    token = sign_up(af_registry, af_testapp)
    h = {"X-CSRF-Token": token}
    assert place(af_testapp, contact="one@example.com", headers=h).status_int == 201
    assert place(af_testapp, contact="two@example.com", headers=h).status_int == 429


def test_unpaid_per_ip(af_testapp, af_registry):
    setup_shop(af_registry, max_unpaid_per_ip=3)
    for i in range(3):
        assert place(af_testapp, ip="203.0.113.44", contact=f"b{i}@example.com").status_int == 201
    resp = place(af_testapp, ip="203.0.113.44", contact="b9@example.com")
    assert resp.status_int == 429 and "from your address" in error(resp)["message"], resp.text
    assert place(af_testapp, ip="203.0.113.45", contact="b9@example.com").status_int == 201


# -- purchase limits -------------------------------------------------------------------------------


def _limit(registry, product_id, max_quantity, window_days=0):
    with app_request(registry) as req:
        req.db.add(ProductLimit(product_id=product_id, max_quantity=max_quantity, window_days=window_days))


def test_purchase_limit_per_contact(af_testapp, af_registry):
    product_id = setup_shop(af_registry)
    _limit(af_registry, product_id, 3)
    assert place(af_testapp, contact="fan@example.com", quantity=2).status_int == 201
    resp = place(af_testapp, contact="FAN@example.com", quantity=2)
    assert resp.status_int == 403 and error(resp)["code"] == "blocked", resp.text
    assert error(resp)["message"] == "This product is limited to 3 per buyer. You can order 1 more."
    assert place(af_testapp, contact="fan@example.com", quantity=1).status_int == 201
    resp = place(af_testapp, contact="fan@example.com", quantity=1)
    assert error(resp)["message"] == "This product is limited to 3 per buyer, and you have reached it."
    # another buyer, and another product, are not limited
    assert place(af_testapp, contact="other@example.com", quantity=3).status_int == 201
    make_sku(af_registry, code="AF2", name="Free card")
    assert place(af_testapp, contact="fan@example.com", sku="AF2", quantity=5).status_int == 201


def test_purchase_limit_counts_paid_not_failed_orders(af_testapp, af_registry):
    product_id = setup_shop(af_registry)
    _limit(af_registry, product_id, 2)
    first = place(af_testapp, contact="fan@example.com", quantity=2).json["order_no"]
    assert place(af_testapp, contact="fan@example.com").status_int == 403
    _set(af_registry, first, status="delivered")
    assert place(af_testapp, contact="fan@example.com").status_int == 403
    _set(af_registry, first, status="refunded")
    assert place(af_testapp, contact="fan@example.com").status_int == 201


def test_purchase_limit_window(af_testapp, af_registry):
    product_id = setup_shop(af_registry)
    _limit(af_registry, product_id, 1, window_days=7)
    first = place(af_testapp, contact="weekly@example.com").json["order_no"]
    _set(af_registry, first, status="delivered")
    resp = place(af_testapp, contact="weekly@example.com")
    assert error(resp)["message"] == "This product is limited to 1 per buyer every 7 days, and you have reached it."
    _set(af_registry, first, created_at=utcnow() - dt.timedelta(days=8))
    assert place(af_testapp, contact="weekly@example.com").status_int == 201


def test_purchase_limit_per_account(af_testapp, af_registry):
    product_id = setup_shop(af_registry)
    _limit(af_registry, product_id, 1)
    token = sign_up(af_registry, af_testapp)
    assert place(af_testapp, contact="a@example.com", headers={"X-CSRF-Token": token}).status_int == 201
    resp = place(af_testapp, contact="b@example.com", headers={"X-CSRF-Token": token})
    assert resp.status_int == 403, resp.text
