"""Card-key import: generate N keys into a file, import them into a new shop
database through kameng.inventory.service.import_keys, then import the same
file again (a full-duplicate pass that must add nothing).

Usage: python bench/keys_import.py [--db URL] [--keys 1000000] [--pairs]
                                   [--chunk 2000] [--tracemalloc] [--profile N] [--analyze]

Prints progress on stderr and ONE JSON line of figures on stdout: keys/s,
seconds, CPU seconds of the process (steadier than wall time on a shared
machine), memory (ru_maxrss peak, and the resident size sampled at each tenth
of the file: flat if the import streams; with --tracemalloc also the peak of
Python allocations, which slows the import down) and the database size.
"""
from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import resource
import sys
import tempfile
import time


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def generate(path: str, n: int, pairs: bool) -> None:
    """n distinct random 16-character secrets (base32 of 10 random bytes),
    optionally as ``number,secret`` with a CSV header."""
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as fh:
        if pairs:
            fh.write("卡号,卡密\n")
        for start in range(0, n, 10000):
            raw = os.urandom(10 * min(10000, n - start))
            out = []
            for j in range(0, len(raw), 10):
                secret = base64.b32encode(raw[j:j + 10]).decode()
                out.append(f"{8600000000000 + start + j // 10},{secret}\n" if pairs else secret + "\n")
            fh.write("".join(out))


