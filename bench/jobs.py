"""Job queue throughput: enqueue N no-op jobs, run them with W worker threads.

Usage: python bench/jobs.py [--db URL] [--workers 4] [--jobs 2000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

from kameng.crypto import new_key_line
from kameng.types import JobHandler


def noop(request, payload):
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", help="database URL (default: a new SQLite file); its tables are emptied")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kameng-bench-")
    key = os.path.join(tmp, "secret.key")
    with open(key, "w") as fh:
        fh.write(new_key_line() + "\n")
    url = args.db or f"sqlite:///{tmp}/bench.sqlite"
    from kameng import jobs
    from kameng.config import configure
    from kameng.db import drop_all_tables, make_engine
    from kameng.migrate import upgrade

    engine = make_engine(url)
    drop_all_tables(engine)
    engine.dispose()
    registry = configure({"sqlalchemy.url": url, "kameng.key_file": key, "kameng.session_secret": "b" * 40}).registry
    upgrade(registry["kameng.engine"], registry["kameng.plugins"])
    from sqlalchemy.orm import Session

    with Session(registry["kameng.engine"]) as s, s.begin():
        for i in range(args.jobs):
            jobs.enqueue(s, "bench.noop", {"n": i})
    latencies, lock = [], threading.Lock()

    def run(worker_id):
        w = jobs.Worker(registry, worker_id=worker_id)
        w.handlers = {**w.handlers, "bench.noop": (None, JobHandler("bench.noop", noop))}
        while True:
            t0 = time.perf_counter()
            if not w.run_one():
                return
            with lock:
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    print(f"kameng jobs bench: {registry['kameng.engine'].dialect.name}, {args.workers} worker threads, "
          f"{len(latencies)} jobs")
    print(f"jobs/s: {len(latencies) / elapsed:.0f}   claim+run+commit p50: {q[49] * 1000:.2f} ms   "
          f"p99: {q[98] * 1000:.2f} ms")
    registry["kameng.engine"].dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
