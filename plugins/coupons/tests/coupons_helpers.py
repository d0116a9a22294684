"""Helpers for the coupons tests: catalog, coupons, promotions and sales
arranged through the plugin's own service, orders placed through the public
API, payments through the sandbox's signed notify."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from kameng import jobs
from kameng.catalog import service as catalog
from kameng.catalog.models import Sku
from kameng.db import utcnow
from kameng.inventory import service as inventory
from kameng.orders import service as orders
from kameng.orders.models import Order
from kameng.testing import app_request, run_jobs, set_plugin

SECRET = "sandbox-secret-for-coupon-tests-0123"
NO_LIMITS = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0"}
ADMIN_EMAIL = "coupons-admin@example.com"
ADMIN_PASSWORD = "coupons-admin-password-1"


def enable(registry, coupons=True):
    set_plugin(registry, "sandbox", enabled=True, secret=SECRET)
    set_plugin(registry, "coupons", enabled=coupons)


def make_admin(registry):
    from kameng import accounts

    with app_request(registry) as req:
        user = accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
        token = accounts.create_token(req.db, user, "coupon tests")
    return ADMIN_EMAIL, ADMIN_PASSWORD, token


def make_category(registry, name, parent_id=None) -> int:
    with app_request(registry) as req:
        return catalog.save_category(req.db, {"name": name, **({"parent_id": parent_id} if parent_id else {})}).id


def make_product(registry, code, price="10.00", keys=10, category_id=None, name="Game card", more_skus=()):
    """A visible card-key product with SKU ``code`` (and ``more_skus`` codes at
    the same price), each with ``keys`` keys: ``(product_id, sku_id)``."""
    codes = [code, *more_skus]
    with app_request(registry) as req:
        data = {"name": name, "type": "card_key",
                "skus": [{"code": c, "name": f"{c} option", "price": price, "max_quantity": 10} for c in codes]}
        if category_id is not None:
            data["category_id"] = category_id
        product = catalog.save_product(req.db, data, "CNY")
        product_id = product.id
        sku_ids = {c: req.db.scalar(select(Sku.id).where(Sku.code == c)) for c in codes}
    if keys:
        factory = registry["kameng.session_factory"]
        for c, sku_id in sku_ids.items():
            inventory.import_keys(lambda: factory(bind=registry["kameng.write_engine"]), registry["kameng.keyring"],
                                  sku_id, [f"{c}-KEY-{i:04d}" for i in range(keys)])
    return product_id, sku_ids[code]


def add_coupon(registry, code="SAVE10", kind="fixed", value="1.00", **fields):
    from kameng_coupons import service

    with app_request(registry) as req:
        values = service.coupon_values(req.db, {"code": code, "kind": kind, "value": value, **fields}, "CNY")
        return service.create_coupon(req.db, values).id


def add_promotion(registry, name="Spend more", tiers=(), **fields):
    from kameng_coupons import service
    from kameng_coupons.models import Promotion

    with app_request(registry) as req:
        values = service.promotion_values(req.db, {"name": name, "tiers": list(tiers), **fields}, "CNY")
        promotion = Promotion(**values)
        req.db.add(promotion)
        req.db.flush()
        return promotion.id


def add_sale(registry, sku="CARD10", price="8.00", cap=5, starts=None, ends=None, active=True):
    from kameng_coupons import service
    from kameng_coupons.models import Sale

    now = utcnow()
    starts = starts or now - dt.timedelta(hours=1)
    ends = ends or now + dt.timedelta(hours=1)
    with app_request(registry) as req:
        values = service.sale_values(req.db, {"sku": sku, "price": price, "cap": cap, "starts_at": starts.isoformat(),
                                              "ends_at": ends.isoformat(), "active": active}, "CNY")
        sale = Sale(**values, sold=0)
        req.db.add(sale)
        req.db.flush()
        return sale.id


def order_body(sku="CARD10", quantity=1, contact="buyer@example.com", coupon=None, **extra):
    body = {"sku": sku, "quantity": quantity, "contact": contact, "query_password": "pass1234",
            "payment_method": "sandbox", **extra}
    if coupon is not None:
        body["coupon"] = coupon
    return body


def place(api, expect=201, headers=None, **body):
    return api.post_json("/api/v1/orders", order_body(**body), headers=headers or {}, status=expect)


def error_code(resp) -> str:
    return resp.json["error"]["code"]


def pay(api, created, expect=200):
    from kameng_sandbox.gateway import signed_fields

    payment = created.json["payment"]
    return api.post("/pay/sandbox/notify", signed_fields(payment["attempt_no"], payment["amount"], "paid", SECRET),
                    status=expect)


def cancel(api, created):
    no, token = created.json["order_no"], created.json["access_token"]
    return api.post(f"/api/v1/orders/{no}/cancel?token={token}")


def expire_now(registry, order_no):
    """Let the order's time run out and run the core's expiry job."""
    with app_request(registry) as req:
        req.db.execute(update(Order).where(Order.order_no == order_no)
                       .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    with app_request(registry) as req:
        jobs.enqueue(req.db, orders.EXPIRE, {})
    run_jobs(registry)


def order_status(registry, order_no) -> str:
    with app_request(registry) as req:
        return req.db.scalar(select(Order.status).where(Order.order_no == order_no))


def coupon_state(registry, code) -> tuple[int, list[str]]:
    """``(used, [redemption statuses in order])`` of the coupon ``code``."""
    from kameng_coupons.models import Coupon, Redemption

    with app_request(registry) as req:
        coupon = req.db.scalar(select(Coupon).where(Coupon.code_key == code.upper()))
        statuses = list(req.db.scalars(select(Redemption.status).where(Redemption.coupon_id == coupon.id)
                                       .order_by(Redemption.id)))
        return coupon.used, statuses


def sale_state(registry, sale_id) -> tuple[int, list[tuple[int, str]]]:
    """``(sold, [(units, status)])`` of a sale."""
    from kameng_coupons.models import Sale, SaleUse

    with app_request(registry) as req:
        sale = req.db.get(Sale, sale_id)
        uses = [(u.units, u.status) for u in req.db.scalars(select(SaleUse).where(SaleUse.sale_id == sale_id)
                                                             .order_by(SaleUse.id))]
        return sale.sold, uses


def steps(registry, order_no) -> list[dict]:
    import json

    with app_request(registry) as req:
        return json.loads(req.db.scalar(select(Order.pricing).where(Order.order_no == order_no)))