def db_size(engine, sqlite_path: str | None) -> dict:
    """MiB: the whole database, and (SQLite) its WAL or (others) card_keys with its indexes."""
    from sqlalchemy import text

    if sqlite_path:
        main = os.path.getsize(sqlite_path)
        wal = os.path.getsize(sqlite_path + "-wal") if os.path.exists(sqlite_path + "-wal") else 0
        return {"db_mib": round(main / 2 ** 20, 1), "wal_mib": round(wal / 2 ** 20, 1)}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            total, table = conn.execute(text(
                "SELECT pg_database_size(current_database()), pg_total_relation_size('card_keys')")).one()
        else:
            total, table = conn.execute(text(
                "SELECT SUM(data_length + index_length), SUM(CASE WHEN table_name = 'card_keys' "
                "THEN data_length + index_length ELSE 0 END) FROM information_schema.tables "
                "WHERE table_schema = DATABASE()")).one()
    return {"db_mib": round(int(total) / 2 ** 20, 1), "card_keys_mib": round(int(table) / 2 ** 20, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a new SQLite file); its tables are dropped")
    ap.add_argument("--keys", type=int, default=1_000_000, help="keys in the file (default 1,000,000)")
    ap.add_argument("--pairs", action="store_true", help="'number,secret' lines with a 卡号,卡密 header")
    ap.add_argument("--chunk", type=int, default=None, help="keys per transaction (default: import_keys's)")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="run the first import under cProfile and print the top N functions")
    ap.add_argument("--analyze", action="store_true",
                    help="ANALYZE card_keys once the first chunk is in (PostgreSQL/MariaDB), as autovacuum "
                         "would within a minute; without it a server with autovacuum off plans the duplicate "
                         "check on a table it believes empty")
    ap.add_argument("--no-second-pass", action="store_true", help="skip the full-duplicate import")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="kameng-bench-")
    key_file = os.path.join(tmp, "secret.key")
    keys_path = os.path.join(tmp, "keys.txt")
    sqlite_path = None if args.db else os.path.join(tmp, "bench.sqlite")
    url = args.db or f"sqlite:///{sqlite_path}"

    from sqlalchemy.orm import Session

    from kameng.catalog.models import Product, Sku
    from kameng.config import configure
    from kameng.crypto import write_key_file
    from kameng.db import drop_all_tables, make_engine
    from kameng.inventory import service as inventory
    from kameng.migrate import upgrade

    t0 = time.perf_counter()
    generate(keys_path, args.keys, args.pairs)
    gen_s = time.perf_counter() - t0
    write_key_file(key_file)

    engine = make_engine(url)
    drop_all_tables(engine)
    engine.dispose()
    registry = configure({"sqlalchemy.url": url, "kameng.key_file": key_file,
                          "kameng.session_secret": "b" * 40}).registry
    upgrade(registry["kameng.engine"], registry["kameng.plugins"])
    write_engine = registry["kameng.write_engine"]
    with Session(write_engine) as s, s.begin():
        product = Product(name="Bench card", type="card_key")
        s.add(product)
        s.flush()
        sku = Sku(product_id=product.id, code="BENCH-IMPORT", name="bench", price=100, stock=0)
        s.add(sku)
        s.flush()
        sku_id = sku.id
    keyring = registry["kameng.keyring"]
    kw = {"separator": "," if args.pairs else None, "source": "bench", "actor": "bench"}
    if args.chunk:
        kw["chunk"] = args.chunk
    analyzed, samples = [], {}
    marks = [args.keys * f // 10 for f in range(1, 11)]  # sample the resident size at each tenth of the file

    def on_progress(lines, imported):
        if args.analyze and not sqlite_path and not analyzed and imported:
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE card_keys" if engine.dialect.name == "postgresql"
                                     else "ANALYZE TABLE card_keys")
            analyzed.append(imported)
        while marks and lines >= marks[0]:
            samples[f"{marks.pop(0) * 100 // args.keys}%"] = round(current_rss_mb())

    kw["progress"] = on_progress
    log(f"kameng key import bench: {write_engine.dialect.name}, {args.keys:,} keys"
        f"{' (number,secret pairs)' if args.pairs else ''}, file {os.path.getsize(keys_path) / 2 ** 20:.1f} MiB "
        f"written in {gen_s:.1f} s, chunk {kw.get('chunk', inventory.CHUNK)}"
        + (", ANALYZE after the first chunk" if args.analyze and not sqlite_path else ""))
    rss_before = current_rss_mb()
    log(f"rss before import: {rss_before:.0f} MiB (peak so far {rss_mb():.0f} MiB)")

    def run(label: str, profile: int = 0):
        if args.tracemalloc:
            import tracemalloc
            tracemalloc.start()
            tracemalloc.reset_peak()
        prof = cProfile.Profile() if profile else None
        t, c = time.perf_counter(), cpu_s()
        with open(keys_path, encoding="utf-8-sig") as fh:
            if prof:
                prof.enable()
            report = inventory.import_keys(lambda: Session(write_engine), keyring, sku_id, fh, **kw)
            if prof:
                prof.disable()
        elapsed, cpu = time.perf_counter() - t, cpu_s() - c
        traced = None
        if args.tracemalloc:
            import tracemalloc
            traced = tracemalloc.get_traced_memory()[1] / 2 ** 20
            tracemalloc.stop()
        log(f"{label}: {report.lines:,} lines, imported {report.imported:,}, duplicates {report.duplicates:,}, "
            f"invalid {report.invalid:,} in {elapsed:.1f} s ({cpu:.1f} s CPU) = {report.lines / elapsed:,.0f} lines/s"
            + (f" ({report.imported / elapsed:,.0f} keys/s imported)" if report.imported else ""))
        log(f"  peak rss (ru_maxrss, whole process so far): {rss_mb():.0f} MiB"
            + (f"   tracemalloc peak: {traced:.0f} MiB" if traced is not None else ""))
        if prof:
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(profile)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(profile)
        return report, elapsed, cpu, traced

    first, elapsed, cpu, traced = run("import", args.profile)
    peak_import = rss_mb()
    with Session(engine) as s:
        counts = inventory.counts(s, sku_id)
        stock = s.get(Sku, sku_id).stock
    size = db_size(engine, sqlite_path)
    log(f"  available keys {counts['available']:,}, skus.stock {stock:,}; rss after each tenth of the file "
        f"(MiB): {samples}")
    log(f"  database size: {size}")
    ok = first.imported == args.keys == counts["available"] == stock
    out = {"bench": "keys_import", "db": write_engine.dialect.name, "keys": args.keys, "pairs": args.pairs,
           "chunk": kw.get("chunk", inventory.CHUNK), "imported": first.imported, "seconds": round(elapsed, 2),
           "keys_per_s": round(first.imported / elapsed), "cpu_s": round(cpu, 2),
           "keys_per_cpu_s": round(first.imported / cpu) if cpu else None,
           "rss_before_mib": round(rss_before), "rss_peak_mib": round(peak_import),
           "rss_at_mib": samples, **size}
    if traced is not None:
        out["tracemalloc_peak_mib"] = round(traced, 1)
    if args.analyze and not sqlite_path:
        out["analyze_after"] = analyzed[0] if analyzed else None
    if not args.no_second_pass:
        second, elapsed2, cpu2, _ = run("same file again (full duplicates)")
        log(f"  added {second.imported} (expected 0)")
        ok = ok and second.imported == 0 and second.duplicates == args.keys
        out.update({"again_seconds": round(elapsed2, 2), "again_lines_per_s": round(second.lines / elapsed2),
                    "again_cpu_s": round(cpu2, 2), "again_added": second.imported})
    out["ok"] = ok
    print(json.dumps(out), flush=True)
    engine.dispose()
    registry["kameng.engine"].dispose()
    for name in os.listdir(tmp):
        os.remove(os.path.join(tmp, name))
    os.rmdir(tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
