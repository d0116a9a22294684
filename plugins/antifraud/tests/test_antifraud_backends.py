"""The counter and challenge backends: the database (the core's counters,
``antifraud_captchas``), process memory, Redis, and the fall back to the
database while Redis is unreachable. Concurrency with real threads on the
real database."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from antifraud_helpers import answer_for, captcha_headers, error, fresh_window, new_captcha, place, setup_shop
from sqlalchemy import select, update

from kameng.db import utcnow
from kameng.ratelimit import RateCounter
from kameng.testing import app_request, free_port, run_jobs
from kameng_antifraud import backends, config
from kameng_antifraud.models import CaptchaChallenge


def _threads(n, target):
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run():
        barrier.wait()
        try:
            results.append(target())
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_db_counters_under_concurrency(af_registry):
    counters = backends.DbCounters(af_registry["kameng.write_engine"])
    fresh_window(margin=15)
    waits = _threads(16, lambda: counters.hit("test:concurrent", 10, 60))
    assert sorted(w == 0 for w in waits) == [False] * 6 + [True] * 10
    assert all(1 <= w <= 60 for w in waits if w)
    assert counters.hit("test:other", 10, 60) == 0
    assert counters.hit("test:off", 0, 60) == 0


def test_db_counters_live_in_the_core_table_except_on_sqlite(af_registry):
    engine = af_registry["kameng.write_engine"]
    backends.DbCounters(engine).hit("test:where", 5, 60)
    with app_request(af_registry) as req:
        buckets = req.db.scalars(select(RateCounter.bucket)).all()
    if engine.dialect.name == "sqlite":
        assert buckets == []  # one app process: its memory (kameng.ratelimit)
    else:
        assert buckets == ["af:test:where"]


def test_db_store_gives_an_answer_once(af_registry):
    store = backends.DbStore(af_registry["kameng.write_engine"])
    store.put("c" * 24, "ACDEF", 300)
    assert store.peek("c" * 24) == "ACDEF"
    answers = _threads(8, lambda: store.take("c" * 24))
    assert sorted(answers, key=str) == ["ACDEF"] + [None] * 7
    assert store.peek("c" * 24) is None


def test_db_store_expiry_and_pruning(af_registry):
    store = backends.DbStore(af_registry["kameng.write_engine"])
    store.put("e" * 24, "HJKLM", 300)
    store.put("f" * 24, "HJKLM", 300)
    with app_request(af_registry) as req:
        req.db.execute(update(CaptchaChallenge).where(CaptchaChallenge.id == "e" * 24)
                       .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert store.peek("e" * 24) is None
    assert store.take("e" * 24) is None
    store.put("g" * 24, "HJKLM", 300)
    with app_request(af_registry) as req:
        req.db.execute(update(CaptchaChallenge).where(CaptchaChallenge.id == "g" * 24)
                       .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
        from kameng import jobs

        jobs.enqueue(req.db, "antifraud.prune", {})
    setup_shop(af_registry)  # the plugin's jobs run while it is enabled
    run_jobs(af_registry)
    with app_request(af_registry) as req:
        assert req.db.scalars(select(CaptchaChallenge.id)).all() == ["f" * 24]


def test_memory_store():
    store = backends.MemoryStore(cap=3)
    for i in range(5):
        store.put(f"id{i}", f"A{i}", 300)
    assert [store.peek(f"id{i}") for i in range(5)] == [None, None, "A2", "A3", "A4"]
    assert store.take("id3") == "A3" and store.take("id3") is None
    store.put("short", "X", 0)
    assert store.peek("short") is None


# -- Redis ---------------------------------------------------------------------------------------


def test_redis_counters_fixed_windows(redis_ns):
    counters = backends.RedisCounters(redis_ns.client, redis_ns.prefix)
    t0 = 1_700_000_040.0  # a window start
    assert [counters.hit("win", 2, 60, now=t0 + s) for s in (0, 10, 20)] == [0, 0, 40]
    assert counters.hit("win", 2, 60, now=t0 + 60) == 0  # the next window
    (key, *_rest) = redis_ns.keys("c:win:60:*")
    assert 0 < redis_ns.client.ttl(key) <= 120  # every key expires


def test_redis_limits_orders(af_testapp, af_registry, redis_ns):
    setup_shop(af_registry, orders_per_ip_per_minute=2, **redis_ns.settings())
    fresh_window()
    assert [place(af_testapp, ip="203.0.113.5").status_int for _ in range(3)] == [201, 201, 429]
    (key,) = redis_ns.keys("c:orders_per_ip_per_minute:*")
    assert redis_ns.client.get(key) == "3"
    with app_request(af_registry) as req:  # nothing counted in the database
        assert req.db.scalars(select(RateCounter.bucket).where(RateCounter.bucket.like("af:%"))).all() == []


def test_redis_captcha(af_testapp, af_registry, redis_ns):
    setup_shop(af_registry, captcha="order", **redis_ns.settings())
    made = new_captcha(af_testapp)
    key = f"{redis_ns.prefix}captcha:{made['id']}"
    assert 290 <= redis_ns.client.ttl(key) <= 300
    assert answer_for(af_registry, made["id"]) is None  # not in the database or memory
    af_testapp.get(f"/-/antifraud/captcha/{made['id']}.png", status=200)
    answer = answer_for(af_registry, made["id"], ns=redis_ns)
    assert place(af_testapp, headers=captcha_headers(made["id"], answer)).status_int == 201
    assert redis_ns.client.exists(key) == 0  # used up
    resp = place(af_testapp, headers=captcha_headers(made["id"], answer))
    assert resp.status_int == 400 and error(resp)["code"] == "captcha_required"


def test_unreachable_redis_falls_back_to_the_database(af_testapp, af_registry, caplog):
    port = free_port()  # nothing listens there
    setup_shop(af_registry, orders_per_ip_per_minute=1, redis_url=f"redis://127.0.0.1:{port}/0")
    fresh_window()
    started = time.monotonic()
    assert place(af_testapp, ip="203.0.113.5").status_int == 201  # never refused because Redis is down
    assert place(af_testapp, ip="203.0.113.5").status_int == 429  # the limit still holds (database)
    assert time.monotonic() - started < 10
    assert any(r.getMessage() == "antifraud_redis_unavailable" for r in caplog.records)
    with app_request(af_registry) as req:
        assert backends.describe(req, config.read(req))["down"] is True


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://", "127.0.0.1:6379"])
def test_bad_redis_urls_are_refused(af_registry, url):
    from kameng.testing import set_plugin
    from kameng.types import SettingError

    with pytest.raises(SettingError) as exc:
        set_plugin(af_registry, "antifraud", redis_url=url)
    assert exc.value.field_name == "redis_url"


def test_models_match_the_migration(af_registry):
    """The tables the migration made are the models' (the foreign key to
    ``products`` is the migration's alone)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from kameng_antifraud.models import Base

    def ours(obj, name, type_, reflected, compare_to):
        if type_ == "foreign_key_constraint":
            return False
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in Base.metadata.tables

    with af_registry["kameng.engine"].connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": ours})
        assert compare_metadata(ctx, Base.metadata) == []


def test_redis_url_falls_back_to_the_shop_wide_setting(af_registry, monkeypatch):
    from kameng.testing import app_request, set_plugin
    from kameng_antifraud import config

    set_plugin(af_registry, "antifraud", enabled=True, redis_url="")
    monkeypatch.setitem(af_registry.settings, "kameng.redis_url", "redis://127.0.0.1:6379/9")
    with app_request(af_registry) as req:
        assert config.read(req).redis_url == "redis://127.0.0.1:6379/9"
    set_plugin(af_registry, "antifraud", redis_url="redis://127.0.0.1:6379/8")
    with app_request(af_registry) as req:
        assert config.read(req).redis_url == "redis://127.0.0.1:6379/8"  # the plugin's own wins
