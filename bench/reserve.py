"""Card-key reservation: W workers each reserve one key per transaction
(kameng.inventory.service.reserve in its own Session(write_engine)
transaction) until a SKU of K keys is sold out; then check that no key went
to two orders.

Usage: python bench/reserve.py [--db URL] [--keys 20000] [--workers 1,16]
                               [--processes] [--bare [--bare-no-counter]] [--no-pre-ping]
                               [--switch-interval S] [--profile N]

Each worker count gets a new SKU with K freshly imported keys. Prints
progress on stderr and ONE JSON line on stdout: for each run, reservations/s,
p50/p99 latency of one reserve transaction (session, BEGIN, reserve, COMMIT),
the CPU time per reservation (steadier than wall time on a shared machine)
and the double-claim check: every reserved key has a distinct order_ref, the
reserved count equals K, the ids the workers got back are distinct, and
skus.stock is 0.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import multiprocessing
import os
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def cpu_s(who=resource.RUSAGE_SELF) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def worker_loop(write_engine, sku_id: int, name: str, start: threading.Event | None = None, profile: bool = False):
    """Reserve one key per transaction until stock is out: (latencies, ids, profile text)."""
    from kameng.inventory.service import OutOfStock, reserve

    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=15)
    latencies, ids, n = [], [], 0
    prof = cProfile.Profile() if profile else None
    if start is not None:
        start.wait()
    if prof:
        prof.enable()
    while True:
        t0 = time.perf_counter()
        try:
            with Session(write_engine) as s, s.begin():
                got = reserve(s, sku_id, 1, f"{name}-{n}", until)
        except OutOfStock:
            break
        latencies.append(time.perf_counter() - t0)
        ids.extend(got)
        n += 1
    if prof:
        prof.disable()
        out = io.StringIO()
        st = pstats.Stats(prof, stream=out)
        st.sort_stats("tottime").print_stats(25)
        st.sort_stats("cumulative").print_stats(25)
        return latencies, ids, out.getvalue()
    return latencies, ids, ""


def bare_loop(write_engine, sku_id: int, name: str, start: threading.Event | None = None, profile: bool = False,
              stock_counter: bool = True):
    """The same claim without SQLAlchemy or kameng: the statements reserve()
    sends (less the threshold it reads back with the stock), on a raw DBAPI
    connection held for the whole run. The stack's ceiling in the same run.
    ``stock_counter=False`` leaves out the skus.stock update (one hot row
    every claim writes)."""
    dialect = write_engine.dialect.name
    until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=15)).replace(tzinfo=None)
    conn = write_engine.raw_connection()
    cur = conn.cursor()
    p = "?" if dialect == "sqlite" else "%s"
    pick = f"SELECT id FROM card_keys WHERE sku_id = {p} AND state = 'available' ORDER BY id LIMIT 1"
    if dialect == "sqlite":
        claim = (f"UPDATE card_keys SET state = 'reserved', order_ref = {p}, reserved_until = {p} "
                 f"WHERE id IN ({pick}) RETURNING id")
        until = until.isoformat(" ")
    elif dialect == "postgresql":
        claim = (f"UPDATE card_keys SET state = 'reserved', order_ref = {p}, reserved_until = {p} "
                 f"WHERE id IN ({pick} FOR UPDATE SKIP LOCKED) RETURNING id")
    stock = f"UPDATE skus SET stock = stock - 1 WHERE id = {p}"
    latencies, ids, n = [], [], 0
    if start is not None:
        start.wait()
    while True:
        t0 = time.perf_counter()
        if dialect == "sqlite":
            cur.execute("BEGIN IMMEDIATE")
        if dialect in ("mysql", "mariadb"):
            cur.execute(pick + " FOR UPDATE SKIP LOCKED", (sku_id,))
            got = [r[0] for r in cur.fetchall()]
            if got:
                cur.execute(f"UPDATE card_keys SET state = 'reserved', order_ref = {p}, reserved_until = {p} "
                            f"WHERE id = {p}", (f"{name}-{n}", until, got[0]))
        else:
            cur.execute(claim, (f"{name}-{n}", until, sku_id))
            got = [r[0] for r in cur.fetchall()]
        if not got:
            conn.rollback() if dialect != "sqlite" else cur.execute("ROLLBACK")
            break
        if stock_counter:
            cur.execute(stock, (sku_id,))
        if dialect == "sqlite":
            cur.execute("COMMIT")
        else:
            conn.commit()
        latencies.append(time.perf_counter() - t0)
        ids.extend(got)
        n += 1
    cur.close()
    conn.close()
    return latencies, ids, ""


def _process_main(url, pool, sku_id, name, ready, start, results, switch_interval, bare, counter=True):
    from kameng.db import make_engine, write_bind

    if switch_interval:
        sys.setswitchinterval(switch_interval)
    engine = make_engine(url, **pool)
    ready.release()
    start.wait()
    if bare:
        lat, ids, _ = bare_loop(write_bind(engine), sku_id, name, stock_counter=counter)
    else:
        lat, ids, _ = worker_loop(write_bind(engine), sku_id, name)
    results.put((lat, ids))
    engine.dispose()


def _thread_main(out: list, i: int, write_engine, sku_id: int, start, bare, counter: bool, profile: bool) -> None:
    if bare:
        out.append(bare_loop(write_engine, sku_id, f"t{i}", start, stock_counter=counter))
    else:
        out.append(worker_loop(write_engine, sku_id, f"t{i}", start, profile=profile))


def make_sku(registry, keyring, code: str, keys: int) -> int:
    from kameng.catalog.models import Product, Sku
    from kameng.inventory.service import import_keys

    write_engine = registry["kameng.write_engine"]
    with Session(write_engine) as s, s.begin():
        product = Product(name=f"Bench {code}", type="card_key")
        s.add(product)
        s.flush()
        sku = Sku(product_id=product.id, code=code, name=code, price=100, stock=0)
        s.add(sku)
        s.flush()
        sku_id = sku.id
    lines = (f"{code}-{os.urandom(8).hex()}\n" for _ in range(keys))
    report = import_keys(lambda: Session(write_engine), keyring, sku_id, lines, source="bench", actor="bench")
    assert report.imported == keys, report
    return sku_id


def check(engine, sku_id: int, keys: int, ids: list[int], counter: bool = True) -> tuple[bool, str]:
    from kameng.catalog.models import Sku
    from kameng.inventory.models import RESERVED, CardKey

    with Session(engine) as s:
        reserved = s.scalar(select(func.count()).where(CardKey.sku_id == sku_id, CardKey.state == RESERVED))
        refs = s.scalar(select(func.count(func.distinct(CardKey.order_ref))).where(
            CardKey.sku_id == sku_id, CardKey.state == RESERVED))
        other = s.scalar(select(func.count()).where(CardKey.sku_id == sku_id, CardKey.state != RESERVED))
        stock = s.scalar(select(Sku.stock).where(Sku.id == sku_id))
    ok = reserved == keys and refs == keys and other == 0 and len(ids) == keys and len(set(ids)) == keys \
        and stock == (0 if counter else keys)
    return ok, (f"reserved {reserved:,}/{keys:,}, distinct order_refs {refs:,}, not reserved {other}, "
                f"ids returned {len(ids):,} ({len(set(ids)):,} distinct), skus.stock {stock}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a new SQLite file); its tables are dropped")
    ap.add_argument("--keys", type=int, default=20000, help="keys per SKU (default 20,000)")
    ap.add_argument("--workers", default="1,16", help="worker counts to run, comma separated (default 1,16)")
    ap.add_argument("--processes", action="store_true", help="workers are processes (default: threads)")
    ap.add_argument("--switch-interval", type=float, default=0.0,
                    help="sys.setswitchinterval for the workers (default: Python's 0.005)")
    ap.add_argument("--no-pre-ping", action="store_true",
                    help="engine without pool_pre_ping (kameng's engines ping on every checkout)")
    ap.add_argument("--bare", action="store_true",
                    help="also run each worker count with raw DBAPI claims (no SQLAlchemy, no kameng)")
    ap.add_argument("--bare-no-counter", action="store_true",
                    help="with --bare: also bare claims without the skus.stock update (what the hot counter row costs)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="profile one worker thread of each run with cProfile, print the top N")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",") if w.strip()]

    tmp = tempfile.mkdtemp(prefix="kameng-bench-")
    key_file = os.path.join(tmp, "secret.key")
    url = args.db or f"sqlite:///{tmp}/bench.sqlite"

    from kameng.config import configure
    from kameng.crypto import write_key_file
    from kameng.db import drop_all_tables, make_engine
    from kameng.migrate import upgrade

    write_key_file(key_file)
    engine = make_engine(url)
    drop_all_tables(engine)
    engine.dispose()
    # enough pooled connections for every worker thread (the default pool holds 5 + 10 overflow)
    pool = {"pool_size": max(counts) + 2, "max_overflow": 0}
    if args.no_pre_ping and not url.startswith("sqlite"):
        pool["pool_pre_ping"] = False
    engine = make_engine(url, **pool)
    registry = configure({"sqlalchemy.url": url, "kameng.key_file": key_file, "kameng.session_secret": "b" * 40,
                          "kameng.engine": engine}).registry
    upgrade(registry["kameng.engine"], registry["kameng.plugins"])
    keyring = registry["kameng.keyring"]
    write_engine = registry["kameng.write_engine"]
    kind = "processes" if args.processes else "threads"
    log(f"kameng reserve bench: {engine.dialect.name}, {args.keys:,} keys per run, workers are {kind}"
        + (f", switch interval {args.switch_interval}" if args.switch_interval else "")
        + (", no pool pre-ping" if args.no_pre_ping else ""))
    all_ok, results_out = True, []
    modes = [False] + ([True] if args.bare else []) + (["nocounter"] if args.bare and args.bare_no_counter else [])
    runs = [(w, bare) for w in counts for bare in modes]
    for workers, bare in runs:
        code = f"BENCH-RES-{workers}{'-BARE' if bare else ''}{'-NC' if bare == 'nocounter' else ''}"
        counter = bare != "nocounter"
        sku_id = make_sku(registry, keyring, code, args.keys)
        latencies, ids, profile_text = [], [], ""
        if args.processes:
            ctx = multiprocessing.get_context("fork")
            engine.dispose()  # no inherited connections in the children
            ready, start, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
            cpu0 = cpu_s(resource.RUSAGE_CHILDREN)
            procs = [ctx.Process(target=_process_main, args=(url, pool, sku_id, f"p{i}", ready, start, results,
                                                              args.switch_interval, bool(bare), counter)) for i in range(workers)]
            for p in procs:
                p.start()
            for _ in procs:
                ready.acquire()
            t0 = time.perf_counter()
            start.set()
            for _ in procs:
                lat, got = results.get()
                latencies += lat
                ids += got
            elapsed = time.perf_counter() - t0
            for p in procs:
                p.join()
            cpu = cpu_s(resource.RUSAGE_CHILDREN) - cpu0
        else:
            if args.switch_interval:
                sys.setswitchinterval(args.switch_interval)
            start, out = threading.Event(), []
            threads = [threading.Thread(target=_thread_main, args=(out, i, write_engine, sku_id, start, bare, counter,
                                                                   bool(args.profile) and i == 0))
                       for i in range(workers)]
            for t in threads:
                t.start()
            time.sleep(0.2)
            t0, cpu0 = time.perf_counter(), cpu_s()
            start.set()
            for t in threads:
                t.join()
            elapsed, cpu = time.perf_counter() - t0, cpu_s() - cpu0
            for lat, got, text in out:
                latencies += lat
                ids += got
                profile_text += text
        q = statistics.quantiles(latencies, n=100)
        ok, detail = check(engine, sku_id, args.keys, ids, counter)
        all_ok &= ok
        label = f"{workers:>2} {kind[:-2 if kind == 'processes' else -1] if workers == 1 else kind}"
        log(f"{label}{' BARE DBAPI' if bare else ''}{' without stock counter' if not counter else ''}: "
            f"{len(latencies) / elapsed:,.0f} reservations/s ({len(latencies):,} in {elapsed:.1f} s, "
            f"{cpu * 1000 / len(latencies):.2f} ms CPU each)   p50 {q[49] * 1000:.2f} ms   p99 {q[98] * 1000:.2f} ms")
        log(f"   double-claim check: {'OK' if ok else 'FAILED'} ({detail})")
        if profile_text:
            log(profile_text)
        results_out.append({"workers": workers, "kind": kind, "mode": "bare-no-counter" if bare == "nocounter"
                            else "bare" if bare else "kameng", "reservations_per_s": round(len(latencies) / elapsed),
                            "n": len(latencies), "seconds": round(elapsed, 2),
                            "cpu_ms_per_reservation": round(cpu * 1000 / len(latencies), 3),
                            "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2),
                            "double_claim_check": "OK" if ok else "FAILED"})
    print(json.dumps({"bench": "reserve", "db": engine.dialect.name, "keys": args.keys, "runs": results_out,
                      "ok": all_ok}), flush=True)
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
