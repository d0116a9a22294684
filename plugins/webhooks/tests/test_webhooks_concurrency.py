"""Several workers at once, on real threads against the test database:
every delivery is sent and logged once, and an automatic retry racing a
resend of the same delivery are logged with distinct numbers."""
from __future__ import annotations

import threading

from kameng import jobs
from kameng.testing import app_request

from kameng_webhooks import service

from webhooks_helpers import attempts, deliveries, emit, make_due, make_endpoint, run_all


def _workers(registry, n=4, rounds=30):
    errors = []
    barrier = threading.Barrier(n)

    def work(i):
        worker = jobs.Worker(registry, worker_id=f"test-worker-{i}")
        try:
            barrier.wait()
            idle = 0
            while idle < 3 and rounds:
                if worker.run_one():
                    idle = 0
                else:
                    idle += 1
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_parallel_workers_send_each_delivery_once(wh, receiver):
    a, b = receiver(), receiver()
    make_endpoint(wh, a.url)
    make_endpoint(wh, b.url)
    for i in range(8):
        emit(wh, "order.paid", {"order_no": f"P{i}"})
    _workers(wh)
    run_all(wh)  # whatever a worker left behind (none expected)
    assert len(a.received) == len(b.received) == 8
    ids = [g.headers["x-kameng-webhook-id"] for g in a.received + b.received]
    assert len(set(ids)) == 16
    made = deliveries(wh)
    assert len(made) == 16 and {d.status for d in made} == {"delivered"}
    for d in made:
        assert [x.number for x in attempts(wh, d.delivery_id)] == [1]
    with app_request(wh) as req:
        from sqlalchemy import func, select

        assert req.db.scalar(select(func.count()).select_from(jobs.Job).where(jobs.Job.status == jobs.DEAD)) == 0


def test_a_retry_and_a_resend_at_the_same_time(wh, receiver):
    r = receiver(plan=[500], default=200)
    make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "P100"})
    run_all(wh, rounds=1)  # the first attempt fails; its retry is queued for later
    (d,) = deliveries(wh)
    assert d.status == "pending" and d.attempt_count == 1
    with app_request(wh) as req:
        delivery = req.db.get(service.Delivery, d.id)
        service.resend(req, delivery)
    make_due(wh)  # the retry and the resend are both due now
    _workers(wh, n=2)
    (d,) = deliveries(wh)
    logged = attempts(wh, d.delivery_id)
    # the resend always goes out; the retry is skipped when the resend
    # delivered first, and sent when both were under way together
    assert [x.number for x in logged] == list(range(1, len(logged) + 1)) and len(logged) in (2, 3)
    assert d.attempt_count == len(logged) == len(r.received)
    assert "resend" in {x.trigger for x in logged[1:]}
    assert d.status == "delivered"
