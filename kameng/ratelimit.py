"""Fixed-window rate limits and lockouts.

On PostgreSQL and MariaDB the counters live in the database, so a limit holds
across every app process; each hit is its own short transaction on a
connection of its own, so a request that fails afterwards (a wrong query
password) still counts. SQLite shops run one app process, and a second
writer would wait for the request's own write lock, so there the counters
live in that process's memory.

Two kinds of limits:

- :func:`hit` counts requests in a fixed window (``logins_per_ip_per_minute``):
  over the limit, refuse until the window ends.
- :func:`fail` counts failures on one thing (an account, an order's query
  password): ``max_failures`` of them within about ``lockout_seconds`` lock it
  for ``lockout_seconds`` (:func:`locked_for`), even for the right answer.
  Failures are counted in windows of ``lockout_seconds`` and the current and
  the previous window add up, so failures spread over a window's border
  count too. A lock starts the count afresh.

Rows of :class:`RateCounter`: a request counter is ``(bucket, window start)``;
a failure counter ``("f:" + key, window end)``; a lock ``("l:" + key, unix
time it lifts)``. :func:`prune` drops rows two hours after that time.

Keys are client data (an address, an email): long keys are hashed, so two
never share a bucket because they share a prefix. Use :func:`refuse` for the
429 answer: it carries ``Retry-After``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time

from sqlalchemy import Integer, String, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base

BUCKET_LENGTH = 160


class RateCounter(Base):
    __tablename__ = "rate_counters"

    bucket: Mapped[str] = mapped_column(String(160), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)  # unix seconds
    hits: Mapped[int] = mapped_column(Integer, default=0)


class MemoryCounters:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, int], int] = {}
        self.locks: dict[str, int] = {}  # key → unix time its lock lifts

    def add(self, key: str, window: int, now: float) -> int:
        with self.lock:
            if len(self.counts) > 100_000:  # drop windows over an hour old
                self.counts = {k: v for k, v in self.counts.items() if k[1] >= now - 3600}
            self.counts[(key, window)] = n = self.counts.get((key, window), 0) + 1
            return n

    def get(self, key: str, window: int) -> int:
        with self.lock:
            return self.counts.get((key, window), 0)

    def lock_until(self, key: str, until: int, now: float) -> None:
        with self.lock:
            if len(self.locks) > 100_000:
                self.locks = {k: v for k, v in self.locks.items() if v > now}
            self.locks[key] = max(until, self.locks.get(key, 0))

    def forget(self, key: str) -> None:
        with self.lock:
            for k in [k for k in self.counts if k[0] == key]:
                del self.counts[k]

    def until(self, key: str) -> int:
        with self.lock:
            return self.locks.get(key, 0)

    def reset(self) -> None:
        with self.lock:
            self.counts, self.locks = {}, {}


_memory = MemoryCounters()


def reset_memory() -> None:
    """Forget every in-memory counter and lock (tests; SQLite shops only keep them there)."""
    _memory.reset()


def _bucket(key: str) -> str:
    if len(key) <= BUCKET_LENGTH:
        return key
    return key[:BUCKET_LENGTH - 65] + "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _in_memory(engine) -> bool:
    return engine.dialect.name == "sqlite"


def _mkey(engine, bucket: str) -> str:
    return f"{id(engine)}:{bucket}"


def _now(now: float | None) -> float:
    return now if now is not None else time.time()


def _window(now: float, seconds: int) -> int:
    return int(now // seconds * seconds)


def _add(engine, bucket: str, window: int, now: float) -> int:
    """Count one on ``(bucket, window)``: the count after it."""
    bucket = _bucket(bucket)
    if _in_memory(engine):
        return _memory.add(_mkey(engine, bucket), window, now)
    table = RateCounter.__table__
    for _attempt in range(3):
        with engine.begin() as conn:
            res = conn.execute(update(table).where(table.c.bucket == bucket, table.c.window_start == window)
                               .values(hits=table.c.hits + 1))
            if res.rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(table).values(bucket=bucket, window_start=window, hits=1))
                except IntegrityError:
                    continue  # another process inserted it first: count again
                return 1
            return conn.execute(select(table.c.hits).where(table.c.bucket == bucket,
                                                           table.c.window_start == window)).scalar() or 0
    return 1 << 30  # could not count: treat as over every limit


def _get(engine, bucket: str, window: int) -> int:
    bucket = _bucket(bucket)
    if _in_memory(engine):
        return _memory.get(_mkey(engine, bucket), window)
    table = RateCounter.__table__
    with engine.connect() as conn:
        return conn.execute(select(table.c.hits).where(table.c.bucket == bucket,
                                                       table.c.window_start == window)).scalar() or 0


def _check_window(window_seconds: int) -> None:
    if not 1 <= window_seconds <= 3600:
        raise ValueError("windows are one second to one hour long")


# -- request limits ----------------------------------------------------------------------------------


def hit(engine, key: str, limit: int, window_seconds: int = 60, now: float | None = None) -> bool:
    """Count one hit on ``key``; False when it is over ``limit`` in the
    current window. ``limit <= 0`` turns the limit off."""
    if limit <= 0:
        return True
    _check_window(window_seconds)
    now = _now(now)
    return _add(engine, key, _window(now, window_seconds), now) <= limit


def over(engine, key: str, limit: int, window_seconds: int = 60, now: float | None = None) -> bool:
    """Whether ``key`` already has ``limit`` hits in the current window (counts nothing)."""
    if limit <= 0:
        return False
    _check_window(window_seconds)
    return _get(engine, key, _window(_now(now), window_seconds)) >= limit


def retry_after(window_seconds: int = 60, now: float | None = None) -> int:
    """Seconds until the current window ends (at least 1)."""
    now = _now(now)
    return max(1, int(_window(now, window_seconds) + window_seconds - now + 0.999))


# -- lockouts ------------------------------------------------------------------------------------------


def locked_for(engine, key: str, now: float | None = None) -> int:
    """Seconds until ``key``'s lock lifts; 0 when it is not locked."""
    now = _now(now)
    lock = _bucket("l:" + key)
    if _in_memory(engine):
        until = _memory.until(_mkey(engine, lock))
    else:
        table = RateCounter.__table__
        with engine.connect() as conn:
            until = conn.execute(select(func.max(table.c.window_start)).where(table.c.bucket == lock)).scalar() or 0
    return max(0, int(until - now + 0.999)) if until > now else 0


