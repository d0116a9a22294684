"""The job queue: retries with back-off, dead letters, leases, schedules, and
several workers (threads and processes) never running the same job."""
import datetime as dt
import json
import multiprocessing
import threading

from sqlalchemy import func, select, update

from kameng import jobs
from kameng.audit import AuditEntry
from kameng.db import utcnow
from kameng.testing import app_request
from kameng.types import JobHandler, ScheduledJob

FAILS = {}


def flaky(request, payload):
    key = payload["key"]
    FAILS[key] = FAILS.get(key, 0) + 1
    if FAILS[key] <= payload["fail_times"]:
        raise RuntimeError("upstream timed out")
    request.db.add(AuditEntry(actor="job", action="flaky.done", target=key))


def record(request, payload):
    request.db.add(AuditEntry(actor="job", action="ran", target=str(payload["n"])))


def _worker(registry, **kw):
    w = jobs.Worker(registry, **kw)
    w.handlers = dict(w.handlers)
    w.handlers["test.flaky"] = (None, JobHandler("test.flaky", flaky, max_attempts=3))
    w.handlers["test.record"] = (None, JobHandler("test.record", record))
    return w


def _make_due(registry):
    """Skip the back-off wait: make every queued job due now."""
    with app_request(registry) as req:
        req.db.execute(update(jobs.Job).where(jobs.Job.status == jobs.QUEUED).values(run_at=utcnow()))


def _job(registry, job_id):
    with app_request(registry) as req:
        return req.db.get(jobs.Job, job_id)


def test_job_runs_once_and_is_marked_done(registry):
    with app_request(registry) as req:
        job_id = jobs.enqueue(req.db, "test.record", {"n": 1}).id
    w = _worker(registry)
    assert w.run_one() is True
    assert w.run_one() is False
    job = _job(registry, job_id)
    assert job.status == jobs.DONE and job.attempts == 1 and job.finished_at is not None


def test_failing_job_retries_with_backoff_then_succeeds(registry):
    with app_request(registry) as req:
        job_id = jobs.enqueue(req.db, "test.flaky", {"key": "a", "fail_times": 2}).id
    w = _worker(registry)
    w.retry_base = 60  # a real back-off: the retry is not due at once
    w.run_one()
    job = _job(registry, job_id)
    assert job.status == jobs.QUEUED and job.attempts == 1
    assert "RuntimeError: upstream timed out" in job.last_error
    assert job.run_at > utcnow() + dt.timedelta(seconds=40)
    assert w.run_one() is False  # not due yet
    _make_due(registry)
    w.run_one()
    job2 = _job(registry, job_id)
    assert job2.attempts == 2 and job2.run_at - utcnow() > dt.timedelta(seconds=80)  # doubled
    _make_due(registry)
    w.run_one()
    assert _job(registry, job_id).status == jobs.DONE
    with app_request(registry) as req:
        assert req.db.scalar(select(func.count()).where(AuditEntry.action == "flaky.done")) == 1


def test_job_goes_dead_after_max_attempts_and_admin_can_retry(registry, admin_app):
    with app_request(registry) as req:
        job_id = jobs.enqueue(req.db, "test.flaky", {"key": "b", "fail_times": 99}).id
    w = _worker(registry)
    for _ in range(3):
        _make_due(registry)
        w.run_one()
    job = _job(registry, job_id)
    assert job.status == jobs.DEAD and job.attempts == 3
    page = admin_app.get("/admin/jobs?status=dead")
    assert "test.flaky" in page.text and "upstream timed out" in page.text
    retry = [f for f in page.forms.values() if f.action.endswith(f"/admin/jobs/{job_id}/retry")][0]
    retry.submit().follow()
    job = _job(registry, job_id)
    assert job.status == jobs.QUEUED and job.attempts == 0
    assert "1" in admin_app.get("/admin").text


def test_failed_handler_writes_nothing(registry):
    def half(request, payload):
        request.db.add(AuditEntry(actor="job", action="half", target="x"))
        request.db.flush()
        raise ValueError("boom")

    with app_request(registry) as req:
        jobs.enqueue(req.db, "test.half", {})
    w = _worker(registry)
    w.handlers["test.half"] = (None, JobHandler("test.half", half, max_attempts=1))
    w.run_one()
    with app_request(registry) as req:
        assert req.db.scalar(select(func.count()).where(AuditEntry.action == "half")) == 0
        assert req.db.scalar(select(jobs.Job.status)) == jobs.DEAD


