"""Real concurrency on the money paths: many buyers, many notifies, several
workers, each its own HTTP request to a real server (or its own database
session), against whichever database the suite runs on (SQLite by default,
PostgreSQL or MariaDB through KAMENG_TEST_DATABASE_URL)."""
import json
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from orders_helpers import (
    NO_LIMITS,
    count,
    enable_sandbox,
    key_counts,
    load_order,
    make_sku,
    notify_fields,
    order_body,
    sold_keys,
)
from sqlalchemy import func, select, update

from kameng import jobs
from kameng.db import utcnow
from kameng.inventory.models import CardKey
from kameng.orders import service
from kameng.orders.models import Order, OrderEvent
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.testing import LiveServer, app_request, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(make_app):
    """A real waitress server (8 threads) with the per-address limits off:
    every buyer here comes from 127.0.0.1."""
    port = free_port()
    app = make_app(**NO_LIMITS, **{"kameng.base_url": f"http://127.0.0.1:{port}"})
    srv = LiveServer(app, port).start()
    srv.app = app
    yield srv
    srv.stop()


@pytest.fixture
def registry(server):
    return server.app.registry


def http(method, url, data=None, headers=None, form=False):
    """``(status, body)``; JSON bodies are decoded."""
    if data is not None and not form:
        body = json.dumps(data).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    elif data is not None:
        body = urllib.parse.urlencode(data).encode()
    else:
        body = None
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, raw = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read().decode()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def at_once(n, fn):
    """Run ``fn(i)`` in ``n`` threads released together; the results in order of ``i``."""
    start = threading.Barrier(n)
    results = [None] * n

    def run(i):
        start.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - reported as a result, asserted by the test
            results[i] = ("exception", repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def run_workers(registry, n=3):
    """``n`` worker threads drain the job queue together."""
    errors = []

    def drain(i):
        w = jobs.Worker(registry, worker_id=f"race-worker-{i}")
        idle = 0
        while idle < 3:  # a job another worker holds may queue follow-ups: look again
            try:
                idle = 0 if w.run_one() else idle + 1
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
                return

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    with app_request(registry) as req:
        stuck = req.db.execute(select(jobs.Job.kind, jobs.Job.status, jobs.Job.last_error)
                               .where(jobs.Job.status != jobs.DONE, jobs.Job.run_at <= utcnow())).all()
    assert stuck == [], stuck  # nothing failed or was left behind


def test_a_hundred_buyers_for_ten_keys(server, registry):
    enable_sandbox(registry)
    _pid, sku_id = make_sku(registry, "RUSH", price="30.00", keys=10)
    url = server.url

    def buy(i):
        return http("POST", f"{url}/api/v1/orders", {**order_body("RUSH"), "contact": f"buyer{i}@example.com"})

    results = at_once(100, buy)
    created = [body for status, body in results if status == 201]
    refused = [body for status, body in results if status == 409]
    assert len(created) == 10, results
    assert len(refused) == 90, [r for r in results if r[0] not in (201, 409)]
    assert all(b["error"]["code"] == "out_of_stock" and b["error"]["message"] for b in refused)
    assert count(registry, Order) == 10  # the refused ones left no order behind
    assert key_counts(registry, sku_id) == {"available": 0, "reserved": 10, "sold": 0, "void": 0, "stock": 0}

    # all ten pay at once; the gateway's notifies arrive together
    def notify(i):
        payment = created[i]["payment"]
        return http("POST", f"{url}/pay/sandbox/notify", notify_fields(payment["attempt_no"], payment["amount"]),
                    form=True)

    assert at_once(10, notify) == [(200, "success")] * 10
    run_workers(registry)
    secrets_ = []
    for body in created:
        status, page = http("GET", f"{url}/api/v1/orders/{body['order_no']}?token={body['access_token']}")
        assert status == 200 and page["status"] == "delivered", page
        keys = page["items"][0]["keys"]
        assert len(keys) == 1
        secrets_.append(keys[0]["secret"])
    assert sorted(secrets_) == [f"RUSH-KEY-{i:04d}" for i in range(10)]  # each key sold exactly once
    assert key_counts(registry, sku_id) == {"available": 0, "reserved": 0, "sold": 10, "void": 0, "stock": 0}
    with app_request(registry) as req:
        per_order = req.db.execute(select(CardKey.order_ref, func.count()).where(CardKey.state == "sold")
                                   .group_by(CardKey.order_ref)).all()
    assert sorted(n for _ref, n in per_order) == [1] * 10
    assert {ref for ref, _n in per_order} == {b["order_no"] for b in created}


def test_one_notify_sent_a_hundred_times_pays_and_delivers_once(server, registry):
    enable_sandbox(registry)
    _pid, sku_id = make_sku(registry, "DUP", price="12.50", keys=5)
    status, body = http("POST", f"{server.url}/api/v1/orders", order_body("DUP", quantity=2))
    assert status == 201
    no, payment = body["order_no"], body["payment"]
    fields = notify_fields(payment["attempt_no"], payment["amount"])  # one notify, replayed as it was
    target = f"{server.url}/pay/sandbox/notify"
    # 50 at once (the first one to apply races the others), with workers delivering meanwhile
    drained = threading.Thread(target=run_workers, args=(registry, 2))
    concurrent = at_once(50, lambda i: http("POST", target, fields, form=True))
    drained.start()
    sequential = [http("POST", target, fields, form=True) for _ in range(50)]
    drained.join(300)
    run_workers(registry)
    assert concurrent == [(200, "success")] * 50
    assert sequential == [(200, "success")] * 50
    order = load_order(registry, no)
    assert order.status == "delivered"
    assert len(sold_keys(registry, no)) == 2
    assert key_counts(registry, sku_id) == {"available": 3, "reserved": 0, "sold": 2, "void": 0, "stock": 3}
    assert count(registry, jobs.Job, jobs.Job.kind == service.DELIVER) == 0  # delivered in the notify
    with app_request(registry) as req:
        to = list(req.db.scalars(select(OrderEvent.to_status).where(OrderEvent.order_id == order.id,
                                                                     OrderEvent.kind == "status")))
        outcomes = list(req.db.scalars(select(PaymentNotice.outcome)))
        attempt = req.db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == payment["attempt_no"]))
    assert to == ["paid", "delivered"]
    assert outcomes.count("applied") == 1 and outcomes.count("duplicate") == 99
    assert attempt.status == "paid" and attempt.provider_trade_no == "SBX" + payment["attempt_no"]
    assert order.refunded_amount == 0 and count(registry, service.Refund) == 0


