"""Crash consistency of the buyer flow: a real ``kameng serve`` or ``kameng
worker`` process SIGKILLs itself at a chosen point (tests/fault_launcher.py:
order created, payment notified, keys bound, supplier called, refund
posted), is started again normally, and the buyer, the "gateway" (this
test, retrying its notify) and the workers carry on. Then the books are
checked with SQL: every paid order delivered exactly once or refunded, no
key in two orders, the ledger balanced, the upstream asked to place each
order at most once (SECURITY.md #46, #47, #50). Runs against the suite's
database (a SQLite file, or KAMENG_TEST_DATABASE_URL)."""
import os

import pytest
import webtest
from faults_helpers import (
    UPSTREAM_ID,
    UPSTREAM_SKU,
    NoAnswer,
    Processes,
    check_books,
    http,
    install_upstream_plugin,
    read,
    settled,
    status_of,
    upstream_placings,
    wait_for,
    write_ini,
)
from orders_helpers import NO_LIMITS, enable_sandbox, key_counts, make_buyer, make_sku, notify_fields
from sqlalchemy import func, select

from kameng.catalog.models import Sku
from kameng.orders.models import Order
from kameng.payments.models import PaymentNotice
from kameng.suppliers import connections, sync
from kameng.suppliers.models import SkuUpstream, SupplierConnection, UpstreamOrder
from kameng.testing import app_request, free_port, set_plugin

pytestmark = pytest.mark.slow

KEYS = 6


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("faultsite")
    return str(path), install_upstream_plugin(str(path))


@pytest.fixture(scope="module")
def shop_app(make_app, base_settings, site):
    """The shop as this process sees it (to arrange and to check), and the
    settings its ``kameng`` processes run with: the same database and key file."""
    port = free_port()
    overrides = {**NO_LIMITS, "kameng.base_url": f"http://127.0.0.1:{port}",
                 "kameng.jobs.lease_seconds": "1",  # a killed worker's job is taken over soon
                 "kameng.jobs.retry_base_seconds": "0.05", "kameng.suppliers.delay_scale": "0"}
    app = make_app(extra_plugins=[(UPSTREAM_ID, site[1])], **overrides)
    app.port, app.ini_settings = port, {**base_settings, **overrides}
    return app


@pytest.fixture
def reg(shop_app):
    enable_sandbox(shop_app.registry)
    return shop_app.registry


@pytest.fixture
def procs(shop_app, site, tmp_path):
    ini = write_ini(tmp_path / "kameng.ini", shop_app.ini_settings, shop_app.port)
    path = os.pathsep.join(filter(None, [site[0], os.environ.get("PYTHONPATH")]))
    p = Processes(ini, tmp_path, shop_app.port,
                  env={"PYTHONPATH": path, "FAULT_UPSTREAM_BOOK": str(tmp_path / "upstream.book")})
    p.book = str(tmp_path / "upstream.book")
    yield p
    p.stop_all()


