"""The connector inside kameng's own supplier pipeline (kameng.suppliers):
a live shop with a ``dock`` connection to the fake upstream. Import, a
buyer's order paid here and fulfilled there, a direct recharge finished by
the upstream's signed callback through the core's ``/supplier/callback/{id}``
route (replays and forgeries changing nothing), a refund, a timeout that
still makes exactly one upstream order, and a price change synced.

(The connector against a real kameng docking API is test_dock_connector_live.py;
a shop docking with itself cannot run here: on SQLite the worker holds the
write lock while it calls the upstream, which is the same database.)"""
from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import webtest
from dock_helpers import KEY_ID, SECRET, build_fake
from kameng_dock.connector import DockConnector
from sqlalchemy import select

from kameng.inventory.models import CardKey
from kameng.orders.models import Order
from kameng.suppliers import connections, sync
from kameng.suppliers.models import SkuUpstream, SupplierConnection, UpstreamOrder
from kameng.testing import LiveServer, app_request, free_port, run_jobs, set_plugin

pytestmark = pytest.mark.slow

SANDBOX_SECRET = "sandbox-secret-for-dock-tests-0123456789"


@pytest.fixture
def fake():
    upstream = build_fake()
    yield upstream
    upstream.stop()


@pytest.fixture
def shop(make_app, fake):
    """A live shop with a dock connection to ``fake`` and its goods imported at cost + 20 %."""
    port = free_port()
    app = make_app(**{"kameng.base_url": f"http://127.0.0.1:{port}", "kameng.suppliers.delay_scale": "0",
                      "kameng.limits.orders_per_ip_per_minute": "0",
                      "kameng.limits.lookups_per_ip_per_minute": "0"})
    server = LiveServer(app, port).start()
    server.registry, server.app = app.registry, app
    reg = app.registry
    set_plugin(reg, "sandbox", enabled=True, secret=SANDBOX_SECRET)
    set_plugin(reg, "dock", enabled=True)
    with app_request(reg, actor="admin@example.com") as req:
        conn = connections.save_connection(req, None, "dock", "Upstream shop",
                                           {"url": fake.url, "key_id": KEY_ID, "secret": SECRET})
        assert connections.check_health(req, conn)[0]
        sync.import_goods(req, conn, ["101", "topup-7"], ("markup", "20", 1))
        server.connection = conn.id
    yield server
    server.stop()


def code_for(shop, upstream_sku) -> str:
    from kameng.catalog.models import Sku

    with app_request(shop.registry) as req:
        return req.db.scalar(select(Sku.code).join(SkuUpstream, SkuUpstream.sku_id == Sku.id)
                             .where(SkuUpstream.upstream_sku == upstream_sku))


