"""The database misbehaves under a real server (waitress on 127.0.0.1):
SQLite busy (another connection holds the write lock), a transaction that
cannot commit, PostgreSQL/MariaDB connections killed between and in the
middle of requests. Requests fail cleanly (a notify answers non-success,
so the gateway retries; the API a JSON 5xx with a code) or are retried,
nothing is half-written, and the retry after the fault succeeds once
(SECURITY.md #45, #48)."""
import contextlib
import sqlite3
import threading
import types

import pytest
from faults_helpers import check_books, http, read, settled
from orders_helpers import NO_LIMITS, enable_sandbox, key_counts, make_sku, notify_fields, order_body, run_jobs
from sqlalchemy import event, exc, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from kameng import hookimpl, jobs
from kameng.db import make_engine
from kameng.notifications import FANOUT
from kameng.orders.models import Order
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.testing import LiveServer, free_port, set_plugin
from kameng.types import PluginMeta

pytestmark = pytest.mark.slow

#: SQLite's busy timeout for these tests' server: short, so a lock held
#: "longer than the timeout" is a fraction of a second, not 3 x 10 s
BUSY_MS = 250

#: a test plugin that listens to notifications (so a paid order queues its
#: e-mails as jobs) and runs the armed fault inside the request's transaction
PROBE = types.ModuleType("kameng_faultprobe")
PROBE.PLUGIN = PluginMeta(name="Fault probe (tests)")
PROBE.ARMED = {}


def _run_armed(name, request):
    fault = PROBE.ARMED.pop(name, None)
    if fault is not None:
        fault(request)


@hookimpl
def kameng_order_created(request, order):
    _run_armed("order_created", request)


@hookimpl
def kameng_payment_succeeded(request, attempt):
    _run_armed("payment_succeeded", request)


@hookimpl
def kameng_notify(request, event, data):
    """A channel that sends nothing: with a listener, events are queued as jobs."""


PROBE.kameng_order_created = kameng_order_created
PROBE.kameng_payment_succeeded = kameng_payment_succeeded
PROBE.kameng_notify = kameng_notify


@pytest.fixture(scope="module")
def server(make_app, db_url):
    engine = make_engine(db_url)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _short_busy_timeout(dbapi_conn, _record):  # after kameng's own listener: it wins
            dbapi_conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")

    port = free_port()
    app = make_app(extra_plugins=[("faultprobe", PROBE)], **NO_LIMITS,
                   **{"kameng.engine": engine, "kameng.base_url": f"http://127.0.0.1:{port}"})
    srv = LiveServer(app, port).start()
    srv.app, srv.db_url = app, db_url
    yield srv
    srv.stop()


@pytest.fixture
def reg(server):
    PROBE.ARMED.clear()
    enable_sandbox(server.app.registry)
    set_plugin(server.app.registry, "faultprobe", enabled=True)
    yield server.app.registry
    PROBE.ARMED.clear()


def dialect(server):
    return server.app.registry["kameng.engine"].dialect.name


def sqlite_only(server):
    if dialect(server) != "sqlite":
        pytest.skip("SQLite's write lock: PostgreSQL and MariaDB lock rows, not the database")


def server_only(server):
    if dialect(server) == "sqlite":
        pytest.skip("a SQLite database is a file in this process: there is no connection to lose")


