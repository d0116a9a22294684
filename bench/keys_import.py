"""Card-key import: generate N keys into a file, import them into a new shop
database through kameng.inventory.service.import_keys, then import the same
file again (a full-duplicate pass that must add nothing).

Usage: python bench/keys_import.py [--db URL] [--keys 1000000] [--pairs]
                                   [--chunk 2000] [--tracemalloc] [--profile N] [--analyze]

Prints keys/s, seconds, peak memory (ru_maxrss of the process; with
--tracemalloc also the peak of Python allocations during the import, which
slows the import down: compare a run without it) and the database size.
"""
from __future__ import annotations

import argparse
import base64
import cProfile
import os
import pstats
import resource
import sys
import tempfile
import time


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


def db_size(engine, sqlite_path: str | None) -> str:
    from sqlalchemy import text

    if sqlite_path:
        main = os.path.getsize(sqlite_path)
        wal = os.path.getsize(sqlite_path + "-wal") if os.path.exists(sqlite_path + "-wal") else 0
        return f"{main / 2 ** 20:.1f} MiB (+ {wal / 2 ** 20:.1f} MiB WAL)"
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            total, table = conn.execute(text(
                "SELECT pg_database_size(current_database()), pg_total_relation_size('card_keys')")).one()
        else:
            total, table = conn.execute(text(
                "SELECT SUM(data_length + index_length), SUM(CASE WHEN table_name = 'card_keys' "
                "THEN data_length + index_length ELSE 0 END) FROM information_schema.tables "
                "WHERE table_schema = DATABASE()")).one()
    return f"{int(total) / 2 ** 20:.1f} MiB (card_keys with its indexes: {int(table) / 2 ** 20:.1f} MiB)"


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
    from kameng.db import make_engine
    from kameng.inventory import service as inventory
    from kameng.migrate import upgrade
    from kameng.testing import drop_everything

    t0 = time.perf_counter()
    generate(keys_path, args.keys, args.pairs)
    gen_s = time.perf_counter() - t0
    write_key_file(key_file)

    engine = make_engine(url)
    drop_everything(engine)
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
    if args.analyze and not sqlite_path:
        analyzed = []

        def analyze_once(lines, imported):
            if not analyzed and imported:
                with engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE card_keys" if engine.dialect.name == "postgresql"
                                         else "ANALYZE TABLE card_keys")
                analyzed.append(imported)

        kw["progress"] = analyze_once

    print(f"kameng key import bench: {write_engine.dialect.name}, {args.keys:,} keys"
          f"{' (number,secret pairs)' if args.pairs else ''}, file {os.path.getsize(keys_path) / 2 ** 20:.1f} MiB "
          f"written in {gen_s:.1f} s, chunk {kw.get('chunk', inventory.CHUNK)}"
          + (", ANALYZE after the first chunk" if "progress" in kw else ""))
    print(f"rss before import: {current_rss_mb():.0f} MiB (peak so far {rss_mb():.0f} MiB)")

    def run(label: str, profile: int = 0):
        if args.tracemalloc:
            import tracemalloc
            tracemalloc.start()
            tracemalloc.reset_peak()
        prof = cProfile.Profile() if profile else None
        t = time.perf_counter()
        with open(keys_path, encoding="utf-8-sig") as fh:
            if prof:
                prof.enable()
            report = inventory.import_keys(lambda: Session(write_engine), keyring, sku_id, fh, **kw)
            if prof:
                prof.disable()
        elapsed = time.perf_counter() - t
        traced = ""
        if args.tracemalloc:
            import tracemalloc
            traced = f"   tracemalloc peak: {tracemalloc.get_traced_memory()[1] / 2 ** 20:.0f} MiB"
            tracemalloc.stop()
        print(f"{label}: {report.lines:,} lines, imported {report.imported:,}, duplicates {report.duplicates:,}, "
              f"invalid {report.invalid:,} in {elapsed:.1f} s = {report.lines / elapsed:,.0f} lines/s"
              + (f" ({report.imported / elapsed:,.0f} keys/s imported)" if report.imported else ""))
        print(f"  peak rss (ru_maxrss, whole process so far): {rss_mb():.0f} MiB{traced}")
        if prof:
            pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(profile)
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(profile)
        return report

    first = run("import", args.profile)
    with Session(engine) as s:
        counts = inventory.counts(s, sku_id)
        stock = s.get(Sku, sku_id).stock
    print(f"  available keys {counts['available']:,}, skus.stock {stock:,}")
    print(f"  database size: {db_size(engine, sqlite_path)}")
    if not args.no_second_pass:
        second = run("same file again (full duplicates)")
        print(f"  added {second.imported} (expected 0)")
    else:
        second = None
    engine.dispose()
    registry["kameng.engine"].dispose()
    for name in os.listdir(tmp):
        os.remove(os.path.join(tmp, name))
    os.rmdir(tmp)
    return 0 if first.imported and (second is None or second.imported == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
