"""Deliveries end to end against a fake receiver on 127.0.0.1: a real order,
retries with back-off, timeouts, redirects, what is never sent."""
from __future__ import annotations

import datetime as dt
import json

import webtest
from sqlalchemy import select

from kameng import jobs
from kameng.db import utcnow
from kameng.testing import add_card_sku, app_request, open_order, run_jobs, set_plugin

from kameng_webhooks import service
from kameng_webhooks.models import Delivery

from webhooks_helpers import (attempts, deliveries, emit, make_due, make_endpoint, receiver_verifies, run_all,
                              webhook_jobs)


def _pay_with_sandbox(app, registry, code="WH1"):
    """A guest order paid through the sandbox's signed notify (the real path)."""
    from kameng_sandbox.gateway import signed_fields

    secret = "s" * 32
    set_plugin(registry, "sandbox", enabled=True, secret=secret)
    add_card_sku(registry, code=code, price="12.50", keys=3)
    order_no, attempt_no = open_order(registry, code, "sandbox")
    client = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    resp = client.post("/pay/sandbox/notify", signed_fields(attempt_no, "12.50", "paid", secret))
    assert resp.text == "success"
    return order_no


def test_a_paid_order_sends_paid_and_delivered_signed(wh_app, wh, receiver):
    r = receiver()
    _eid, secret = make_endpoint(wh, r.url, events="order.*")
    order_no = _pay_with_sandbox(wh_app, wh)
    run_all(wh)
    events = [json.loads(g.body)["event"] for g in r.received]
    assert events == ["order.paid", "order.delivered"]
    for got in r.received:
        assert receiver_verifies(secret, got)
        doc = json.loads(got.body)
        assert doc["data"]["order_no"] == order_no and doc["data"]["amount"] == "12.50"
        assert "WH1-KEY" not in got.body.decode()  # never the card keys
    assert [d.status for d in deliveries(wh)] == ["delivered", "delivered"]


def test_each_endpoint_gets_its_own_delivery_and_only_what_it_subscribes_to(wh, receiver):
    a, b = receiver(), receiver()
    make_endpoint(wh, a.url, events="order.*")
    make_endpoint(wh, b.url, events="stock.low order.delivered")
    emit(wh, "order.paid", {"order_no": "K1"})
    emit(wh, "stock.low", {"sku": "X", "name": "X", "available": 1, "threshold": 2})
    emit(wh, "payment.duplicate", {"order_no": "K1"})
    run_all(wh)
    assert [json.loads(g.body)["event"] for g in a.received] == ["order.paid"]
    assert [json.loads(g.body)["event"] for g in b.received] == ["stock.low"]
    ids = {json.loads(g.body)["id"] for g in a.received + b.received}
    assert len(ids) == 2


def test_500_then_200_is_retried_with_backoff_and_logged(wh, receiver):
    r = receiver(plan=[500])
    _eid, secret = make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "K2"})
    before = utcnow()
    run_jobs(wh)
    assert len(r.received) == 1
    (d,) = deliveries(wh)
    assert d.status == "pending" and d.auto_attempts == 1 and d.last_status_code == 500
    # the next attempt waits 30 s (up to 10 % more), as a job of its own
    (job,) = webhook_jobs(wh)
    wait = (job.run_at - before).total_seconds()
    assert 29 <= wait <= 34, wait
    assert abs((d.next_attempt_at - job.run_at).total_seconds()) < 1
    assert run_jobs(wh) == 0  # not due yet: nothing is sent early
    assert len(r.received) == 1
    make_due(wh)
    run_jobs(wh)
    assert len(r.received) == 2
    (d,) = deliveries(wh)
    assert d.status == "delivered" and d.attempt_count == 2 and d.delivered_at is not None
    first, second = attempts(wh, d.delivery_id)
    assert (first.status_code, first.ok, first.trigger) == (500, False, "auto")
    assert "receiver says no" in first.response_body and first.error == "HTTP 500"
    assert (second.status_code, second.ok) == (200, True) and second.response_body == "ok"
    # the same id and body both times, each attempt signed with its own timestamp
    one, two = r.received
    assert one.body == two.body
    assert one.headers["x-kameng-webhook-id"] == two.headers["x-kameng-webhook-id"] == d.delivery_id
    assert receiver_verifies(secret, one) and receiver_verifies(secret, two)
    assert json.loads(first.request_headers)["X-Kameng-Webhook-Timestamp"] == one.headers["x-kameng-webhook-timestamp"]
    assert webhook_jobs(wh) == []


def test_backoff_schedule_and_giving_up(wh_app, wh, receiver):
    set_plugin(wh, "webhooks", max_attempts=4)
    r = receiver(default=503)
    make_endpoint(wh, r.url)
    emit(wh, "order.failed", {"order_no": "K3"})
    waits = []
    for _ in range(4):
        start = utcnow()
        make_due(wh)
        run_jobs(wh)
        queued = webhook_jobs(wh)
        if queued:
            waits.append((queued[0].run_at - start).total_seconds())
    assert len(r.received) == 4
    for got, want in zip(waits, (30, 120, 600)):
        assert want - 1 <= got <= want * 1.1 + 1, waits
    assert len(waits) == 3  # after the 4th attempt nothing more is queued
    (d,) = deliveries(wh)
    assert d.status == "failed" and d.auto_attempts == 4 and d.next_attempt_at is None
    assert [a.status_code for a in attempts(wh, d.delivery_id)] == [503] * 4
    assert service.RETRY_DELAYS[:6] == (30, 120, 600, 3600, 21600, 43200)