@contextlib.contextmanager
def write_lock(server):
    """Another connection holds SQLite's write lock (BEGIN IMMEDIATE) until
    the block ends or ``release()`` is called."""
    conn = sqlite3.connect(server.db_url.removeprefix("sqlite:///"), isolation_level=None,
                           check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    state = {"held": True}

    def release():
        if state["held"]:
            state["held"] = False
            conn.execute("ROLLBACK")

    try:
        yield release
    finally:
        release()
        conn.close()


def new_order(server, sku="DBF", quantity=1, key=None):
    headers = {"Idempotency-Key": key} if key else None
    status, made, _h = http("POST", f"{server.url}/api/v1/orders", order_body(sku, quantity=quantity), headers)
    assert status == 201, made
    return made


def notify(server, made):
    status, body, _h = http("POST", f"{server.url}/pay/sandbox/notify",
                            notify_fields(made["payment"]["attempt_no"], made["amount"]), form=True)
    return status, body


def outcomes(reg, attempt_no):
    return [o for (o,) in read(reg, select(PaymentNotice.outcome).where(PaymentNotice.attempt_no == attempt_no)
                               .order_by(PaymentNotice.id), scalar=False)]


def fanout_events(reg):
    return sorted(p.split('"event": "')[1].split('"')[0] for (p,) in read(
        reg, select(jobs.Job.payload).where(jobs.Job.kind == FANOUT), scalar=False))


def untouched(reg, made, sku_id, keys=5):
    """Nothing of the failed notify was written: the attempt pending, the
    order unpaid, no notice, no job (no e-mail), the keys still reserved."""
    attempt_no = made["payment"]["attempt_no"]
    assert read(reg, select(PaymentAttempt.status).where(PaymentAttempt.attempt_no == attempt_no)) == "pending"
    assert read(reg, select(Order.status).where(Order.order_no == made["order_no"])) == "pending"
    assert outcomes(reg, attempt_no) == []
    assert fanout_events(reg) == []
    assert read(reg, select(func.count()).select_from(jobs.Job).where(jobs.Job.kind != "kameng.payments.query")) == 0
    assert key_counts(reg, sku_id)["reserved"] == made.get("quantity", 1)


def paid_once(reg, made):
    """The retry went through, once: paid, delivered, one of each e-mail."""
    run_jobs(reg)
    assert settled(reg)
    assert check_books(reg)["orders"][made["order_no"]] == "delivered"
    assert outcomes(reg, made["payment"]["attempt_no"]) == ["applied"]
    assert fanout_events(reg) == ["order.delivered", "order.paid"]


# -- SQLite busy ----------------------------------------------------------------------------------


def test_notify_while_sqlite_is_locked_asks_the_gateway_to_retry(server, reg):
    """SECURITY.md #45: a notify that cannot get the write lock in time is
    answered ``fail`` (503) with nothing written, never a page that could
    read as taken; the gateway's retry after the lock is gone pays once."""
    sqlite_only(server)
    _pid, sku_id = make_sku(reg, "DBF", price="2.00", keys=5)
    made = new_order(server)
    with write_lock(server):
        assert notify(server, made) == (503, "fail")
    untouched(reg, made, sku_id)
    assert notify(server, made) == (200, "success")
    paid_once(reg, made)


def test_order_while_sqlite_is_locked_is_a_json_error_and_nothing(server, reg):
    sqlite_only(server)
    _pid, sku_id = make_sku(reg, "DBF", price="2.00", keys=5)
    key = {"Idempotency-Key": "busy-order-0001"}
    with write_lock(server):
        status, body, headers = http("POST", f"{server.url}/api/v1/orders", order_body("DBF"), key)
    assert status >= 500 and headers["Content-Type"].startswith("application/json")
    assert body["error"]["code"] == "server_error"
    assert read(reg, select(func.count()).select_from(Order)) == 0
    assert key_counts(reg, sku_id) == {"available": 5, "reserved": 0, "sold": 0, "void": 0, "stock": 5}
    # the buyer's retry, with the same key, makes the order once
    status, made, _h = http("POST", f"{server.url}/api/v1/orders", order_body("DBF"), key)
    assert status == 201
    assert http("POST", f"{server.url}/api/v1/orders", order_body("DBF"), key)[1]["order_no"] == made["order_no"]
    assert read(reg, select(func.count()).select_from(Order)) == 1
    assert key_counts(reg, sku_id)["reserved"] == 1


def test_lock_released_between_attempts_the_request_is_retried_and_succeeds(server, reg):
    """"database is locked" is retryable: the request runs again (pyramid_retry)
    and the notify is taken at the second attempt, applied once."""
    from pyramid_retry import IBeforeRetry

    sqlite_only(server)
    make_sku(reg, "DBF", price="2.00", keys=5)
    made = new_order(server)
    retries = []
    with write_lock(server) as release:
        def on_retry(ev):  # runs in the server's thread, after the first attempt failed
            retries.append(type(ev.exception).__name__)
            release()

        reg.registerHandler(on_retry, (IBeforeRetry,))
        try:
            assert notify(server, made) == (200, "success")
        finally:
            reg.unregisterHandler(on_retry, (IBeforeRetry,))
    assert retries == ["OperationalError"]
    paid_once(reg, made)


def test_twenty_parallel_notifies_on_sqlite_lose_none(server, reg):
    """SECURITY.md #45: twenty notifies at once, on a busy timeout of a
    quarter second: each is taken or answered ``fail`` (then retried by the
    gateway), never a 500 page; every order is paid exactly once."""
    sqlite_only(server)
    make_sku(reg, "DBF", price="2.00", keys=20)
    orders = [new_order(server) for _ in range(20)]
    pending, answers = list(orders), []
    for _round in range(20):  # the gateway's retry schedule, bounded
        start, results = threading.Barrier(len(pending)), {}

        def send(made):
            start.wait()
            results[made["order_no"]] = notify(server, made)

        threads = [threading.Thread(target=send, args=(m,)) for m in pending]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        answers += results.values()
        pending = [m for m in pending if results[m["order_no"]] != (200, "success")]
        if not pending:
            break
    assert not pending
    assert set(answers) <= {(200, "success"), (503, "fail")}, answers
    run_jobs(reg)
    books = check_books(reg)
    assert set(books["orders"].values()) == {"delivered"} and len(books["orders"]) == 20
    for made in orders:
        assert outcomes(reg, made["payment"]["attempt_no"]) == ["applied"]


# -- a transaction that cannot commit -------------------------------------------------------------


def kill_own_connection(server):
    """A fault for PROBE.ARMED: the database server drops the request's
    connection (pg_terminate_backend / KILL), in the middle of its transaction."""
    def fault(request):
        conn = request.db.connection()
        name = dialect(server)
        own = conn.scalar(text("SELECT pg_backend_pid()" if name == "postgresql" else "SELECT CONNECTION_ID()"))
        admin = make_engine(server.db_url, poolclass=NullPool)
        try:
            with admin.connect() as c:
                if name == "postgresql":
                    assert c.scalar(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": own})
                else:
                    c.execute(text(f"KILL {int(own)}"))
        finally:
            admin.dispose()
    return fault


def failing_commit(reg):
    """The next commit of a request's session raises, as a database that
    cannot write (SQLite has no connection to lose): armed once."""
    armed = {"on": True}

    def before_commit(session):
        if armed["on"] and session.info.get("request") is not None and not session.in_nested_transaction():
            armed["on"] = False
            raise exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))

    event.listen(Session, "before_commit", before_commit)
    return lambda: event.remove(Session, "before_commit", before_commit)