def locked_keys(engine, keys, now: float | None = None) -> set[str]:
    """The ones of ``keys`` that are locked now (one query)."""
    now = _now(now)
    buckets = {_bucket("l:" + k): k for k in keys}
    if not buckets:
        return set()
    if _in_memory(engine):
        return {k for b, k in buckets.items() if _memory.until(_mkey(engine, b)) > now}
    table = RateCounter.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.bucket).where(table.c.bucket.in_(list(buckets)),
                                                         table.c.window_start > int(now)).distinct())
        return {buckets[b] for (b,) in rows}


def lock(engine, key: str, seconds: int, now: float | None = None) -> int:
    """Lock ``key`` for ``seconds`` and forget its failures; the unix time it lifts."""
    now = _now(now)
    until = int(now) + max(1, int(seconds))
    lock_bucket, fail_bucket = _bucket("l:" + key), _bucket("f:" + key)
    if _in_memory(engine):
        _memory.lock_until(_mkey(engine, lock_bucket), until, now)
        _memory.forget(_mkey(engine, fail_bucket))
        return until
    table = RateCounter.__table__
    with engine.begin() as conn:
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(bucket=lock_bucket, window_start=until, hits=1))
        except IntegrityError:
            pass  # a concurrent failure locked it until the same second
        conn.execute(delete(table).where(table.c.bucket == fail_bucket))
    return until


def fail(engine, key: str, max_failures: int, lockout_seconds: int, now: float | None = None) -> int:
    """Count one failure on ``key``. The ``max_failures``-th within about
    ``lockout_seconds`` locks it for ``lockout_seconds``: then the seconds
    locked, else 0. Either of them ``<= 0`` turns this off."""
    if max_failures <= 0 or lockout_seconds <= 0:
        return 0
    now = _now(now)
    start = _window(now, lockout_seconds)
    bucket = "f:" + key
    failures = _add(engine, bucket, start + lockout_seconds, now) + _get(engine, bucket, start)
    if failures < max_failures:
        return 0
    lock(engine, key, lockout_seconds, now)
    return int(lockout_seconds)


def clear(engine, key: str) -> None:
    """Forget ``key``'s failures (a success); a lock stays."""
    bucket = _bucket("f:" + key)
    if _in_memory(engine):
        _memory.forget(_mkey(engine, bucket))
        return
    table = RateCounter.__table__
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.bucket == bucket))


# -- answering -----------------------------------------------------------------------------------------


def refuse(request, message, seconds: int):
    """The 429 ``rate_limited`` error; its answer (JSON or page) carries ``Retry-After``."""
    from kameng.errors import APIError

    set_retry_after(request, seconds)
    return APIError(429, "rate_limited", message)


def set_retry_after(request, seconds: int) -> None:
    value = str(max(1, int(seconds)))

    def _header(_request, response):
        response.headers["Retry-After"] = value

    request.add_response_callback(_header)


def setting(request, name: str, default: int = 0) -> int:
    """An integer setting; a value that is not one counts as ``default``."""
    try:
        return int(request.registry.settings.get(name, default))
    except (TypeError, ValueError):
        return default


def prune(db, older_than: dt.timedelta = dt.timedelta(hours=2)) -> int:
    cutoff = int(time.time() - older_than.total_seconds())
    return db.execute(delete(RateCounter).where(RateCounter.window_start < cutoff)).rowcount