def test_timeout_and_redirect_are_failed_attempts(wh, receiver):
    set_plugin(wh, "webhooks", timeout_seconds=1)
    r = receiver(plan=["timeout", "redirect"], sleep=2.5)
    make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "K4"})
    run_jobs(wh)
    make_due(wh)
    run_jobs(wh)
    make_due(wh)
    run_jobs(wh)
    (d,) = deliveries(wh)
    first, second, third = attempts(wh, d.delivery_id)
    assert first.status_code is None and "did not answer in time" in first.error
    assert second.status_code == 302 and "redirects are not followed" in second.error
    assert third.ok and d.status == "delivered"
    # the redirect was not followed: nothing reached its target, only our receiver was called
    assert len(r.received) == 3


def test_an_unreachable_endpoint_is_a_failed_attempt(wh, receiver):
    r = receiver()
    url = r.url
    r.stop()  # nobody listens there any more
    make_endpoint(wh, url)
    emit(wh, "order.paid", {"order_no": "K5"})
    run_jobs(wh)
    (d,) = deliveries(wh)
    (a,) = attempts(wh, d.delivery_id)
    assert a.status_code is None and "cannot connect" in a.error and d.status == "pending"


def test_account_events_are_never_sent(wh, receiver):
    r = receiver()
    make_endpoint(wh, r.url, events="*")
    emit(wh, "account.password_reset", {"to": "a@example.com", "url": "https://shop/reset/SECRET", "user_id": 1,
                                        "expires_minutes": 30})
    emit(wh, "account.registered", {"user_id": 1, "email": "a@example.com"})
    run_all(wh)
    assert r.received == [] and deliveries(wh) == []
    # the core's call too, straight into the hook
    with app_request(wh) as req:
        assert service.queue_event(req, "account.password_reset", {"to": "x"}) == []
    # and a subscription cannot name them
    for bad in ("account.*", "account.password_reset"):
        try:
            service.parse_events([bad])
        except Exception as exc:
            assert getattr(exc, "status", None) == 422
        else:
            raise AssertionError(bad)
    emit(wh, "order.paid", {"order_no": "K6"})  # "*" gets everything else
    run_all(wh)
    assert len(r.received) == 1


def test_a_disabled_endpoint_gets_nothing_and_its_retries_stop(wh, receiver):
    off, on = receiver(), receiver(plan=[500])
    make_endpoint(wh, off.url, active=False)
    eid, _ = make_endpoint(wh, on.url)
    emit(wh, "order.paid", {"order_no": "K7"})
    run_jobs(wh)
    assert off.received == [] and len(on.received) == 1
    with app_request(wh) as req:
        endpoint = req.db.get(service.Endpoint, eid)
        service.set_active(req, endpoint, False)
    run_all(wh)
    assert len(on.received) == 1  # the retry was not sent
    (d,) = deliveries(wh)
    assert d.status == "failed" and "disabled" in d.last_error


def test_a_disabled_plugin_sends_nothing(wh, receiver):
    r = receiver(plan=[500])
    make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "K8"})
    run_jobs(wh)
    assert len(r.received) == 1
    set_plugin(wh, "webhooks", enabled=False)
    emit(wh, "order.delivered", {"order_no": "K8"})
    run_all(wh)
    assert len(r.received) == 1  # neither the retry nor the new event
    assert [d.event for d in deliveries(wh)] == ["order.paid"]
    # the queued retry waits; enabled again, it goes out
    assert len(webhook_jobs(wh)) == 1
    set_plugin(wh, "webhooks", enabled=True)
    run_all(wh)
    assert len(r.received) == 2 and deliveries(wh)[0].status == "delivered"


def test_a_job_run_twice_records_one_attempt(wh, receiver):
    """A worker that died holding the job: the next run may send again
    (same id: the receiver dedupes) but the log and the schedule move once."""
    r = receiver()
    eid, secret = make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "K9"})
    run_jobs(wh)
    (d,) = deliveries(wh)
    with app_request(wh) as req:
        service.send(req, {"delivery": d.delivery_id, "ref": "auto:1"})  # seen as stale: not even sent
    assert len(r.received) == 1
    # a second run that got past the check before the first one recorded
    for ref in ("auto:1", "resend:0011223344556677", "resend:0011223344556677"):
        plan = service.Plan(d.id, d.delivery_id, eid, d.event, r.url, d.body.encode(), secret, ref)
        with app_request(wh) as req:
            service._record(req, plan, service._post(plan, 5))
    assert len(r.received) == 4
    assert [a.ref for a in attempts(wh, d.delivery_id)] == ["auto:1", "resend:0011223344556677"]
    (d,) = deliveries(wh)
    assert d.attempt_count == 2 and d.auto_attempts == 1


def test_jobs_of_a_deleted_endpoint_do_nothing(wh, receiver):
    r = receiver(plan=[500])
    eid, _ = make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "K10"})
    run_jobs(wh)
    with app_request(wh) as req:
        service.delete_endpoint(req, req.db.get(service.Endpoint, eid))
    run_all(wh)
    assert len(r.received) == 1 and deliveries(wh) == []
    with app_request(wh) as req:
        assert req.db.scalar(select(jobs.Job.id).where(jobs.Job.kind == "webhooks.send",
                                                       jobs.Job.status == jobs.DEAD)) is None


def test_cleanup_drops_old_finished_deliveries_only(wh, receiver):
    r = receiver(plan=[200, 500])
    make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "K11"})
    emit(wh, "order.delivered", {"order_no": "K11"})
    run_jobs(wh)
    old = utcnow() - dt.timedelta(days=31)
    with app_request(wh) as req:
        for d in req.db.scalars(select(Delivery)):
            d.created_at = old
    with app_request(wh) as req:
        service.cleanup(req, {})
    left = deliveries(wh)
    assert [d.status for d in left] == ["pending"]  # the one still retrying stays
    assert len(attempts(wh, left[0].delivery_id)) == 1