@pytest.fixture
def buyer(shop_app):
    return webtest.TestApp(shop_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


def body(sku="KILL", quantity=2, **extra):
    return {"sku": sku, "quantity": quantity, "contact": "buyer@example.com", "query_password": "pass1234",
            "payment_method": "sandbox", **extra}


def notices(reg, attempt_no):
    return [o for (o,) in read(reg, select(PaymentNotice.outcome).where(PaymentNotice.attempt_no == attempt_no)
                               .order_by(PaymentNotice.id), scalar=False)]


def wait_settled(reg, procs, proc):
    try:
        wait_for(lambda: settled(reg), "every paid order to be delivered or refunded", timeout=90)
    except AssertionError:
        raise AssertionError(procs.output(proc)) from None


# -- the web server or the worker dies ----------------------------------------------------------

POINTS = [
    # order created, not committed: the buyer's retry makes it anew
    "kameng.orders.checkout:create_order:after",
    # order created and committed, no answer: the retry with the same key finds it
    "kameng.orders.checkout:create_order:after_commit",
    # payment notified: not applied / applied, not committed / committed, not answered
    "kameng.payments.service:apply_notification:before",
    "kameng.payments.service:apply_notification:after",
    "kameng.payments.service:apply_notification:after_commit",
    # keys bound to the order: not committed / committed (in the notify's transaction, or in the
    # delivery job when the notify leaves it to the worker: the worker is armed then)
    "kameng.inventory.service:sell:after",
    "kameng.inventory.service:sell:after_commit",
]


@pytest.mark.parametrize("point", POINTS)
def test_killed_in_the_buyer_flow(reg, procs, point):
    _pid, sku_id = make_sku(reg, "KILL", price="3.00", keys=KEYS)
    key = {"Idempotency-Key": "fault-order-0001"}
    committed = point.endswith("after_commit")
    server = procs.serve(fault=point, worker=False, wait=False)
    # the server that takes over once the first one died: started meanwhile (it shares
    # nothing with the first but the database), so the test need not wait for it later
    standby = procs.serve(worker=False, port=free_port(), wait=False)
    procs.up(server)

    # the buyer orders; the server may die under the request
    try:
        status, made, headers = http("POST", f"{server.url}/api/v1/orders", body(), key)
    except NoAnswer:
        assert "create_order" in point
        procs.killed(server)
        server = procs.up(standby)
        status, made, headers = http("POST", f"{server.url}/api/v1/orders", body(), key)  # the buyer retries
        assert (headers.get("Idempotent-Replayed") == "true") == committed
    assert status == 201, made
    assert read(reg, select(func.count()).select_from(Order)) == 1
    assert key_counts(reg, sku_id)["reserved"] == 2

    # the gateway notifies, and retries until it is answered "success"
    attempt_no, amount = made["payment"]["attempt_no"], made["amount"]
    unanswered = False
    try:
        status, text, _h = http("POST", f"{server.url}/pay/sandbox/notify", notify_fields(attempt_no, amount),
                                form=True)
    except NoAnswer:
        assert "apply_notification" in point or "sell" in point
        procs.killed(server)
        unanswered = committed
        assert (status_of(reg, made["order_no"]) != "pending") == committed
        server = procs.up(standby)
        status, text, _h = http("POST", f"{server.url}/pay/sandbox/notify", notify_fields(attempt_no, amount),
                                form=True)
    assert (status, text) == (200, "success")

    if not settled(reg):  # delivery went to the job: a worker, armed too, does it (and may die doing it)
        worker = procs.worker(fault=point)
        wait_for(lambda: settled(reg) or worker.poll() is not None, "the delivery or the worker's death")
        if worker.poll() is not None:
            assert "sell" in point
            procs.killed(worker)
            worker = procs.worker()
        wait_settled(reg, procs, worker)
    assert os.path.exists(procs.marker())  # the fault did fire

    # a late replay of the notify changes nothing
    assert http("POST", f"{server.url}/pay/sandbox/notify", notify_fields(attempt_no, amount), form=True)[:2] == \
        (200, "success")
    books = check_books(reg)
    assert books["orders"] == {made["order_no"]: "delivered"}
    # a retry after a committed but unanswered notify was taken as a duplicate; a rolled-back one never counted
    assert notices(reg, attempt_no) == ["applied", *(["duplicate"] if unanswered else []), "duplicate"]
    assert key_counts(reg, sku_id) == {"available": KEYS - 2, "reserved": 0, "sold": 2, "void": 0,
                                       "stock": KEYS - 2}


@pytest.mark.parametrize("point", ["kameng.orders.service:pay_with_balance:after",
                                   "kameng.orders.service:pay_with_balance:after_commit"])
def test_server_killed_while_an_order_is_paid_from_the_balance(reg, procs, point):
    """The debit, the order and its payment commit together or not at all,
    and the buyer's retry under the same key never debits twice."""
    make_sku(reg, "KILL", price="3.00", keys=KEYS)
    user_id, token = make_buyer(reg, "wallet-fault@example.com", balance=1000)
    auth = {"Authorization": f"Bearer {token}", "Idempotency-Key": "fault-balance-0001"}
    server = procs.serve(fault=point, wait=False)
    standby = procs.serve(port=free_port(), wait=False)  # takes over (see test_killed_in_the_buyer_flow)
    procs.up(server)
    with pytest.raises(NoAnswer):
        http("POST", f"{server.url}/api/v1/orders", body(payment_method="balance"), auth)
    procs.killed(server)
    committed = point.endswith("after_commit")
    assert read(reg, select(func.count()).select_from(Order)) == (1 if committed else 0)
    server = procs.up(standby)
    status, made, headers = http("POST", f"{server.url}/api/v1/orders", body(payment_method="balance"), auth)
    assert status == 201 and made["status"] in ("paid", "delivered"), made
    assert (headers.get("Idempotent-Replayed") == "true") == committed
    wait_settled(reg, procs, server)
    books = check_books(reg)
    assert books["orders"] == {made["order_no"]: "delivered"}
    assert books["balances"] == {user_id: 1000 - 600}


# -- the worker dies ---------------------------------------------------------------------------


def paid_orders(buyer, quantities, sku="KILL"):
    """Orders placed and paid through the app (in this process): their numbers."""
    out = []
    for q in quantities:
        made = buyer.post_json("/api/v1/orders", body(sku, quantity=q), status=201).json
        assert buyer.post("/pay/sandbox/notify", notify_fields(made["payment"]["attempt_no"],
                                                               made["amount"])).text == "success"
        out.append(made["order_no"])
    return out


def connect_upstream(reg) -> str:
    """The fault upstream connected and its goods imported: the shop's SKU code."""
    set_plugin(reg, UPSTREAM_ID, enabled=True)
    with app_request(reg, actor="admin") as req:
        c = connections.save_connection(req, None, UPSTREAM_ID, "Fault upstream", {"token": "t0ken"})
        sync.import_goods(req, req.db.get(SupplierConnection, c.id), ["FG1"], ("markup", "10", 1))
    return read(reg, select(Sku.code).join(SkuUpstream, SkuUpstream.sku_id == Sku.id)
                .where(SkuUpstream.upstream_sku == UPSTREAM_SKU))


@pytest.mark.parametrize("point", [
    # the call is counted and committed, then the worker dies before it goes out
    "kameng.suppliers.service:_claim_call:after",
    # the upstream took the order, the worker dies before recording its answer (SECURITY.md #47)
    "kameng.suppliers.service:_record:before",
])
def test_worker_killed_around_the_supplier_call(reg, procs, buyer, point):
    code = connect_upstream(reg)
    nos = paid_orders(buyer, [2], sku=code)
    worker = procs.worker(fault=point)
    procs.killed(worker)
    assert read(reg, select(UpstreamOrder.status)) == "submitting"
    assert len(upstream_placings(procs.book)) == (1 if "_record" in point else 0)
    worker = procs.worker()
    wait_settled(reg, procs, worker)
    books = check_books(reg, procs.book)
    assert books["orders"] == dict.fromkeys(nos, "delivered")
    # placed exactly once, under the number written before the first call
    assert books["placed"] == {f"K{nos[0]}": 1}
    assert books["upstream"] == {f"K{nos[0]}": "success"}


def test_supplier_timeout_is_queried_never_placed_again(reg, procs, buyer):
    """SECURITY.md #50: the upstream takes the order but the answer times
    out: the upstream order is ``unknown``, the core asks about the same
    number and never places it again (under it or a new one)."""
    code = connect_upstream(reg)
    nos = paid_orders(buyer, [1], sku=code)
    worker = procs.worker(env={"FAULT_UPSTREAM_TIMEOUT": "1"})
    wait_settled(reg, procs, worker)
    books = check_books(reg, procs.book)
    assert books["orders"] == dict.fromkeys(nos, "delivered")
    assert books["placed"] == {f"K{nos[0]}": 1}
    assert books["upstream"] == {f"K{nos[0]}": "success"}


def test_worker_killed_while_refunding_to_the_balance(reg, procs, buyer):
    """The upstream fails the order; the worker dies after crediting the
    refund, before committing: the refund is made again, once."""
    code = connect_upstream(reg)
    user_id, token = make_buyer(reg, "refund-fault@example.com", balance=2000)
    made = buyer.post_json("/api/v1/orders", body(code, quantity=1, payment_method="balance"),
                           headers={"Authorization": f"Bearer {token}"}, status=201).json
    worker = procs.worker(fault="kameng.wallet:post:after", env={"FAULT_UPSTREAM_FAIL": "1"})
    procs.killed(worker)
    assert status_of(reg, made["order_no"]) == "delivering"
    worker = procs.worker(env={"FAULT_UPSTREAM_FAIL": "1"})
    wait_settled(reg, procs, worker)
    books = check_books(reg, procs.book)
    assert books["orders"] == {made["order_no"]: "refunded"}
    assert books["balances"] == {user_id: 2000}
