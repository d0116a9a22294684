"""Fixed-window rate limits.

On PostgreSQL and MariaDB the counters live in the database, so a limit holds
across every app process; each hit is its own short transaction on a
connection of its own, so a request that fails afterwards (a wrong query
password) still counts. SQLite shops run one app process, and a second
writer would wait for the request's own write lock, so there the counters
live in that process's memory.
"""
from __future__ import annotations

import datetime as dt
import threading
import time

from sqlalchemy import Integer, String, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base


class RateCounter(Base):
    __tablename__ = "rate_counters"

    bucket: Mapped[str] = mapped_column(String(160), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)  # unix seconds
    hits: Mapped[int] = mapped_column(Integer, default=0)


class MemoryCounters:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, int], int] = {}

    def hit(self, key: str, window: int) -> int:
        with self.lock:
            if len(self.counts) > 100_000:  # drop old windows
                self.counts = {k: v for k, v in self.counts.items() if k[1] >= window}
            self.counts[(key, window)] = n = self.counts.get((key, window), 0) + 1
            return n


_memory = MemoryCounters()


def hit(engine, key: str, limit: int, window_seconds: int = 60, now: float | None = None) -> bool:
    """Count one hit on ``key``; False when it is over ``limit`` in the
    current window. ``limit <= 0`` turns the limit off."""
    if limit <= 0:
        return True
    if not 1 <= window_seconds <= 3600:
        raise ValueError("windows are one second to one hour long")
    now = now if now is not None else time.time()
    window = int(now // window_seconds * window_seconds)
    key = key[:160]
    if engine.dialect.name == "sqlite":
        return _memory.hit(f"{id(engine)}:{key}", window) <= limit
    table = RateCounter.__table__
    for _attempt in range(3):
        with engine.begin() as conn:
            res = conn.execute(update(table).where(table.c.bucket == key, table.c.window_start == window)
                               .values(hits=table.c.hits + 1))
            if res.rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(table).values(bucket=key, window_start=window, hits=1))
                except IntegrityError:
                    continue  # another process inserted it first: count again
                return True
            hits = conn.execute(select(table.c.hits).where(table.c.bucket == key,
                                                           table.c.window_start == window)).scalar()
            return hits <= limit
    return False


def prune(db, older_than: dt.timedelta = dt.timedelta(hours=2)) -> int:
    cutoff = int(time.time() - older_than.total_seconds())
    return db.execute(delete(RateCounter).where(RateCounter.window_start < cutoff)).rowcount
