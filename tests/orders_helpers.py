"""Shared set-up for the order tests: a card-key SKU with stock, the sandbox
enabled, and helpers that pay and run the worker."""
from __future__ import annotations

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
