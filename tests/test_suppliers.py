"""Fulfilment through supplier connections, against an in-memory upstream
(tests/plugins/kameng_suptest.py): import and sync, orders placed upstream
once and only once (retries, time-outs, a worker that dies mid-call),
results by polling and by callback, failures refunded, deadlines."""
import json

import pytest
import webtest
from sqlalchemy import func, select, update

import kameng_suptest as sup
from kameng.catalog.models import Product, Sku
from kameng.db import utcnow
from kameng.inventory.models import CardKey
from kameng.orders.models import Order, Refund
from kameng.suppliers import connections, sync
from kameng.suppliers.models import SkuUpstream, SupplierConnection, SyncLog, UpstreamOrder
from kameng.testing import app_request, set_plugin
from orders_helpers import NO_LIMITS, enable_sandbox, make_due, notify_fields, run_jobs


@pytest.fixture(scope="module")
def sapp(make_app):
    return make_app(extra_plugins=[("suptest", sup)], **NO_LIMITS, **{"kameng.suppliers.delay_scale": "0",
                                                                        "kameng.jobs.retry_base_seconds": "60"})


@pytest.fixture
def reg(sapp):
    sup.UP.reset()
    enable_sandbox(sapp.registry)
    set_plugin(sapp.registry, "suptest", enabled=True)
    return sapp.registry


