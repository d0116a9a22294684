"""Where the counters and the captcha challenges live.

- **Redis** when ``redis_url`` is set: fixed windows counted with ``INCR``
  and ``EXPIRE`` in one ``MULTI`` pipeline; a challenge is a key with a
  5-minute TTL taken with ``GETDEL`` (one use). Every process that talks to
  the same Redis (and key prefix) shares them.
- Otherwise **the database**: the counters are the core's
  (:mod:`kameng.ratelimit`: the ``rate_counters`` table, an atomic
  update-or-insert in a transaction of its own, so a refused request that is
  rolled back still counts); challenges are rows of ``antifraud_captchas``
  written and taken in transactions of their own.
- On **SQLite** the request holds the database's only write lock while the
  checks run, so a second connection could not write. There, as the core's
  own limits do, both live in the process's memory: a SQLite shop runs one
  app process (docs/install.md, "More than one process").

When Redis cannot be reached, the checks fall back to the database (or
memory) for 30 seconds and log ``antifraud_redis_unavailable``; limits then
hold per backend, and an order is never refused because Redis is down.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time

from sqlalchemy import delete, insert, select

from kameng import ratelimit
from kameng.db import is_sqlite, utcnow

from kameng_antifraud.models import CaptchaChallenge

log = logging.getLogger(__name__)

#: seconds the checks leave Redis alone after it failed
DOWN_SECONDS = 30
#: seconds a Redis command may take before it counts as a failure
REDIS_TIMEOUT = 1.0

_lock = threading.Lock()
_clients: dict[tuple, object] = {}
_down_until: dict[tuple, float] = {}


def _redis_errors():
    import redis

    return (redis.exceptions.RedisError, OSError)


def redis_client(cfg):
    """The shared client for the configured Redis, or None (none set, or down a moment ago)."""
    if not cfg.redis_url:
        return None
    key = (cfg.redis_url, cfg.redis_password)
    if _down_until.get(key, 0) > time.monotonic():
        return None
    with _lock:
        client = _clients.get(key)
        if client is None:
            import redis

            client = redis.Redis.from_url(cfg.redis_url, password=cfg.redis_password or None,
                                          socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT,
                                          decode_responses=True)
            _clients[key] = client
    return client


def _mark_down(cfg, exc) -> None:
    _down_until[(cfg.redis_url, cfg.redis_password)] = time.monotonic() + DOWN_SECONDS
    # the URL may hold a password: never logged
    log.warning("antifraud_redis_unavailable", extra={"error": type(exc).__name__, "retry_in": DOWN_SECONDS})


def reset() -> None:
    """Forget clients, outages and in-memory challenges (tests)."""
    with _lock:
        for client in _clients.values():
            with contextlib.suppress(Exception):  # closing a broken client is best effort
                client.close()
        _clients.clear()
        _down_until.clear()
        _memory.clear()


def _engine(request):
    return request.registry["kameng.write_engine"]


# -- counters --------------------------------------------------------------------------------------------


class DbCounters:
    """The core's counters (:mod:`kameng.ratelimit`): the database on
    PostgreSQL and MariaDB, the process's memory on SQLite."""

    def __init__(self, engine):
        self.engine = engine
        self.name = "memory" if is_sqlite(engine) else "database"

    def hit(self, bucket: str, limit: int, window: int) -> int:
        """Count one on ``bucket``: 0 while within ``limit`` in the current
        window of ``window`` seconds, else the seconds until it ends."""
        if limit <= 0:
            return 0
        if ratelimit.hit(self.engine, "af:" + bucket, limit, window):
            return 0
        return ratelimit.retry_after(window)


class RedisCounters:
    name = "redis"

    def __init__(self, client, prefix: str):
        self.client, self.prefix = client, prefix

    def hit(self, bucket: str, limit: int, window: int, now: float | None = None) -> int:
        if limit <= 0:
            return 0
        now = time.time() if now is None else now
        start = int(now // window * window)
        key = f"{self.prefix}c:{bucket}:{window}:{start}"
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, window + 60)
        count, _ok = pipe.execute()
        if count <= limit:
            return 0
        return max(1, int(start + window - now + 0.999))


class _WithFallback:
    """Redis first; the local backend while Redis is unreachable."""

    def __init__(self, cfg, primary, local):
        self.cfg, self.primary, self.local = cfg, primary, local
        self.name = primary.name

    def __getattr__(self, method):
        def call(*args, **kwargs):
            try:
                return getattr(self.primary, method)(*args, **kwargs)
            except _redis_errors() as exc:
                _mark_down(self.cfg, exc)
                self.name = self.local.name
                return getattr(self.local, method)(*args, **kwargs)

        return call


