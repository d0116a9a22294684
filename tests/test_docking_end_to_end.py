"""Two kameng shops docked over real HTTP on loopback, each with its own
database: the downstream imports the upstream's goods through the `dock`
connector, a buyer orders and pays downstream, the order is placed upstream
and paid from the downstream's balance there, and the key comes back to the
buyer; price and stock changes upstream show downstream after a sync."""
import json
import os
import urllib.parse
import urllib.request

import pytest
from sqlalchemy import select, update

from kameng import accounts, wallet
from kameng.catalog.models import Sku
from kameng.config import configure
from kameng.migrate import upgrade
from kameng.suppliers import connections, sync
from kameng.suppliers.models import SupplierConnection, UpstreamOrder
from kameng.testing import LiveServer, add_card_sku, app_request, free_port, run_jobs, set_plugin
from orders_helpers import NO_LIMITS, SECRET, notify_fields

pytestmark = pytest.mark.slow
pytest.importorskip("kameng_dock")


@pytest.fixture
def upstream(base_settings, tmp_path):
    """The upstream shop: a database of its own (SQLite in a folder of this
    test), served on a port of its own."""
    port = free_port()
    settings = {**base_settings, **NO_LIMITS, "sqlalchemy.url": f"sqlite:///{os.path.join(tmp_path, 'up.sqlite')}",
                "kameng.base_url": f"http://127.0.0.1:{port}", "kameng.data_dir": str(tmp_path)}
    config = configure(settings)
    upgrade(config.registry["kameng.engine"], config.registry["kameng.plugins"])
    app = config.make_wsgi_app()
    server = LiveServer(app, port).start()
    server.registry = app.registry
    yield server
    server.stop()
    app.registry["kameng.engine"].dispose()


@pytest.fixture
def downstream(make_app):
    port = free_port()
    app = make_app(**NO_LIMITS, **{"kameng.base_url": f"http://127.0.0.1:{port}", "kameng.suppliers.delay_scale": "0"})
    server = LiveServer(app, port).start()
    server.registry = app.registry
    yield server
    server.stop()


def agent_at(upstream) -> tuple[int, str, str]:
    """An agent account upstream with 100.00 and a docking key."""
    from kameng.dock.manage import issue

    with app_request(upstream.registry, actor="admin@example.com") as req:
        user = accounts.create_user(req.db, "downstream@example.com", "downstream-password-1", role="agent")
        wallet.post(req.db, user.id, 10000, "CNY", "admin", note="prepaid")
        key, secret = issue(req, user, name="downstream shop")
        return user.id, key.key_id, secret


def test_two_shops_dock_import_sell_deliver_and_sync(upstream, downstream):
    up_reg, down_reg = upstream.registry, downstream.registry
    add_card_sku(up_reg, code="UPCARD", price="20.00", keys=5, name="上游游戏卡")
    agent_id, key_id, secret = agent_at(upstream)

    # the downstream connects, imports with a 10 % markup
    set_plugin(down_reg, "sandbox", enabled=True, secret=SECRET)
    set_plugin(down_reg, "dock", enabled=True)
    with app_request(down_reg, actor="admin") as req:
        c = connections.save_connection(req, None, "dock", "上游商城", {"url": upstream.url, "key_id": key_id,
                                                                     "secret": secret})
        ok, message = connections.check_health(req, c)
        assert ok, message
        goods = connections.connector_for(req, c).list_goods()
        made = sync.import_goods(req, c, [g.id for g in goods], ("markup", "10", 1))
        cid = c.id
    assert len(made) == 1
    with app_request(down_reg) as req:
        sku = req.db.scalar(select(Sku))
        code, price, stock = sku.code, sku.price, sku.stock
    assert (price, stock) == (2200, 5)

    # a buyer orders and pays downstream, over HTTP like every call between the shops
    def call(method, path, body=None):
        req = urllib.request.Request(downstream.url + path, method=method, data=json.dumps(body).encode()
                                     if body is not None else None, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    made = call("POST", "/api/v1/orders", {"sku": code, "quantity": 2, "contact": "buyer@example.com",
                                           "query_password": "pass1234", "payment_method": "sandbox"})
    fields = notify_fields(made["payment"]["attempt_no"], made["amount"])
    urllib.request.urlopen(urllib.request.Request(
        downstream.url + "/pay/sandbox/notify", data=urllib.parse.urlencode(fields).encode(), method="POST"),
        timeout=30).read()
    for _ in range(5):  # the downstream places upstream; the upstream delivers (and calls back)
        run_jobs(down_reg)
        run_jobs(up_reg)
    order = call("GET", f"/api/v1/orders/{made['order_no']}?token={made['access_token']}")
    assert order["status"] == "delivered", order
    secrets = sorted(k["secret"] for k in order["items"][0]["keys"])
    assert len(set(secrets)) == 2 and all(s.startswith("UPCARD-KEY-") for s in secrets)  # the upstream's keys
    with app_request(up_reg) as req:
        assert wallet.balance(req.db, agent_id) == 10000 - 2 * 2000  # the agent's price upstream
    with app_request(down_reg) as req:
        up = req.db.scalar(select(UpstreamOrder))
        assert (up.status, up.attempts) == ("success", 1)

    # the upstream changes its price and sells out: the downstream follows after a sync
    with app_request(up_reg) as req:
        req.db.execute(update(Sku).where(Sku.code == "UPCARD").values(price=2500))
        from kameng.inventory.models import AVAILABLE, CardKey

        req.db.execute(update(CardKey).where(CardKey.state == AVAILABLE).values(state="void"))
        req.db.execute(update(Sku).where(Sku.code == "UPCARD").values(stock=0))
    with app_request(down_reg) as req:
        sync.sync_connection(req, req.db.get(SupplierConnection, cid))
    with app_request(down_reg) as req:
        sku = req.db.scalar(select(Sku))
        assert (sku.cost_price, sku.price, sku.stock, sku.visible) == (2500, 2750, 0, False)