def test_same_idempotency_key_from_twenty_clients_at_once_is_one_order(server, registry):
    enable_sandbox(registry)
    _pid, sku_id = make_sku(registry, "IDEM", price="5.00", keys=5)
    headers = {"Idempotency-Key": "double-click-0001"}
    results = at_once(20, lambda i: http("POST", f"{server.url}/api/v1/orders", order_body("IDEM"), headers))
    assert all(status == 201 for status, _ in results), results
    assert len({body["order_no"] for _, body in results}) == 1
    assert count(registry, Order) == 1 and count(registry, PaymentAttempt) == 1
    assert key_counts(registry, sku_id)["reserved"] == 1


def test_expiry_racing_payments_never_delivers_twice_or_loses_money(server, registry):
    """Twenty orders past their time: the expiry job and their notifies run at
    once. Whichever wins, each order ends delivered exactly once (a late
    payment takes its stock back) and no key goes to two orders."""
    enable_sandbox(registry)
    _pid, sku_id = make_sku(registry, "RACE", price="2.00", keys=20)
    orders = [http("POST", f"{server.url}/api/v1/orders", order_body("RACE"))[1] for _ in range(20)]
    with app_request(registry) as req:
        req.db.execute(update(Order).values(expires_at=utcnow()))

    def go(i):
        if i == 20:
            with app_request(registry) as req:
                return service.expire_due(req)
        payment = orders[i]["payment"]
        return http("POST", f"{server.url}/pay/sandbox/notify",
                    notify_fields(payment["attempt_no"], payment["amount"]), form=True)

    results = at_once(21, go)
    assert results[:20] == [(200, "success")] * 20
    run_workers(registry)
    for body in orders:
        assert load_order(registry, body["order_no"]).status == "delivered"
        assert len(sold_keys(registry, body["order_no"])) == 1
    assert key_counts(registry, sku_id) == {"available": 0, "reserved": 0, "sold": 20, "void": 0, "stock": 0}
    assert count(registry, service.Refund) == 0
    with app_request(registry) as req:
        delivered = req.db.scalar(select(func.count()).where(OrderEvent.to_status == "delivered",
                                                             OrderEvent.kind == "status"))
    assert delivered == 20


def test_one_account_paying_twelve_orders_from_its_balance_at_once(server, registry):
    """The order insert locks the buyer's row for its foreign key and the
    wallet locks it to debit: twelve at once must neither deadlock (a 500)
    nor debit more than the balance holds."""
    from kameng import wallet
    from orders_helpers import make_buyer

    enable_sandbox(registry)
    make_sku(registry, "BAL", price="5.00", keys=20)
    user_id, token = make_buyer(registry, "wallet-race@example.com", balance=5000)  # ten orders' worth
    auth = {"Authorization": f"Bearer {token}"}
    results = at_once(12, lambda i: http("POST", f"{server.url}/api/v1/orders",
                                         order_body("BAL", payment_method="balance"), auth))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 10 + [409] * 2, results
    assert all(body["error"]["code"] == "insufficient_balance" for status, body in results if status == 409)
    with app_request(registry) as req:
        assert wallet.balance(req.db, user_id) == 0