def counters(request, cfg):
    local = DbCounters(_engine(request))
    client = redis_client(cfg)
    if client is None:
        return local
    return _WithFallback(cfg, RedisCounters(client, cfg.redis_prefix), local)


# -- captcha challenges --------------------------------------------------------------------------------


class MemoryStore:
    """Challenges of a SQLite shop (one app process), at most ``cap`` at once."""

    name = "memory"

    def __init__(self, cap: int = 20_000):
        self.cap = cap
        self.lock = threading.Lock()
        self.items: dict[str, tuple[str, float]] = {}

    def put(self, cid: str, answer: str, ttl: int) -> None:
        now = time.time()
        with self.lock:
            if len(self.items) >= self.cap:
                self.items = {k: v for k, v in self.items.items() if v[1] > now}
                while len(self.items) >= self.cap:  # still full: the oldest go first
                    self.items.pop(next(iter(self.items)))
            self.items[cid] = (answer, now + ttl)

    def peek(self, cid: str) -> str | None:
        with self.lock:
            item = self.items.get(cid)
        return item[0] if item and item[1] > time.time() else None

    def take(self, cid: str) -> str | None:
        with self.lock:
            item = self.items.pop(cid, None)
        return item[0] if item and item[1] > time.time() else None

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


class DbStore:
    """Challenges as rows of ``antifraud_captchas``, each write in a
    transaction of its own (PostgreSQL and MariaDB)."""

    name = "database"

    def __init__(self, engine):
        self.engine = engine
        self.table = CaptchaChallenge.__table__

    def put(self, cid: str, answer: str, ttl: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(self.table).values(id=cid, answer=answer,
                                                   expires_at=utcnow() + dt.timedelta(seconds=ttl)))

    def peek(self, cid: str) -> str | None:
        t = self.table
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.answer).where(t.c.id == cid, t.c.expires_at > utcnow())).scalar()

    def take(self, cid: str) -> str | None:
        """The answer, once: of two requests taking one challenge, only the
        one whose delete removed the row gets it."""
        t = self.table
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.answer, t.c.expires_at).where(t.c.id == cid)).first()
            if row is None:
                return None
            if conn.execute(delete(t).where(t.c.id == cid)).rowcount != 1:
                return None
        return row.answer if row.expires_at > utcnow() else None


class RedisStore:
    name = "redis"

    def __init__(self, client, prefix: str):
        self.client, self.prefix = client, prefix

    def put(self, cid: str, answer: str, ttl: int) -> None:
        self.client.set(f"{self.prefix}captcha:{cid}", answer, ex=ttl)

    def peek(self, cid: str) -> str | None:
        return self.client.get(f"{self.prefix}captcha:{cid}")

    def take(self, cid: str) -> str | None:
        return self.client.getdel(f"{self.prefix}captcha:{cid}")


class _Memory(dict):
    def clear(self) -> None:
        for store in self.values():
            store.clear()


_memory = _Memory()


def local_store(engine):
    if is_sqlite(engine):
        with _lock:
            return _memory.setdefault(id(engine), MemoryStore())
    return DbStore(engine)


def captcha_store(request, cfg):
    local = local_store(_engine(request))
    client = redis_client(cfg)
    if client is None:
        return local
    return _WithFallback(cfg, RedisStore(client, cfg.redis_prefix), local)


def prune_captchas(db) -> int:
    """Drop expired challenge rows (the scheduled job)."""
    return db.execute(delete(CaptchaChallenge).where(CaptchaChallenge.expires_at < utcnow())).rowcount


def describe(request, cfg) -> dict:
    """Where the counters are now, for the admin: ``backend`` (redis,
    database or memory), ``where`` (the Redis address without credentials)
    and ``down`` (Redis failed a moment ago)."""
    local = "memory" if is_sqlite(_engine(request)) else "database"
    if not cfg.redis_url:
        return {"backend": local, "where": "", "down": False, "local": local}
    from urllib.parse import urlsplit

    parts = urlsplit(cfg.redis_url)
    if parts.scheme == "unix":
        where = f"unix://{parts.path}"
    else:
        port = f":{parts.port}" if parts.port else ""
        where = f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
    down = _down_until.get((cfg.redis_url, cfg.redis_password), 0) > time.monotonic()
    return {"backend": "redis", "where": where, "down": down, "local": local}
