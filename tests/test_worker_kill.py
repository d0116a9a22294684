"""A real ``kameng worker`` process killed (SIGKILL) in the middle of delivering
paid orders, again and again, then started once more: every order ends
delivered exactly once (SECURITY.md B3 #46). Card keys from stock are
normally delivered in the payment's own transaction; these orders are held
for review when paid, then released to the delivery job (what happens to a
reviewed order, and to supplier orders), so that the worker delivers them. Runs on its own SQLite file made
by ``kameng init``, whatever database the rest of the suite uses."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import webtest
from orders_helpers import SECRET, key_counts, make_sku, notify_fields, order_body
from pyramid.paster import get_appsettings
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kameng import jobs
from kameng.config import configure
from kameng.inventory.models import CardKey
from kameng.notifications import FANOUT
from kameng.orders import service
from kameng.orders.models import Order, OrderEvent
from kameng.testing import app_request, set_plugin

pytestmark = pytest.mark.slow

#: a test-only plugin, installed for the worker process through a
#: distribution on PYTHONPATH: its kameng_order_delivered hook notes the order
#: in a file and then sleeps, inside the delivery transaction; it also listens
#: to notifications, so each delivery queues its ``order.delivered`` event
SLOW_PLUGIN = textwrap.dedent('''
    import os
    import time

    from kameng import hookimpl
    from kameng.types import PluginMeta

    PLUGIN = PluginMeta(name="Slow delivery (tests)")


    @hookimpl
    def kameng_order_delivered(request, order):
        path = os.environ.get("SLOW_DELIVERY_LOG")
        if path:
            with open(path, "a") as fh:
                fh.write(order.order_no + "\\n")
                fh.flush()
                os.fsync(fh.fileno())
        time.sleep(float(os.environ.get("SLOW_DELIVERY_SECONDS", "0")))


    @hookimpl
    def kameng_notify(request, event, data):
        """A notification channel that does nothing: with a listener, events are queued as jobs."""
''')

KILLS = 3
RANDOM_KILLS = 3
QUANTITIES = [1, 2, 3] * 4  # twelve orders, 24 keys
KEYS = 30


def install_plugin(site):
    os.makedirs(site / "kameng_slowdeliver-1.0.dist-info")
    (site / "kameng_slowdeliver.py").write_text(SLOW_PLUGIN)
    (site / "kameng_slowdeliver-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: kameng-slowdeliver\nVersion: 1.0\n")
    (site / "kameng_slowdeliver-1.0.dist-info" / "entry_points.txt").write_text(
        "[kameng]\nslowdeliver = kameng_slowdeliver\n")


def read_count(registry, kind) -> int:
    with Session(registry["kameng.engine"]) as s:
        return s.scalar(select(func.count()).where(jobs.Job.kind == kind))


def cli(ini, *args, env=None):
    return subprocess.run([sys.executable, "-m", "kameng.cli", "-c", ini, *args], env=env, check=True,
                          capture_output=True, text=True, timeout=120)


def started(log):
    if not os.path.exists(log):
        return []
    with open(log) as fh:
        return fh.read().split()


def wait_for(condition, what, timeout=60):
    """A guard against hanging, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_killed_worker_delivers_every_paid_order_exactly_once(tmp_path):
    data, site, log = tmp_path / "shop", tmp_path / "site", str(tmp_path / "deliveries.log")
    install_plugin(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
           "SLOW_DELIVERY_LOG": log}
    env.pop("KAMENG_CONFIG", None)
    env.pop("KAMENG_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "kameng.cli", "init", "--data", str(data), "--admin-password",
                    "admin-password-123"], env=env, check=True, capture_output=True, timeout=120)
    ini = str(data / "kameng.ini")
    text = (data / "kameng.ini").read_text().replace(
        "kameng.limits.orders_per_ip_per_minute = 20",
        "kameng.limits.orders_per_ip_per_minute = 0\n"
        "kameng.jobs.lease_seconds = 2\n"  # a dead worker's job is taken over soon
        "kameng.jobs.poll_interval = 0.05")
    (data / "kameng.ini").write_text(text)
    assert "kameng.jobs.lease_seconds = 2" in (data / "kameng.ini").read_text()
    cli(ini, "plugins", "enable", "slowdeliver", env=env)

    # the shop, seen from this process: a SKU, twelve paid orders
    app = configure(dict(get_appsettings(ini))).make_wsgi_app()
    registry = app.registry
    try:
        set_plugin(registry, "sandbox", enabled=True, secret=SECRET)
        _pid, sku_id = make_sku(registry, "KILL", price="3.00", keys=KEYS)
        api = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        orders = {}
        for q in QUANTITIES:
            created = api.post_json("/api/v1/orders", order_body("KILL", quantity=q)).json
            payment = created["payment"]
            with app_request(registry) as req:  # held for review: paid, not delivered with the payment
                req.db.execute(update(Order).where(Order.order_no == created["order_no"]).values(held="review"))
            assert api.post("/pay/sandbox/notify", notify_fields(payment["attempt_no"], payment["amount"])).text == \
                "success"
            orders[created["order_no"]] = q
        assert key_counts(registry, sku_id)["reserved"] == sum(QUANTITIES)
        assert read_count(registry, service.DELIVER) == len(orders)  # a held order waits for its delivery job
        with app_request(registry) as req:  # reviewed: the queued delivery jobs may hand them over
            req.db.execute(update(Order).values(held=""))

        def read(stmt):
            """A read in its own short transaction (no write lock: the worker must not wait for us)."""
            with Session(registry["kameng.engine"]) as s:
                return s.scalar(stmt)

        def delivered():
            return read(select(func.count()).where(Order.status == "delivered"))

        def start_worker(seconds):
            return subprocess.Popen([sys.executable, "-m", "kameng.cli", "-c", ini, "worker"],
                                    env={**env, "SLOW_DELIVERY_SECONDS": str(seconds)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        # kill the worker while a delivery is inside its transaction, several times
        killed_in = []
        for _ in range(KILLS):
            seen = len(started(log))
            worker = start_worker(3)
            try:
                wait_for(lambda seen=seen: len(started(log)) > seen, "a delivery to start")
                time.sleep(random.uniform(0, 0.5))  # well inside the 3 s the hook sleeps
                killed_in.append(started(log)[-1])
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(30)
        assert delivered() < len(orders)  # the kills left work to do
        # and at random moments (claiming, delivering, committing, idle)
        for _ in range(RANDOM_KILLS):
            worker = start_worker(0.2)
            time.sleep(random.uniform(0.5, 2.5))
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)

        # start it once more, at full speed, and let it finish
        worker = start_worker(0)
        try:
            wait_for(lambda: delivered() == len(orders), "every order to be delivered")
            wait_for(lambda: not read(select(func.count()).where(jobs.Job.kind == service.DELIVER,
                                                                 jobs.Job.status != jobs.DONE)),
                     "the deliver jobs to finish")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)

        with app_request(registry) as req:
            for no, quantity in orders.items():
                order = service.get(req.db, no)
                assert order.status == "delivered"
                keys = list(req.db.scalars(select(CardKey).where(CardKey.order_ref == no)))
                assert len(keys) == quantity and all(k.state == "sold" for k in keys)
                trail = [(e.from_status, e.to_status) for e in req.db.scalars(
                    select(OrderEvent).where(OrderEvent.order_id == order.id, OrderEvent.kind == "status")
                    .order_by(OrderEvent.id))]
                assert trail == [("pending", "paid"), ("paid", "delivered")]
            deliver_jobs = list(req.db.scalars(select(jobs.Job).where(jobs.Job.kind == service.DELIVER)))
            notices = [j.payload for j in req.db.scalars(select(jobs.Job).where(jobs.Job.kind == FANOUT))]
        assert len(deliver_jobs) == len(orders) and all(j.status == jobs.DONE for j in deliver_jobs)
        # the deliveries that were killed ran again (rolled back, then redone), and only then counted
        retried = [j for j in deliver_jobs if j.attempts > 1]
        assert len(retried) >= 1
        for no in set(killed_in):
            assert started(log).count(no) >= 2
        delivered_events = sorted(p for p in notices if '"order.delivered"' in p)
        assert len(delivered_events) == len(orders)  # one notification per order, none repeated
        assert len({p for p in delivered_events}) == len(orders)
        assert key_counts(registry, sku_id) == {"available": KEYS - sum(QUANTITIES), "reserved": 0,
                                                "sold": sum(QUANTITIES), "void": 0,
                                                "stock": KEYS - sum(QUANTITIES)}
    finally:
        registry["kameng.engine"].dispose()
