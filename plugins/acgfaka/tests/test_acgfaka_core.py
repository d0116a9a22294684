"""End to end through kameng's supplier core: a shop with an acg-faka
connection to the fake upstream imports its goods, a buyer orders and pays
(sandbox payments), and the worker places the order upstream over real
HTTP on 127.0.0.1; the upstream's balance pays for it."""
from __future__ import annotations

import sys
from decimal import Decimal

import pytest
import webtest
from sqlalchemy import select

from kameng import money
from kameng.catalog.models import Sku
from kameng.orders.checkout import OrderRequest, create_order
from kameng.orders.models import Order
from kameng.orders.service import keys_of, open_attempt, refunds_of
from kameng.suppliers import connections, sync
from kameng.suppliers.models import SkuUpstream, SupplierConnection, UpstreamOrder
from kameng.testing import app_request, run_jobs, set_plugin
from kameng_sandbox.gateway import signed_fields

fakeshop = sys.modules["kameng_acgfaka_tests_acgfaka_fake"]  # loaded by conftest.py

pytestmark = pytest.mark.slow

PAY_SECRET = "sandbox-pay-secret-for-acgfaka-tests"
NO_LIMITS = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0"}


class Shop:
    def __init__(self, app):
        self.app, self.registry = app, app.registry
        self.web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})

    def connect(self, fake, goods=("CARD01", "RACE02", "QQ01"), **settings) -> int:
        raw = {"url": fake.url, "app_id": str(fakeshop.APP_ID), "app_key": fakeshop.APP_KEY, **settings}
        with app_request(self.registry, actor="admin") as req:
            conn = connections.save_connection(req, None, "acgfaka", "acg-faka upstream", raw)
            ok, message = connections.check_health(req, conn)
            assert ok, message
            sync.import_goods(req, conn, list(goods), ("markup", "10", 1))
            return conn.id

    def sku(self, upstream_sku: str) -> str:
        with app_request(self.registry) as req:
            return req.db.scalar(select(Sku.code).join(SkuUpstream, SkuUpstream.sku_id == Sku.id)
                                 .where(SkuUpstream.upstream_sku == upstream_sku))

    def buy(self, sku_code: str, quantity: int = 1, recharge: dict | None = None) -> str:
        with app_request(self.registry, actor="buyer") as req:
            order, _created = create_order(req, OrderRequest(
                sku=sku_code, quantity=quantity, contact="buyer@example.com", query_password="pass1234",
                payment_method="sandbox", recharge=recharge or {}))
            attempt = open_attempt(req, order, "sandbox")
            attempt_no, amount = attempt.attempt_no, money.format_minor(order.amount, order.currency)
            order_no = order.order_no
        self.web.post("/pay/sandbox/notify", signed_fields(attempt_no, amount, "paid", PAY_SECRET), status=200)
        return order_no

    def order(self, order_no: str) -> dict:
        with app_request(self.registry) as req:
            order = req.db.scalar(select(Order).where(Order.order_no == order_no))
            up = req.db.scalar(select(UpstreamOrder).where(UpstreamOrder.order_id == order.id))
            return {"status": order.status, "keys": keys_of(req, order), "refunds": len(refunds_of(req.db, order)),
                    "upstream": up.status if up else None, "out_order_no": up.out_order_no if up else None,
                    "upstream_order_no": up.upstream_order_no if up else None, "cost": up.cost if up else None,
                    "error": up.last_error if up else None}


@pytest.fixture
def fake(make_fake):
    """The stocked fake, plus a goods whose races have ASCII names: the core
    derives its SKU codes from the upstream's by dropping other characters,
    and two races that differ only in Chinese would collide there."""
    fake = make_fake()
    fake.add(fakeshop.Commodity("RACE02", "Video VIP", Decimal(0), Decimal(0), category="会员",
                                races={"month": "30.00", "year": "300"}),
             {"month": ["M0001----P0001", "M0002----P0002"]})
    return fake


@pytest.fixture
def make_shop(make_app):
    def start(delay_scale: str = "1") -> Shop:
        app = make_app(**{"kameng.payments.query_delay_scale": "0", "kameng.suppliers.delay_scale": delay_scale,
                          **NO_LIMITS})
        set_plugin(app.registry, "sandbox", enabled=True, secret=PAY_SECRET)
        set_plugin(app.registry, "acgfaka", enabled=True)
        return Shop(app)

    return start


