"""Notifications reach each enabled plugin in its own job, after commit."""
import kameng_testplug
from sqlalchemy import select

from kameng import jobs
from kameng.catalog.models import Category, Product, Sku
from kameng.db import utcnow
from kameng.inventory import service as inventory
from kameng.notifications import emit
from kameng.testing import app_request, set_plugin


def run_all(registry, retry_base=None):
    w = jobs.Worker(registry)
    if retry_base:
        w.retry_base = retry_base
    while w.run_one():
        pass


def test_emit_reaches_enabled_plugins_only(plug_app):
    registry = plug_app.registry
    kameng_testplug.CALLS.clear()
    with app_request(registry) as req:
        emit(req.db, "order.delivered", {"order_no": "K1"})
    run_all(registry)
    assert kameng_testplug.CALLS == []  # disabled: not called
    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    with app_request(registry) as req:
        emit(req.db, "order.delivered", {"order_no": "K2"})
    run_all(registry)
    notes = [c for c in kameng_testplug.CALLS if c[0] == "notify"]
    assert notes == [("notify", "order.delivered", {"order_no": "K2"})]


def test_with_no_channel_enabled_events_are_logged_not_queued(plug_app, caplog):
    registry = plug_app.registry
    caplog.set_level("INFO", logger="kameng.notifications")
    with app_request(registry) as req:
        emit(req.db, "order.delivered", {"order_no": "K3", "secret": "never-logged"})
    with app_request(registry) as req:
        assert req.db.scalar(select(jobs.Job.id).where(jobs.Job.kind == "kameng.notify")) is None
    logged = [r for r in caplog.records if r.msg == "notification"]
    assert [(r.event, r.order_no) for r in logged] == [("order.delivered", "K3")]
    assert "never-logged" not in caplog.text
    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    with app_request(registry) as req:
        emit(req.db, "order.delivered", {"order_no": "K4"})
    with app_request(registry) as req:
        assert req.db.scalar(select(jobs.Job.id).where(jobs.Job.kind == "kameng.notify")) is not None


def test_a_failing_channel_is_retried_on_its_own(plug_app):
    registry = plug_app.registry
    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    kameng_testplug.CALLS.clear()
    with app_request(registry) as req:
        emit(req.db, "order.delivered", {"fail": True})
    run_all(registry, retry_base=60)
    with app_request(registry) as req:
        deliver = req.db.scalar(select(jobs.Job).where(jobs.Job.kind == "kameng.notify.deliver"))
        fan = req.db.scalar(select(jobs.Job).where(jobs.Job.kind == "kameng.notify"))
    assert fan.status == jobs.DONE
    assert deliver.status == jobs.QUEUED and deliver.attempts == 1 and "channel down" in deliver.last_error


def test_low_stock_fires_once_when_crossing_the_threshold(plug_app):
    registry = plug_app.registry
    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    kameng_testplug.CALLS.clear()
    with app_request(registry) as req:
        cat = Category(name="c")
        req.db.add(cat)
        req.db.flush()
        product = Product(name="p", type="card_key", category_id=cat.id)
        req.db.add(product)
        req.db.flush()
        sku = Sku(product_id=product.id, code="LOW", name="low", price=100, stock=0, low_stock_threshold=2)
        req.db.add(sku)
        req.db.flush()
        sku_id = sku.id
    from sqlalchemy.orm import Session

    inventory.import_keys(lambda: Session(registry["kameng.write_engine"]), registry["kameng.keyring"], sku_id,
                          [f"L{i}" for i in range(5)])
    later = utcnow().replace(year=utcnow().year + 1)
    for n in range(4):
        with app_request(registry) as req:
            inventory.reserve(req.db, sku_id, 1, f"o{n}", later)
    run_all(registry)
    lows = [c for c in kameng_testplug.CALLS if c[1] == "stock.low"]
    assert lows == [("notify", "stock.low", {"sku": "LOW", "name": "low", "available": 2, "threshold": 2})]


def test_a_wrong_amount_alerts_the_shop_once_however_often_the_gateway_retries(plug_app):
    import webtest

    from kameng.testing import open_order
    from orders_helpers import enable_sandbox, make_sku, notify_fields

    registry = plug_app.registry
    kameng_testplug.CALLS.clear()
    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    enable_sandbox(registry)
    make_sku(registry, "CARD10", price="10.00", keys=2)
    order_no, attempt_no = open_order(registry, "CARD10", "sandbox")
    web = webtest.TestApp(plug_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    for _ in range(3):  # the gateway retries a refused notify
        assert web.post("/pay/sandbox/notify", notify_fields(attempt_no, "0.01"), status=400).text == "fail"
    run_all(registry)
    alerts = [c[2] for c in kameng_testplug.CALLS if c[:2] == ("notify", "payment.amount_mismatch")]
    assert alerts == [{"attempt_no": attempt_no, "gateway": "sandbox", "order_no": order_no, "expected": "10.00",
                       "currency": "CNY", "paid": "0.01"}]