def test_notify_whose_commit_fails_asks_for_a_retry_and_sends_nothing(server, reg):
    """SECURITY.md #48: the notify's transaction dies before it commits (its
    connection killed by the database server; on SQLite, the commit fails):
    the gateway gets a 5xx, not "success"; nothing is written and no
    e-mail queued; its retry pays the order once."""
    _pid, sku_id = make_sku(reg, "DBF", price="2.00", keys=5)
    made = new_order(server)
    if dialect(server) == "sqlite":
        disarm = failing_commit(reg)
    else:
        PROBE.ARMED["payment_succeeded"] = kill_own_connection(server)
        disarm = PROBE.ARMED.clear
    try:
        status, body = notify(server, made)
    finally:
        disarm()
    assert status >= 500 and "success" not in str(body).lower(), (status, body)
    untouched(reg, made, sku_id)
    assert notify(server, made) == (200, "success")
    paid_once(reg, made)


# -- PostgreSQL / MariaDB: connections lost -------------------------------------------------------


def kill_app_connections(server) -> int:
    """Terminate every other connection to the test database (all of them this
    test run's, none of the shared server's other databases)."""
    admin = make_engine(server.db_url, poolclass=NullPool)
    try:
        with admin.connect() as c:
            if dialect(server) == "postgresql":
                pids = list(c.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND pid <> pg_backend_pid()")))
                for pid in pids:
                    c.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})
            else:
                pids = list(c.scalars(text("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
                                           "AND ID <> CONNECTION_ID()")))
                for pid in pids:
                    with contextlib.suppress(exc.DBAPIError):  # gone meanwhile
                        c.execute(text(f"KILL {int(pid)}"))
            return len(pids)
    finally:
        admin.dispose()


def test_connections_killed_between_requests_are_replaced(server, reg):
    """The database server restarts (every connection dropped) between a
    buyer's requests: the pooled connections are checked before use and
    replaced, and the next requests work as if nothing happened."""
    server_only(server)
    _pid, sku_id = make_sku(reg, "DBF", price="2.00", keys=5)
    made = new_order(server)
    assert kill_app_connections(server) >= 1
    assert notify(server, made) == (200, "success")
    kill_app_connections(server)
    status, got, _h = http("GET", f"{server.url}/api/v1/orders/{made['order_no']}?token={made['access_token']}")
    assert status == 200 and got["status"] == "delivered"
    kill_app_connections(server)
    second = new_order(server)
    assert notify(server, second) == (200, "success")
    run_jobs(reg)
    assert set(check_books(reg)["orders"].values()) == {"delivered"}
    assert key_counts(reg, sku_id)["sold"] == 2


def test_order_whose_connection_dies_mid_transaction_leaves_nothing(server, reg):
    """The connection is killed after the order and its reservation were
    written, before the payment attempt: a JSON 5xx, no order, no reserved
    key; the buyer's retry (same key) makes the order once."""
    server_only(server)
    _pid, sku_id = make_sku(reg, "DBF", price="2.00", keys=5)
    key = {"Idempotency-Key": "lost-order-0001"}
    PROBE.ARMED["order_created"] = kill_own_connection(server)
    status, body, headers = http("POST", f"{server.url}/api/v1/orders", order_body("DBF"), key)
    assert "order_created" not in PROBE.ARMED  # the fault ran
    assert status >= 500 and headers["Content-Type"].startswith("application/json"), (status, body)
    assert body["error"]["code"] == "server_error"
    assert read(reg, select(func.count()).select_from(Order)) == 0
    assert key_counts(reg, sku_id) == {"available": 5, "reserved": 0, "sold": 0, "void": 0, "stock": 5}
    status, made, _h = http("POST", f"{server.url}/api/v1/orders", order_body("DBF"), key)
    assert status == 201, made
    assert notify(server, made) == (200, "success")
    paid_once(reg, made)
