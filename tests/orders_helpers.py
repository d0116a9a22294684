"""Shared set-up for the order tests: a card-key SKU with stock, the sandbox
enabled, and helpers that pay and run the worker."""
from __future__ import annotations

import itertools

import webtest

from sqlalchemy import select

from kameng import jobs
from kameng.catalog.models import Sku
from kameng.catalog import service as catalog
from kameng.inventory import service as inventory
from kameng.testing import app_request, set_plugin

SECRET = "sandbox-secret-for-order-tests-0123"


def make_sku(registry, code="CARD10", price="10.00", keys=5, type_="card_key", stock=None, max_quantity=10,
             recharge_fields=None, name="Game card"):
    """A visible product with one SKU; ``keys`` card keys imported for card_key goods."""
    with app_request(registry) as req:
        sku_data = {"code": code, "name": f"{code} option", "price": price, "max_quantity": max_quantity,
                    **({"stock": stock} if stock is not None else {})}
        data = {"name": name, "type": type_, "skus": [sku_data]}
        if recharge_fields is not None:
            data["recharge_fields"] = recharge_fields
        product = catalog.save_product(req.db, data, "CNY")
        product_id = product.id
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == code))
    if type_ == "card_key" and keys:
        add_keys(registry, sku_id, [f"{code}-KEY-{i:04d}" for i in range(keys)])
    return product_id, sku_id


def add_keys(registry, sku_id, secrets):
    factory = registry["kameng.session_factory"]
    inventory.import_keys(lambda: factory(bind=registry["kameng.write_engine"]), registry["kameng.keyring"],
                          sku_id, secrets)


def enable_sandbox(registry):
    set_plugin(registry, "sandbox", enabled=True, secret=SECRET)


def run_jobs(registry, limit=100) -> int:
    worker = jobs.Worker(registry, worker_id="test-worker")
    n = 0
    while n < limit and worker.run_one():
        n += 1
    return n


def order_body(sku="CARD10", quantity=1, **extra):
    return {"sku": sku, "quantity": quantity, "contact": "buyer@example.com", "query_password": "pass1234",
            "payment_method": "sandbox", **extra}


# -- more helpers for the order, race and worker tests -----------------------------------

#: the core's per-address limits off, for tests that create many orders from one address
NO_LIMITS = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0"}


def notify_fields(attempt_no, amount, status="paid", secret=SECRET, now=None):
    from kameng_sandbox.gateway import signed_fields

    return signed_fields(attempt_no, amount, status, secret, now=now)


def post_notify(testapp, attempt_no, amount, status="paid", expect=200):
    """Send a signed sandbox notify; returns the response."""
    return testapp.post("/pay/sandbox/notify", notify_fields(attempt_no, amount, status), status=expect)


def load_order(registry, order_no):
    from kameng.orders.models import Order

    with app_request(registry) as req:
        return req.db.scalar(select(Order).where(Order.order_no == order_no))


def key_counts(registry, sku_id) -> dict:
    """``{"available", "reserved", "sold", "void", "stock"}``: the keys' states and the SKU's counter."""
    with app_request(registry) as req:
        out = inventory.counts(req.db, sku_id)
        out["stock"] = req.db.get(Sku, sku_id).stock
        return out


def sold_keys(registry, order_no) -> list[int]:
    from kameng.inventory.models import CardKey

    with app_request(registry) as req:
        return list(req.db.scalars(select(CardKey.id).where(CardKey.order_ref == order_no, CardKey.state == "sold")
                                   .order_by(CardKey.id)))


def status_events(registry, order_no) -> list[tuple[str, str, str, str]]:
    """The order's status changes: ``(from, to, actor, message)`` in order."""
    from kameng.orders.models import Order, OrderEvent

    with app_request(registry) as req:
        order_id = req.db.scalar(select(Order.id).where(Order.order_no == order_no))
        rows = req.db.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.kind == "status")
                              .order_by(OrderEvent.id))
        return [(e.from_status, e.to_status, e.actor, e.message) for e in rows]


def count(registry, model, *where) -> int:
    from sqlalchemy import func

    with app_request(registry) as req:
        return req.db.scalar(select(func.count()).select_from(model).where(*where))


def make_buyer(registry, email="buyer@example.com", balance=0):
    """A buyer account with an API token (and ``balance`` minor units in its wallet): ``(user_id, token)``."""
    from kameng import accounts, wallet

    with app_request(registry) as req:
        user = accounts.create_user(req.db, email, "buyer-password-123")
        token = accounts.create_token(req.db, user, "tests")
        if balance:
            wallet.post(req.db, user.id, balance, "CNY", "admin", note="test credit")
        return user.id, token


def make_due(registry):
    """Make every queued job due now (skip back-off waits)."""
    from sqlalchemy import update

    from kameng.db import utcnow

    with app_request(registry) as req:
        req.db.execute(update(jobs.Job).where(jobs.Job.status == jobs.QUEUED).values(run_at=utcnow()))


_buyer_addresses = itertools.count(1)


def buyer_app(app, last_octet: int = 1):
    """A client of its own (no admin cookie), from an address of its own (the
    core's order limit counts per address)."""
    n = next(_buyer_addresses)
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": f"10.{n // 250}.{n % 250}.{last_octet}"})


def place(app, registry, sku="CARD10", pay=True, last_octet: int = 1, **extra) -> dict:
    """An order through the public API; with ``pay``, paid through the
    sandbox's notify and its jobs run. Gives the API's answer."""
    from kameng_sandbox.gateway import signed_fields

    buyer = buyer_app(app, last_octet)
    made = buyer.post_json("/api/v1/orders", order_body(sku, **extra), status=201).json
    if pay:
        buyer.post("/pay/sandbox/notify", signed_fields(made["payment"]["attempt_no"], made["amount"], "paid", SECRET))
        run_jobs(registry)
    return made
