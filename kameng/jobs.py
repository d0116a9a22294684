"""Background jobs: a table in the shop's database and workers that claim from it.

Work that must happen after a commit (delivery, supplier calls, emails) is
*enqueued* in the same transaction that decided it, so a crash loses nothing.
A worker claims one job at a time (``FOR UPDATE SKIP LOCKED`` on PostgreSQL
and MariaDB, a short ``BEGIN IMMEDIATE`` transaction on SQLite), runs its
handler in a transaction that also marks the job done, and on failure puts it
back with exponential back-off until ``max_attempts``, then into the
dead-letter state an admin sees and can retry. A worker that dies holding a
job loses its lease and the job is run again, so handlers must be idempotent.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import socket
import threading
import time

from pyramid.request import Request
from pyramid.scripting import prepare
from sqlalchemy import Index, Integer, String, Text, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from kameng.db import Base, UTCDateTime, utcnow
from kameng.types import JobHandler

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, DEAD = "queued", "running", "done", "dead"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_at", "status", "run_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    dedupe_key: Mapped[str | None] = mapped_column(String(191), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LeaseLost(Exception):
    """Another worker took the job over (our lease ran out): roll back."""


def enqueue(db, kind: str, payload: dict | None = None, delay: float = 0,
            dedupe_key: str | None = None, max_attempts: int | None = None, new_key: bool = False) -> Job | None:
    """Add a job in the caller's transaction. With ``dedupe_key``, a second
    job with the same key is not added (``None`` is returned). ``new_key``
    says the key cannot exist yet (it names something made in this
    transaction): the job is added without the savepoint that guards a clash."""
    job = Job(kind=kind, payload=json.dumps(payload or {}, ensure_ascii=False), status=QUEUED,
              run_at=utcnow() + dt.timedelta(seconds=delay), dedupe_key=dedupe_key, attempts=0,
              max_attempts=max_attempts or 8)
    if dedupe_key is None or new_key:
        db.add(job)
        db.flush()
        return job
    try:
        with db.begin_nested():
            db.add(job)
            db.flush()
    except IntegrityError:
        return None
    return job


def backoff_seconds(attempts: int, base: float) -> float:
    return min(base * 2 ** max(attempts - 1, 0), 3600.0) * random.uniform(0.8, 1.2)


def retry_dead(db, job_id: int) -> bool:
    res = db.execute(update(Job).where(Job.id == job_id, Job.status == DEAD)
                     .values(status=QUEUED, attempts=0, run_at=utcnow(), last_error="", lease_until=None))
    return res.rowcount == 1


class ClaimedJob:
    def __init__(self, id, kind, payload, attempts, max_attempts):
        self.id, self.kind, self.attempts, self.max_attempts = id, kind, attempts, max_attempts
        self.payload = json.loads(payload or "{}")


class Worker:
    """Claims and runs jobs. ``run_forever`` until ``stop`` is set."""

    def __init__(self, registry, worker_id: str | None = None, poll_interval: float | None = None):
        settings = registry.settings
        self.registry = registry
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.poll_interval = poll_interval or float(settings.get("kameng.jobs.poll_interval", 1.0))
        self.lease_seconds = int(settings.get("kameng.jobs.lease_seconds", 300))
        self.retry_base = float(settings.get("kameng.jobs.retry_base_seconds", 15))
        self.handlers: dict[str, tuple[str | None, JobHandler]] = registry["kameng.job_handlers"]
        self.scheduled = registry["kameng.scheduled_jobs"]
        self._last_slots: dict[str, int] = {}
        self.stop = threading.Event()

    # -- claim ------------------------------------------------------------------------
    def _active_owners(self, conn) -> set:
        """Plugins whose jobs may run now: enabled and not broken."""
        from kameng.pluginhost import PluginState

        host = self.registry["kameng.plugins"]
        enabled = set(conn.execute(select(PluginState.id).where(PluginState.enabled.is_(True))).scalars())
        return {pid for pid in enabled if pid in host.plugins and not host.plugins[pid].errors}

    def _runnable_kinds(self, conn) -> list[str]:
        active = self._active_owners(conn)
        return [k for k, (owner, _h) in self.handlers.items() if owner is None or owner in active]

    def claim(self) -> ClaimedJob | None:
        """Take the next due job (or one whose lease ran out) in one short
        write transaction: ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING``
        on SQLite (serialised by BEGIN IMMEDIATE) and PostgreSQL (``FOR UPDATE
        SKIP LOCKED`` in the subquery); MariaDB cannot update the table it
        selects from, so there it is a locking SELECT, then the UPDATE."""
        engine = self.registry["kameng.write_engine"]
        dialect = engine.dialect.name
        now = utcnow()
        with engine.begin() as conn:
            kinds = self._runnable_kinds(conn)
            if not kinds:
                return None
            pick = (select(Job.id).where(Job.kind.in_(kinds))
                    .where(or_(and_(Job.status == QUEUED, Job.run_at <= now),
                               and_(Job.status == RUNNING, Job.lease_until < now)))
                    .order_by(Job.run_at, Job.id).limit(1))
            if dialect != "sqlite":
                pick = pick.with_for_update(skip_locked=True)
            take = dict(status=RUNNING, locked_by=self.worker_id, attempts=Job.attempts + 1,
                        lease_until=now + dt.timedelta(seconds=self.lease_seconds))
            cols = (Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts)
            if dialect in ("sqlite", "postgresql"):
                row = conn.execute(update(Job).where(Job.id == pick.scalar_subquery()).values(**take)
                                   .returning(*cols)).first()
            else:
                job_id = conn.execute(pick).scalar()
                if job_id is None:
                    return None
                conn.execute(update(Job).where(Job.id == job_id).values(**take))
                row = conn.execute(select(*cols).where(Job.id == job_id)).first()
            return ClaimedJob(*row) if row is not None else None

    # -- run --------------------------------------------------------------------------
    def make_request(self):
        base = self.registry.settings.get("kameng.base_url") or "http://127.0.0.1:6543"
        request = Request.blank("/", base_url=base.rstrip("/"), environ={"kameng.write": True})
        return prepare(request=request, registry=self.registry)

    def run_one(self) -> bool:
        """Claim and run one job; False when there was none to run."""
        job = self.claim()
        if job is None:
            return False
        if job.attempts > job.max_attempts:  # died too often while holding its lease
            self._fail(job, "gave up: the worker running it stopped too many times", dead=True)
            return True
        _owner, handler = self.handlers[job.kind]
        env = self.make_request()
        request = env["request"]
        try:
            with request.tm:
                handler.func(request, job.payload)
                res = request.db.execute(
                    update(Job).where(Job.id == job.id, Job.locked_by == self.worker_id, Job.status == RUNNING)
                    .values(status=DONE, finished_at=utcnow(), lease_until=None, last_error="")
                    .execution_options(synchronize_session=False))
                if res.rowcount != 1:
                    raise LeaseLost(job.id)
            log.info("job_done", extra={"job_id": job.id, "kind": job.kind, "attempt": job.attempts})
        except LeaseLost:
            log.warning("job_lease_lost", extra={"job_id": job.id, "kind": job.kind})
        except Exception as exc:  # any handler error: retry later or dead-letter
            log.warning("job_failed", extra={"job_id": job.id, "kind": job.kind, "attempt": job.attempts,
                                             "error": type(exc).__name__})
            self._fail(job, f"{type(exc).__name__}: {exc}"[:2000], dead=job.attempts >= handler.max_attempts)
        finally:
            env["closer"]()
        return True

    def _fail(self, job: ClaimedJob, error: str, dead: bool) -> None:
        engine = self.registry["kameng.write_engine"]
        values = {"last_error": error, "lease_until": None, "locked_by": None}
        if dead:
            values.update(status=DEAD, finished_at=utcnow())
        else:
            values.update(status=QUEUED, run_at=utcnow() + dt.timedelta(
                seconds=backoff_seconds(job.attempts, self.retry_base)))
        with engine.begin() as conn:
            conn.execute(update(Job).where(Job.id == job.id, Job.locked_by == self.worker_id).values(**values))
        if dead:
            log.error("job_dead", extra={"job_id": job.id, "kind": job.kind, "attempts": job.attempts})

    # -- schedule ---------------------------------------------------------------------
    def schedule_due(self) -> None:
        now = time.time()
        due = []
        for owner, sj in self.scheduled:
            slot = int(now // sj.every_seconds)
            if self._last_slots.get(sj.name) != slot:
                due.append((owner, sj, slot))
        if not due:
            return
        engine = self.registry["kameng.write_engine"]
        with Session(engine) as s, s.begin():
            active = self._active_owners(s.connection())
            for owner, sj, slot in due:
                # a disabled plugin's schedule does not pile up jobs while it is off
                if owner is None or owner in active:
                    enqueue(s, sj.kind, sj.payload, dedupe_key=f"schedule:{sj.name}:{slot}")
        for _owner, sj, slot in due:
            self._last_slots[sj.name] = slot

    def run_forever(self) -> None:
        log.info("worker_started", extra={"worker": self.worker_id})
        while not self.stop.is_set():
            try:
                self.schedule_due()
                ran = self.run_one()
            except Exception:  # database down: wait and try again, never die
                log.exception("worker_error")
                ran = False
            if not ran:
                self.stop.wait(self.poll_interval)
        log.info("worker_stopped", extra={"worker": self.worker_id})


def cleanup_finished(request, payload) -> None:
    """Delete finished jobs older than ``keep_days`` (default 7)."""
    cutoff = utcnow() - dt.timedelta(days=int(payload.get("keep_days", 7)))
    request.db.execute(delete(Job).where(Job.status == DONE, Job.finished_at < cutoff))


def build_registries(config, host) -> None:
    """Collect job handlers and schedules from the core and every installed plugin."""
    from kameng.pluginhost import CORE_NAMES

    handlers: dict[str, tuple[str | None, JobHandler]] = {}
    for pid, handler in host.collect_by_plugin("kameng_job_handlers"):
        if handler.kind in handlers:
            raise RuntimeError(f"two handlers for job kind {handler.kind!r}")
        handlers[handler.kind] = (None if pid in CORE_NAMES else pid, handler)
    config.registry["kameng.job_handlers"] = handlers
    config.registry["kameng.scheduled_jobs"] = [(None if pid in CORE_NAMES else pid, sj)
                                                for pid, sj in host.collect_by_plugin("kameng_scheduled_jobs")]