@pytest.fixture
def shop(make_shop):
    return make_shop()


def test_card_keys_reach_the_buyer_and_the_upstream_balance_pays(shop, fake):
    shop.connect(fake)
    order_no = shop.buy(shop.sku("k:CARD01"), quantity=2)
    run_jobs(shop.registry)
    state = shop.order(order_no)
    assert (state["status"], state["upstream"]) == ("delivered", "success")
    assert [k["secret"] for k in state["keys"]] == ["AAAA-1111-XXXX", "BBBB-2222-YYYY"]
    assert fake.users[1001]["balance"] == Decimal("82.00") and state["cost"] == 1800
    trade = [post for path, post in fake.requests if path == "/shared/commodity/trade"]
    assert [t["request_no"] for t in trade] == [state["out_order_no"]] == [f"K{order_no}"]
    assert state["upstream_order_no"] == fake.orders[0]["trade_no"]


def test_races_import_with_their_own_price_and_stock(shop, fake):
    shop.connect(fake)
    with app_request(shop.registry) as req:
        rows = {u.upstream_sku: (s.cost_price, s.price, s.stock, s.visible) for s, u in req.db.execute(
            select(Sku, SkuUpstream).join(SkuUpstream, SkuUpstream.sku_id == Sku.id))}
    assert rows["k:RACE02/month"] == (2700, 2970, 2, True)
    assert rows["k:RACE02/year"][2:] == (0, False)  # sold out upstream: hidden
    order_no = shop.buy(shop.sku("k:RACE02/month"))
    run_jobs(shop.registry)
    state = shop.order(order_no)
    assert state["status"] == "delivered" and state["keys"][0]["number"] == "M0001"


def test_an_upstream_refusal_refunds_the_buyer(shop, fake):
    shop.connect(fake)
    fake.users[1001]["balance"] = Decimal("1.00")
    order_no = shop.buy(shop.sku("k:CARD01"))
    run_jobs(shop.registry)
    state = shop.order(order_no)
    assert state["upstream"] == "failed" and "余额不足" in state["error"]
    assert state["status"] in ("failed", "refunded") and state["refunds"] == 1 and fake.orders == []


def test_a_lost_answer_leaves_the_order_for_the_shop_and_never_buys_twice(make_shop, fake):
    shop = make_shop(delay_scale="0")  # every poll is due at once
    shop.connect(fake)
    fake.script["/shared/commodity/trade"] = ["garbage_after"]
    order_no = shop.buy(shop.sku("k:CARD01"))
    assert run_jobs(shop.registry, limit=25) == 25  # the place job, then poll after poll
    state = shop.order(order_no)
    assert (state["status"], state["upstream"]) == ("delivering", "unknown") and state["refunds"] == 0
    assert len(fake.orders) == 1
    trade = [post for path, post in fake.requests if path == "/shared/commodity/trade"]
    assert len(trade) == 1  # the polls ask the connector, which never answers "not placed"


def test_a_direct_recharge_is_placed_with_the_buyers_input(shop, fake):
    shop.connect(fake)
    order_no = shop.buy(shop.sku("m:QQ01"), recharge={"qq": "123456789"})
    run_jobs(shop.registry)
    state = shop.order(order_no)
    assert (state["status"], state["upstream"]) == ("delivering", "processing")
    assert fake.orders[0]["widget"]["qq"]["value"] == "123456789"


def test_a_sync_follows_the_upstreams_price_and_stock(shop, fake):
    conn_id = shop.connect(fake)
    fake.commodities["CARD01"].user_price = Decimal("20.00")
    fake.cards[("CARD01", "", "{}")] = []
    with app_request(shop.registry) as req:
        sync.sync_connection(req, req.db.get(SupplierConnection, conn_id))
    with app_request(shop.registry) as req:
        sku = req.db.scalar(select(Sku).where(Sku.code == shop.sku("k:CARD01")))
        assert (sku.cost_price, sku.price, sku.stock, sku.visible) == (1800, 1980, 0, False)
