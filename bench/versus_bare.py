"""kameng against the bare stack, alternately, under the same wrk load.

Starts a throw-away kameng shop (`kameng init`, a SKU with enough card keys,
`kameng serve`, the core's per-address limits off) and the bare stack
(bench/bare_stack.py: Pyramid + waitress + one SQLAlchemy insert into SQLite
per JSON POST, and one Chameleon page), both with the same waitress thread
count. Then, for --rounds rounds, runs wrk (-t2, --connections, --duration)
in turn against:

  orders   kameng  POST /api/v1/orders (a guest order: reserves a key, with
                   contact and query password, sandbox payment)
           bare    POST /insert
  page     kameng  GET /p/{id} (the product page: catalog, prices, stock)
           bare    GET /page
  home     kameng  GET / (categories, hot and recommended rows, the catalog)
           bare    GET /page

and prints one JSON line: each target's requests/s, p50/p99 and non-2xx per
round, the medians, and kameng's ratio to the bare stack (the median of the
per-round ratios). Targets (the hardening issue): orders ≥ 0.5, page ≥ 0.5.
The storefront's pages are measured as a visitor who is not signed in sees
them, through the anonymous page cache (kameng.storefront.cache_seconds);
--no-page-cache turns it off to measure rendering itself.

Usage: python bench/versus_bare.py [--rounds 3] [--duration 10] [--connections 100]
                                   [--threads 8] [--only orders|page|home] [--no-page-cache]
Needs wrk (Debian package `wrk`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from buyer_flow import SETUP, free_port, init_shop, proc_status, wait_until_up

HERE = os.path.dirname(os.path.abspath(__file__))

#: the same JSON body to both: a guest's order
POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"sku": "BENCH", "quantity": 1, "contact": "buyer@example.com", "query_password": "pass1234", "payment_method": "sandbox"}'
"""


def to_ms(text: str | None) -> float | None:
    if not text:
        return None
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return None
    return round(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)], 2)


def wrk(url: str, connections: int, duration: int, script: str | None = None) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": round(rps, 1), "p50_ms": to_ms(lat.get("50")), "p99_ms": to_ms(lat.get("99")),
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--threads", type=int, default=8, help="waitress threads, both apps")
    ap.add_argument("--only", choices=("orders", "page", "home"), help="measure one pair only")
    ap.add_argument("--no-page-cache", action="store_true", help="kameng.storefront.cache_seconds = 0")
    ap.add_argument("--keys", type=int, default=None,
                    help="card keys to stock (default: enough for 800 orders/s over every orders run)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("versus_bare.py needs wrk: apt-get install wrk")

    kameng = [sys.executable, "-m", "kameng.cli"]
    tmp = tempfile.mkdtemp(prefix="kameng-versus-bare-")
    port, bare_port = free_port(), free_port()
    procs, log = [], open(os.path.join(tmp, "servers.log"), "wb")  # noqa: SIM115 - closed in finally
    try:
        ini = init_shop(kameng, tmp, port)
        if args.no_page_cache:
            with open(ini) as fh:
                text = fh.read()
            with open(ini, "w") as fh:
                fh.write(text.replace("[app:main]\n", "[app:main]\nkameng.storefront.cache_seconds = 0\n", 1))
        pairs = ["orders", "page", "home"] if args.only is None else [args.only]
        keys = args.keys or (800 * args.duration * (args.rounds + 1) if "orders" in pairs else 10)
        subprocess.run([sys.executable, "-c", SETUP, ini, str(keys), "1"], check=True,
                               capture_output=True, text=True)
        product_id = product_of(ini)
        server = subprocess.Popen([*kameng, "-c", ini, "serve", "--threads", str(args.threads)], stdout=log,
                                  stderr=log)
        bare = subprocess.Popen([sys.executable, os.path.join(HERE, "bare_stack.py"), "--port", str(bare_port),
                                 "--db", os.path.join(tmp, "bare.sqlite"), "--threads", str(args.threads)],
                                stdout=log, stderr=log)
        procs = [server, bare]
        base, bare_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
        if not (wait_until_up(base + "/healthz") and wait_until_up(bare_base + "/page")):
            raise SystemExit("a server did not start; see " + os.path.join(tmp, "servers.log"))
        post_lua = os.path.join(tmp, "post.lua")
        with open(post_lua, "w") as fh:
            fh.write(POST_LUA)
        targets = {
            "orders": (("kameng", base + "/api/v1/orders", post_lua), ("bare", bare_base + "/insert", post_lua)),
            "page": (("kameng", f"{base}/p/{product_id}", None), ("bare", bare_base + "/page", None)),
            "home": (("kameng", base + "/", None), ("bare", bare_base + "/page", None)),
        }
        print(f"versus_bare: {args.rounds} rounds of {args.duration}s, {args.connections} connections, "
              f"waitress {args.threads} threads, keys {keys}", file=sys.stderr)
        for pair in pairs:  # warm-up: templates compiled, pools filled
            for _name, url, script in targets[pair]:
                wrk(url, args.connections, 2, script)
        runs: dict = {pair: {"kameng": [], "bare": []} for pair in pairs}
        for r in range(args.rounds):
            for pair in pairs:
                for name, url, script in targets[pair]:
                    result = wrk(url, args.connections, args.duration, script)
                    runs[pair][name].append(result)
                    print(f"round {r + 1} {pair:<6} {name:<6} {json.dumps(result)}", file=sys.stderr)
        figures = {}
        for pair in pairs:
            k, b = runs[pair]["kameng"], runs[pair]["bare"]
            ratios = [x["rps"] / y["rps"] for x, y in zip(k, b) if y["rps"]]
            figures[pair] = {
                "kameng_rps": statistics.median(x["rps"] for x in k),
                "bare_rps": statistics.median(x["rps"] for x in b),
                "ratio": round(statistics.median(ratios), 3) if ratios else None,
                "kameng_p50_ms": statistics.median(x["p50_ms"] or 0 for x in k),
                "kameng_p99_ms": statistics.median(x["p99_ms"] or 0 for x in k),
                "bare_p99_ms": statistics.median(x["p99_ms"] or 0 for x in b),
                "kameng_errors": sum(x["non2xx"] + x["socket_errors"] for x in k),
                "bare_errors": sum(x["non2xx"] + x["socket_errors"] for x in b),
                "rounds": runs[pair],
            }
        figures["kameng_peak_rss_mib"] = round(proc_status(server.pid, "VmHWM"), 1)
        figures["bare_peak_rss_mib"] = round(proc_status(bare.pid, "VmHWM"), 1)
        print(json.dumps({"bench": "versus_bare", "db": "sqlite", "page_cache": not args.no_page_cache,
                          "connections": args.connections,
                          "threads": args.threads, "duration_s": args.duration, **figures}))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


PRODUCT = r'''
import sys
from pyramid.paster import get_app
from sqlalchemy import select
from kameng.catalog.models import Sku
from kameng.cli.commands import request_for
app = get_app(sys.argv[1])
with request_for(app.registry) as req:
    print(req.db.scalar(select(Sku.product_id).where(Sku.code == "BENCH")))
app.registry["kameng.engine"].dispose()
'''


def product_of(ini: str) -> int:
    out = subprocess.run([sys.executable, "-c", PRODUCT, ini], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