def test_dedupe_key(registry):
    with app_request(registry) as req:
        assert jobs.enqueue(req.db, "test.record", {"n": 1}, dedupe_key="once") is not None
        assert jobs.enqueue(req.db, "test.record", {"n": 2}, dedupe_key="once") is None
        assert req.db.scalar(select(func.count()).select_from(jobs.Job)) == 1


def test_expired_lease_is_taken_over(registry):
    """A worker that dies holding a job: another runs it after the lease."""
    with app_request(registry) as req:
        job_id = jobs.enqueue(req.db, "test.record", {"n": 7}).id
    dead = _worker(registry, worker_id="dead-worker")
    claimed = dead.claim()
    assert claimed.id == job_id
    alive = _worker(registry, worker_id="alive")
    assert alive.run_one() is False  # leased
    with app_request(registry) as req:
        req.db.execute(update(jobs.Job).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    assert alive.run_one() is True
    job = _job(registry, job_id)
    assert job.status == jobs.DONE and job.attempts == 2
    # the dead worker coming back cannot mark it again
    assert dead.claim() is None


def test_disabled_plugins_jobs_wait(plug_app):
    from kameng.testing import set_plugin

    registry = plug_app.registry
    with app_request(registry) as req:
        jobs.enqueue(req.db, "testplug.record", {"note": "hi"})
    w = jobs.Worker(registry)
    assert w.run_one() is False
    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    assert w.run_one() is True


def test_scheduled_jobs_are_enqueued_once_per_period_across_workers(registry):
    a, b = _worker(registry), _worker(registry)
    for w in (a, b):
        w.scheduled = [(None, ScheduledJob("tick", "test.record", every_seconds=3600, payload={"n": 0}))]
        w.schedule_due()
        w.schedule_due()
    with app_request(registry) as req:
        kinds = req.db.scalars(select(jobs.Job.kind)).all()
    assert kinds.count("test.record") == 1


def _run_workers_until_empty(workers):
    def loop(w):
        idle = 0
        while idle < 3:
            if w.run_one():
                idle = 0
            else:
                idle += 1

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def _assert_each_ran_once(registry, n):
    with app_request(registry) as req:
        targets = req.db.scalars(select(AuditEntry.target).where(AuditEntry.action == "ran")).all()
        statuses = req.db.scalars(select(jobs.Job.status)).all()
    assert sorted(targets, key=int) == [str(i) for i in range(n)]
    assert set(statuses) == {jobs.DONE}


def test_four_worker_threads_never_run_a_job_twice(registry):
    n = 120
    with app_request(registry) as req:
        for i in range(n):
            jobs.enqueue(req.db, "test.record", {"n": i})
    _run_workers_until_empty([_worker(registry, worker_id=f"t{i}") for i in range(4)])
    _assert_each_ran_once(registry, n)


def _process_worker(settings, worker_id, done):
    from kameng.config import configure

    registry = configure(settings).registry
    w = _worker(registry, worker_id=worker_id)
    idle = 0
    while idle < 5:
        if w.run_one():
            idle = 0
        else:
            idle += 1
    registry["kameng.engine"].dispose()
    done.put(worker_id)


def test_two_worker_processes_never_run_a_job_twice(registry, base_settings):
    n = 80
    with app_request(registry) as req:
        for i in range(n):
            jobs.enqueue(req.db, "test.record", {"n": i})
    ctx = multiprocessing.get_context("spawn")
    done = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(dict(base_settings), f"p{i}", done)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    _assert_each_ran_once(registry, n)


def test_job_payload_round_trips_unicode(registry):
    with app_request(registry) as req:
        job = jobs.enqueue(req.db, "test.record", {"n": 1, "note": "卡密"})
        assert json.loads(job.payload)["note"] == "卡密"


def test_a_disabled_plugins_schedule_does_not_pile_up(plug_app):
    from kameng.testing import set_plugin

    registry = plug_app.registry
    w = jobs.Worker(registry)
    w.scheduled = [("testplug", ScheduledJob("tp", "testplug.record", every_seconds=1, payload={}))]
    w.schedule_due()
    with app_request(registry) as req:
        assert req.db.scalar(select(func.count()).select_from(jobs.Job)) == 0
    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    w._last_slots.clear()
    w.schedule_due()
    with app_request(registry) as req:
        assert req.db.scalar(select(func.count()).select_from(jobs.Job)) == 1
