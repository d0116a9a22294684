"""Real threads against the real database: the same event queued by
several workers at once is one email; several workers sending at once send
each email once."""
from __future__ import annotations

import threading

from notify_email_helpers import enable_email, log_rows, run_worker, send_jobs

from kameng import jobs
from kameng.notifications import emit
from kameng.testing import app_request


def _together(n, func):
    barrier = threading.Barrier(n)
    errors = []

    def run():
        try:
            barrier.wait(timeout=10)
            func()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_one_event_queued_by_several_workers_at_once_is_one_email(email_app, smtp):
    from kameng_notify_email.service import queue

    registry = email_app.registry
    enable_email(registry, smtp)
    data = {"order_no": "202612010000000031", "contact": "b@example.com", "status": "delivered"}

    def queue_once():
        with app_request(registry) as req:
            queue(req, "order.delivered", data)

    _together(6, queue_once)
    assert len(log_rows(registry)) == 1 and len(send_jobs(registry)) == 1
    run_worker(registry)
    assert len(smtp.inbox.received) == 1


def test_several_workers_send_each_email_once(email_app, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        for i in range(12):
            emit(req.db, "stock.low", {"sku": f"S{i}", "name": f"Card {i}", "available": 1, "threshold": 2})
    run_worker(registry, limit=1)  # the core's fan-out job

    def work():
        worker = jobs.Worker(registry, worker_id=f"w-{threading.get_ident()}")
        worker.retry_base = 3600
        while worker.run_one():
            pass

    _together(4, work)
    run_worker(registry)
    subjects = sorted(m["Subject"] for m in smtp.inbox.messages())
    assert len(subjects) == 12 and len(set(subjects)) == 12
    rows = log_rows(registry)
    assert len(rows) == 12 and all(r.status == "sent" and r.attempts == 1 for r in rows)
    assert all(j.status == jobs.DONE for j in send_jobs(registry))