def buy(shop, upstream_sku, quantity=1, recharge=None) -> str:
    from kameng_sandbox.gateway import signed_fields

    api = webtest.TestApp(shop.app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    made = api.post_json("/api/v1/orders", {"sku": code_for(shop, upstream_sku), "quantity": quantity,
                                            "contact": "buyer@example.com", "query_password": "pass1234",
                                            "payment_method": "sandbox",
                                            **({"recharge": recharge} if recharge else {})}, status=201).json
    api.post("/pay/sandbox/notify", signed_fields(made["payment"]["attempt_no"], made["amount"], "paid",
                                                  SANDBOX_SECRET), status=200)
    return made["order_no"]


def state(shop, order_no):
    with app_request(shop.registry) as req:
        order = req.db.scalar(select(Order).where(Order.order_no == order_no))
        up = req.db.scalar(select(UpstreamOrder).where(UpstreamOrder.order_id == order.id))
        keys = len(req.db.scalars(select(CardKey).where(CardKey.order_ref == order_no)).all())
        return order.status, up.status if up else None, keys, up.out_order_no if up else None


def test_import_prices_by_the_rule(shop):
    from kameng.catalog.models import Sku

    with app_request(shop.registry) as req:
        rows = {u.upstream_sku: req.db.get(Sku, u.sku_id) for u in req.db.scalars(select(SkuUpstream))}
    assert {c: (s.cost_price, s.price, s.stock) for c, s in rows.items()} == {
        "GC-10": (900, 1080, 5), "GC-50": (4700, 5640, 5), "TOP-30": (2940, 3528, None)}


def test_a_card_order_is_placed_upstream_once_and_its_keys_reach_the_buyer(shop, fake):
    order_no = buy(shop, "GC-10", quantity=2)
    run_jobs(shop.registry)
    status, up_status, keys, out_no = state(shop, order_no)
    assert (status, up_status, keys) == ("delivered", "success", 2)
    [placed] = fake.orders_of(KEY_ID)
    assert placed["out_order_no"] == out_no and placed["callback_url"].endswith(f"/supplier/callback/{shop.connection}")
    assert fake.accounts[KEY_ID].balance == Decimal("82.00")


def test_a_recharge_is_finished_by_the_upstreams_callback(shop, fake):
    order_no = buy(shop, "TOP-30", recharge={"account": "13800000000"})
    run_jobs(shop.registry, limit=10)  # polls come due at once (delay_scale 0): a few are enough
    status, up_status, _keys, out_no = state(shop, order_no)
    assert (status, up_status) == ("delivering", "processing")
    assert fake.orders_of(KEY_ID)[0]["recharge"] == {"account": "13800000000"}
    order = fake.finish(out_no, "delivered")  # sends the signed callback to the shop's route
    assert fake.callbacks == [(out_no, 200)]
    assert state(shop, order_no)[:2] == ("delivered", "success")
    # the same callback again, and a forged one: refused, nothing changes
    url, headers, body = fake.callback_message(order)
    api = webtest.TestApp(shop.app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    path = urlsplit(url).path
    assert path == f"/supplier/callback/{shop.connection}"
    assert api.post(path, body, headers=headers, status=200).text == "success"
    assert api.post(path, body, headers=headers, status=400).text == "fail"  # a replay
    forged = fake.callback_message(order, secret="not-the-secret")
    assert api.post(path, forged[2], headers=forged[1], status=400).text == "fail"
    assert state(shop, order_no)[:2] == ("delivered", "success")


def test_a_refunded_recharge_refunds_the_buyer(shop, fake):
    order_no = buy(shop, "TOP-30", recharge={"account": "13800000000"})
    run_jobs(shop.registry, limit=10)  # polls come due at once (delay_scale 0): a few are enough
    fake.finish(state(shop, order_no)[3], "refunded")
    run_jobs(shop.registry)
    status, up_status, _keys, _no = state(shop, order_no)
    assert up_status == "failed" and status in ("failed", "refunded")
    assert fake.accounts[KEY_ID].balance == Decimal("100.00")


def test_an_upstream_that_times_out_still_gets_exactly_one_order(shop, fake, monkeypatch):
    monkeypatch.setattr(DockConnector, "timeout", 0.5)
    fake.post_modes = ["hang_after"]
    order_no = buy(shop, "GC-10")
    run_jobs(shop.registry)
    assert state(shop, order_no)[:3] == ("delivered", "success", 1)
    assert len(fake.orders_of(KEY_ID)) == 1 and fake.accounts[KEY_ID].balance == Decimal("91.00")


def test_an_upstream_refusal_refunds_the_buyer(shop, fake):
    fake.accounts[KEY_ID].balance = Decimal("1.00")
    order_no = buy(shop, "GC-10")
    run_jobs(shop.registry)
    status, up_status, keys, _no = state(shop, order_no)
    assert up_status == "failed" and status in ("failed", "refunded") and keys == 0
    assert fake.orders_of(KEY_ID) == []


def test_a_price_change_upstream_shows_after_a_sync(shop, fake):
    from kameng.catalog.models import Sku

    fake.accounts[KEY_ID].prices["GC-10"] = Decimal("10.00")
    with app_request(shop.registry, actor="admin") as req:
        sync.sync_connection(req, req.db.get(SupplierConnection, shop.connection))
    with app_request(shop.registry) as req:
        sku = req.db.scalar(select(Sku).where(Sku.code == code_for(shop, "GC-10")))
        assert (sku.cost_price, sku.price) == (1000, 1200)
