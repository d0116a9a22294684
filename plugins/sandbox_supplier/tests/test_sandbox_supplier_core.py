"""End to end through kameng's supplier core: a live shop with a sandbox
supplier connection imports the simulated goods, a buyer orders and pays
(sandbox payments), and the worker places the order at the simulated
upstream; results come back by return, by polling or by the signed
callback to ``/supplier/callback/<connection id>`` over real HTTP."""
from __future__ import annotations

import time

import pytest
import webtest
from sqlalchemy import select

from kameng import money
from kameng.catalog.models import Sku
from kameng.orders.checkout import OrderRequest, create_order
from kameng.orders.models import Order
from kameng.orders.service import keys_of, open_attempt, refunds_of
from kameng.suppliers import connections, sync
from kameng.suppliers.models import SupplierConnection, UpstreamOrder
from kameng.testing import LiveServer, app_request, free_port, run_jobs, set_plugin
from kameng.types import UpstreamResult
from kameng_sandbox.gateway import signed_fields
from kameng_sandbox_supplier import protocol

pytestmark = pytest.mark.slow

PAY_SECRET = "sandbox-pay-secret-for-supplier-tests"
SUPPLIER_SECRET = "sandbox-supplier-core-secret-0123"
NO_LIMITS = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0"}


class Shop:
    def __init__(self, app, server):
        self.app, self.server, self.registry = app, server, app.registry
        self.web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})

    def connect(self, seed: str, goods=("sbx-steam", "sbx-cmcc"), **settings) -> int:
        """A sandbox supplier connection with ``goods`` imported at cost + 10 %."""
        raw = {"secret": SUPPLIER_SECRET, "seed": seed, "processing_seconds": "0", **settings}
        with app_request(self.registry, actor="admin") as req:
            conn = connections.save_connection(req, None, "sandbox_supplier", f"Sandbox {seed}", raw)
            ok, message = connections.check_health(req, conn)
            assert ok and "simulation" in message
            sync.import_goods(req, conn, list(goods), ("markup", "10", 1))
            return conn.id

    def buy(self, sku_code: str, quantity: int = 1, recharge: dict | None = None) -> str:
        """A guest order, paid through the sandbox gateway's signed notify."""
        with app_request(self.registry, actor="buyer") as req:
            order, _created = create_order(req, OrderRequest(
                sku=sku_code, quantity=quantity, contact="buyer@example.com", query_password="pass1234",
                payment_method="sandbox", recharge=recharge or {}))
            attempt = open_attempt(req, order, "sandbox")
            order_no, attempt_no = order.order_no, attempt.attempt_no
            amount = money.format_minor(order.amount, order.currency)
        self.web.post("/pay/sandbox/notify", signed_fields(attempt_no, amount, "paid", PAY_SECRET), status=200)
        return order_no

    def order(self, order_no: str) -> dict:
        with app_request(self.registry) as req:
            order = req.db.scalar(select(Order).where(Order.order_no == order_no))
            up = req.db.scalar(select(UpstreamOrder).where(UpstreamOrder.order_id == order.id))
            return {"status": order.status, "keys": keys_of(req, order), "refunds": len(refunds_of(req.db, order)),
                    "upstream": up.status if up else None, "out_order_no": up.out_order_no if up else None,
                    "cost": up.cost if up else None}

    def wait_for_status(self, order_no: str, statuses: tuple, timeout: float = 30.0) -> dict:
        """Wait (bounded) for something outside the test's thread, the callback, to move the order."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.order(order_no)
            if state["status"] in statuses or time.monotonic() > deadline:
                return state
            time.sleep(0.05)

    def sku_code(self, upstream_code: str) -> str:
        with app_request(self.registry) as req:
            return req.db.scalar(select(Sku.code).where(Sku.code.like(f"S%-{upstream_code}")))


@pytest.fixture
def make_shop(make_app):
    """``make_shop(delay_scale)`` → a live shop with both sandbox plugins on;
    ``delay_scale`` 0 makes the supplier polls due at once."""
    made = []

    def start(delay_scale: str = "1") -> Shop:
        port = free_port()
        app = make_app(**{"kameng.base_url": f"http://127.0.0.1:{port}", "kameng.suppliers.delay_scale": delay_scale,
                          "kameng.payments.query_delay_scale": "0", **NO_LIMITS})
        server = LiveServer(app, port).start()
        made.append(server)
        set_plugin(app.registry, "sandbox", enabled=True, secret=PAY_SECRET)
        set_plugin(app.registry, "sandbox_supplier", enabled=True)
        return Shop(app, server)

    yield start
    for server in made:
        server.stop()


def test_card_keys_reach_the_buyer(make_shop):
    shop = make_shop()
    shop.connect("e2e-cards")
    order_no = shop.buy(shop.sku_code("SBX-STEAM-50"), quantity=2)
    run_jobs(shop.registry)
    state = shop.order(order_no)
    assert (state["status"], state["upstream"]) == ("delivered", "success")
    assert state["out_order_no"] == f"K{order_no}"
    expected = [protocol.card_key("e2e-cards", state["out_order_no"], i, False)[1] for i in range(2)]
    assert [k["secret"] for k in state["keys"]] == expected
    unit = protocol.unit_cost("e2e-cards", "SBX-STEAM-50", 50)
    assert state["cost"] == money.to_minor(unit * 2, "CNY")


def test_a_recharge_is_finished_by_the_signed_callback(make_shop):
    shop = make_shop()  # polls wait 5 s and nobody runs them: only the callback can finish it
    shop.connect("e2e-callback")
    order_no = shop.buy(shop.sku_code("SBX-CMCC-50"), recharge={"phone": "13800138000"})
    run_jobs(shop.registry)
    state = shop.wait_for_status(order_no, ("delivered", "failed"))
    assert (state["status"], state["upstream"]) == ("delivered", "success")


def test_a_failed_recharge_callback_refunds_the_buyer(make_shop):
    shop = make_shop()
    shop.connect("e2e-callback-fail", failure_rate="100")
    order_no = shop.buy(shop.sku_code("SBX-CMCC-50"), recharge={"phone": "13800138000"})
    run_jobs(shop.registry)
    state = shop.wait_for_status(order_no, ("failed", "refunded"))
    assert state["upstream"] == "failed" and state["refunds"] == 1


def test_a_recharge_is_finished_by_polling_without_callbacks(make_shop):
    shop = make_shop(delay_scale="0")
    shop.connect("e2e-poll", poll_only="true")
    order_no = shop.buy(shop.sku_code("SBX-CMCC-50"), recharge={"phone": "13800138000"})
    run_jobs(shop.registry)
    state = shop.order(order_no)
    assert (state["status"], state["upstream"]) == ("delivered", "success")


def test_a_failed_card_order_is_refunded(make_shop):
    shop = make_shop()
    shop.connect("e2e-fail", failure_rate="100")
    order_no = shop.buy(shop.sku_code("SBX-STEAM-50"))
    run_jobs(shop.registry)
    state = shop.order(order_no)
    assert state["status"] in ("failed", "refunded") and state["upstream"] == "failed"
    assert state["refunds"] == 1 and state["keys"] == []


def test_import_and_sync_follow_the_simulated_stock(make_shop):
    shop = make_shop()
    conn_id = shop.connect("e2e-sync")
    with app_request(shop.registry) as req:
        skus = {s.code: (s.stock, s.visible) for s in req.db.scalars(select(Sku))}
    assert skus[shop.sku_code(protocol.SOLD_OUT)] == (0, False)  # sold out upstream: hidden
    before = skus[shop.sku_code("SBX-STEAM-100")][0]
    assert before == protocol.initial_stock("e2e-sync", "SBX-STEAM-100", True)
    shop.buy(shop.sku_code("SBX-STEAM-100"), quantity=3)
    run_jobs(shop.registry)
    with app_request(shop.registry) as req:
        sync.sync_connection(req, req.db.get(SupplierConnection, conn_id))
    with app_request(shop.registry) as req:
        stock = req.db.scalar(select(Sku.stock).where(Sku.code == shop.sku_code("SBX-STEAM-100")))
    assert stock == before - 3


def _callback(shop, conn_id, result, secret=SUPPLIER_SECRET, expect=200):
    body = protocol.callback_body(result)
    return shop.web.post(f"/supplier/callback/{conn_id}", body, status=expect,
                         headers={protocol.SIGNATURE_HEADER: protocol.sign(body, secret)},
                         content_type="application/json")


def test_forged_and_replayed_callbacks_change_nothing(make_shop):
    shop = make_shop()
    conn_id = shop.connect("e2e-forged", processing_seconds="3600")  # the simulation stays quiet
    order_no = shop.buy(shop.sku_code("SBX-CMCC-50"), recharge={"phone": "13800138000"})
    run_jobs(shop.registry)
    state = shop.order(order_no)
    assert (state["status"], state["upstream"]) == ("delivering", "processing")
    done = UpstreamResult("success", state["out_order_no"], "SBX1", delivered=1, message="done")
    _callback(shop, conn_id, done, secret="a-forger-does-not-know-it", expect=400)
    assert shop.order(order_no)["status"] == "delivering"
    _callback(shop, conn_id, done)
    assert shop.order(order_no)["status"] == "delivered"
    _callback(shop, conn_id, done)  # replayed: acknowledged, nothing more happens
    _callback(shop, conn_id, UpstreamResult("failed", state["out_order_no"], "SBX1"))  # a late contradiction
    state = shop.order(order_no)
    assert (state["status"], state["upstream"], state["refunds"]) == ("delivered", "success", 0)