@pytest.fixture
def api(sapp, reg):
    return webtest.TestApp(sapp, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


def connect(reg, **kw) -> int:
    with app_request(reg, actor="admin") as req:
        c = connections.save_connection(req, None, "suptest", "Test upstream", {"token": "t0ken"}, **kw)
        return c.id


def imported(reg, rule=("markup", "10", 1)) -> int:
    cid = connect(reg)
    with app_request(reg, actor="admin") as req:
        sync.import_goods(req, req.db.get(SupplierConnection, cid), ["G1", "G2"], rule)
    return cid


def sku(reg, upstream_code) -> Sku:
    with app_request(reg) as req:
        return req.db.scalar(select(Sku).join(SkuUpstream, SkuUpstream.sku_id == Sku.id)
                             .where(SkuUpstream.upstream_sku == upstream_code))


def buy(api, reg, code, quantity=1, recharge=None):
    body = {"sku": code, "quantity": quantity, "contact": "buyer@example.com", "query_password": "pass1234",
            "payment_method": "sandbox", **({"recharge": recharge} if recharge else {})}
    made = api.post_json("/api/v1/orders", body, status=201).json
    api.post("/pay/sandbox/notify", notify_fields(made["payment"]["attempt_no"], made["amount"]))
    return made["order_no"]


def state(reg, order_no):
    with app_request(reg) as req:
        order = req.db.scalar(select(Order).where(Order.order_no == order_no))
        up = req.db.scalar(select(UpstreamOrder).where(UpstreamOrder.order_id == order.id))
        keys = req.db.scalar(select(func.count()).select_from(CardKey).where(CardKey.order_ref == order_no))
        refunds = [(r.amount, r.status) for r in req.db.scalars(select(Refund).where(Refund.order_id == order.id))]
        return order.status, (up.status if up else None), keys, refunds


# -- import and sync ---------------------------------------------------------------------------


def test_import_creates_products_bound_to_the_upstream_priced_by_the_rule(reg):
    cid = imported(reg)
    card = sku(reg, "STEAM50")
    assert (card.price, card.cost_price, card.stock, card.visible) == (4950, 4500, 10, True)  # 45.00 + 10 %
    recharge = sku(reg, "CM100")
    assert (recharge.price, recharge.stock) == (10835, None)  # 98.50 × 1.1, no stock count
    with app_request(reg) as req:
        assert {p.type for p in req.db.scalars(select(Product))} == {"card_key", "direct_recharge"}
        again = sync.import_goods(req, req.db.get(SupplierConnection, cid), ["G1"], ("fixed", "0", 1))
    assert again == []  # imported once


def test_a_sync_follows_cost_and_stock_hides_what_ran_out_and_logs_every_change(reg):
    cid = imported(reg)
    sup.UP.goods["G1"] = ("Steam card", "card_key", [("STEAM50", "50 元", __import__("decimal").Decimal("46.00"), 0,
                                                      True)])
    with app_request(reg) as req:
        entry = sync.sync_connection(req, req.db.get(SupplierConnection, cid))
        changes = json.loads(entry.changes)
    card = sku(reg, "STEAM50")
    assert (card.cost_price, card.price, card.stock, card.visible) == (4600, 5060, 0, False)
    assert {(c["field"], c["from"], c["to"]) for c in changes} >= {("cost", 4500, 4600), ("price", 4950, 5060),
                                                                  ("stock", 10, 0), ("visible", True, False)}
    sup.UP.goods["G1"] = ("Steam card", "card_key", [("STEAM50", "50 元", __import__("decimal").Decimal("46.00"), 5,
                                                      True)])
    with app_request(reg) as req:
        sync.sync_connection(req, req.db.get(SupplierConnection, cid))
    assert sku(reg, "STEAM50").visible  # back in stock: shown again
    del sup.UP.goods["G1"]  # the upstream stopped selling it
    with app_request(reg) as req:
        sync.sync_connection(req, req.db.get(SupplierConnection, cid))
        assert req.db.scalar(select(func.count()).select_from(SyncLog).where(SyncLog.connection_id == cid)) == 4
    assert not sku(reg, "STEAM50").visible


def test_a_sku_the_shop_hid_itself_stays_hidden(reg):
    cid = imported(reg)
    with app_request(reg) as req:
        req.db.execute(update(Sku).where(Sku.id == sku(reg, "STEAM50").id).values(visible=False))
        sync.sync_connection(req, req.db.get(SupplierConnection, cid))
    assert not sku(reg, "STEAM50").visible


def test_the_scheduled_sync_runs_each_connection_at_its_interval(reg):
    imported(reg)
    with app_request(reg) as req:
        assert sync.sync_due(req) == 1  # never synced (import is not a sync)
    run_jobs(reg)
    with app_request(reg) as req:
        assert sync.sync_due(req) == 0  # synced just now


# -- fulfilment ------------------------------------------------------------------------------------


def test_a_paid_order_is_placed_upstream_once_and_its_keys_delivered(api, reg):
    imported(reg)
    no = buy(api, reg, sku(reg, "STEAM50").code, quantity=2)
    run_jobs(reg)
    assert state(reg, no) == ("delivered", "success", 2, [])
    assert sup.UP.placed == [f"K{no}"]
    keys = api.get(f"/api/v1/orders/{no}", {"query_password": "pass1234"}).json["items"][0]["keys"]
    assert [k["secret"] for k in keys] == [f"UP-K{no}-0", f"UP-K{no}-1"]
    assert sku(reg, "STEAM50").stock == 8  # the synced count went down with the order


def test_processing_is_polled_until_the_upstream_finishes(api, reg):
    imported(reg)
    sup.UP.mode = "processing"
    no = buy(api, reg, sku(reg, "CM100").code, recharge={"phone": "13800138000"})
    run_jobs(reg, limit=5)
    assert state(reg, no)[:2] == ("delivering", "processing")
    sup.finish(f"K{no}")
    make_due(reg)
    run_jobs(reg)
    assert state(reg, no) == ("delivered", "success", 0, [])
    assert sup.UP.placed == [f"K{no}"]


def test_a_failed_upstream_order_is_refunded(api, reg):
    imported(reg)
    sup.UP.mode = "failed"
    no = buy(api, reg, sku(reg, "STEAM50").code)
    run_jobs(reg)
    status, up, keys, refunds = state(reg, no)
    assert (status, up, keys) == ("refunded", "failed", 0) and refunds == [(4950, "succeeded")]


def test_a_partial_delivery_delivers_what_came_and_refunds_the_rest(api, reg):
    imported(reg)
    sup.UP.mode = "partial"
    no = buy(api, reg, sku(reg, "STEAM50").code, quantity=2)
    run_jobs(reg)
    status, up, keys, refunds = state(reg, no)
    assert (status, up, keys) == ("delivered", "partial", 1) and refunds == [(4950, "succeeded")]
    with app_request(reg) as req:
        assert req.db.scalar(select(UpstreamOrder.last_error)) == "only one left upstream"


def test_an_upstream_that_times_out_after_taking_the_order_is_asked_not_ordered_again(api, reg):
    imported(reg)
    sup.UP.mode = "timeout_after_placing"
    no = buy(api, reg, sku(reg, "STEAM50").code)
    run_jobs(reg)
    assert state(reg, no) == ("delivered", "success", 1, [])  # the poll found the order the upstream took
    assert sup.UP.placed == [f"K{no}"]


def test_a_worker_that_dies_after_placing_never_places_twice(api, reg):
    imported(reg)
    sup.UP.mode = "crash_after_placing"
    no = buy(api, reg, sku(reg, "STEAM50").code)
    run_jobs(reg)  # the place job dies (its transaction rolled back): retried later
    with app_request(reg) as req:
        up = req.db.scalar(select(UpstreamOrder))
        assert (up.status, up.attempts) == ("submitting", 1)  # counted before the call, committed
    sup.UP.mode = "success"
    make_due(reg)
    run_jobs(reg)
    assert state(reg, no)[:2] == ("delivered", "success")
    assert sup.UP.placed == [f"K{no}"]  # the retry asked first


def test_an_upstream_that_is_down_is_retried_then_refunded_after_the_deadline(api, reg):
    imported(reg)
    sup.UP.down = True
    no = buy(api, reg, sku(reg, "STEAM50").code)
    run_jobs(reg, limit=4)  # delivery, then the place job tried (and retried) while it is down
    status, up, keys, refunds = state(reg, no)
    assert (status, up, refunds) == ("delivering", "new", [])
    with app_request(reg) as req:
        assert req.db.scalar(select(UpstreamOrder.attempts)) >= 2
        req.db.execute(update(UpstreamOrder).values(deadline=utcnow()))
    sup.UP.down = False  # back, but too late for this order: it is refunded, never placed
    make_due(reg)
    run_jobs(reg)
    status, up, keys, refunds = state(reg, no)
    assert (status, up) == ("refunded", "failed") and refunds == [(4950, "succeeded")]
    assert sup.UP.placed == []


def test_an_upstream_that_may_have_the_order_is_never_refunded_blindly(api, reg):
    imported(reg)
    sup.UP.mode = "processing"
    no = buy(api, reg, sku(reg, "STEAM50").code)
    run_jobs(reg, limit=3)
    sup.UP.down = True  # it took the order, then went silent
    with app_request(reg) as req:
        req.db.execute(update(UpstreamOrder).values(deadline=utcnow()))
    make_due(reg)
    run_jobs(reg, limit=3)
    status, up, keys, refunds = state(reg, no)
    assert (status, up, refunds) == ("delivering", "unknown", [])
    with app_request(reg) as req:
        assert req.db.scalar(select(UpstreamOrder.overdue_at)) is not None  # the shop was told
    sup.UP.down = False
    sup.finish(f"K{no}")
    make_due(reg)
    run_jobs(reg)
    assert state(reg, no) == ("delivered", "success", 1, [])  # late, but delivered, and paid once
    assert sup.UP.placed == [f"K{no}"]


# -- callbacks ------------------------------------------------------------------------------------


def test_a_signed_callback_finishes_the_order_and_replays_and_forgeries_change_nothing(api, reg):
    cid = imported(reg)
    sup.UP.mode = "processing"
    no = buy(api, reg, sku(reg, "CM100").code, recharge={"phone": "13800138000"})
    run_jobs(reg, limit=5)
    forged = json.dumps({"status": "failed", "out_order_no": f"K{no}"}).encode()
    resp = api.post(f"/supplier/callback/{cid}", forged, headers={"X-Sign": "0" * 64,
                                                                 "Content-Type": "application/json"}, status=400)
    assert resp.text == "fail" and state(reg, no)[:2] == ("delivering", "processing")
    body, headers = sup.signed_callback({"status": "success", "out_order_no": f"K{no}"})
    assert api.post(f"/supplier/callback/{cid}", body, headers={**headers, "Content-Type": "application/json"}
                    ).text == "success"
    assert state(reg, no)[:2] == ("delivered", "success")
    body, headers = sup.signed_callback({"status": "failed", "out_order_no": f"K{no}"})
    api.post(f"/supplier/callback/{cid}", body, headers={**headers, "Content-Type": "application/json"})
    assert state(reg, no) == ("delivered", "success", 0, [])  # terminal states are sticky
    body, headers = sup.signed_callback({"status": "success", "out_order_no": "Knot-ours"})
    api.post(f"/supplier/callback/{cid}", body, headers={**headers, "Content-Type": "application/json"}, status=400)
    api.post("/supplier/callback/999999", body, headers=headers, status=404)


def test_a_delivery_after_the_shop_refunded_by_hand_never_reaches_the_buyer(api, reg):
    from kameng.orders import service as orders

    cid = imported(reg)
    sup.UP.mode = "processing"
    no = buy(api, reg, sku(reg, "STEAM50").code)
    run_jobs(reg, limit=5)
    with app_request(reg, actor="admin") as req:  # the shop gives up on it and refunds the buyer
        order = req.db.scalar(select(Order).where(Order.order_no == no).with_for_update())
        orders.admin_refund(req, order, None, "supplier too slow", "balance" if order.user_id else None)
    run_jobs(reg)
    assert state(reg, no)[0] == "refunded"
    body, headers = sup.signed_callback({"status": "success", "out_order_no": f"K{no}", "keys": ["LATE-KEY"]})
    api.post(f"/supplier/callback/{cid}", body, headers={**headers, "Content-Type": "application/json"})
    assert api.get(f"/api/v1/orders/{no}", {"query_password": "pass1234"}).json["items"][0]["keys"] == []
    with app_request(reg) as req:
        assert [k.state for k in req.db.scalars(select(CardKey).where(CardKey.order_ref == no))] == ["void"]
        assert req.db.scalar(select(UpstreamOrder.status)) == "success"  # paid upstream: the shop can see it
