"""The whole buyer flow under load, against a shop started as a user starts one.

`kameng init` makes a throw-away shop (SQLite in a temporary folder, or the
database given with --db), a SKU gets enough card keys, and `kameng serve`
(waitress, its embedded worker delivering) runs on a free port with the
core's per-address limits off. Then B concurrent buyers each loop through:

  POST /api/v1/orders  →  POST /pay/sandbox/notify (signed with the shop's
  sandbox secret)  →  GET /api/v1/orders/{no}?token=… every --poll seconds
  until the order is delivered with its keys

until --orders flows are done. Prints one JSON line: orders/s, p50/p95/p99
of each step and of the whole flow, errors by step, the server's peak RSS,
and a check that no key was handed to two orders.

Usage: python bench/buyer_flow.py [--buyers 100] [--orders 1000] [--quantity 1]
                                  [--threads 8] [--poll 1.0] [--workers N] [--db URL --reset]
                                  [--poll-interval S] [--keep]

--db needs a database of its own: with --reset the bench first drops every
table in it (never point it at a shop). --poll-interval sets the worker's
idle poll (kameng.jobs.poll_interval, default 1 s) in the bench's ini.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int, field: str) -> float:
    """A /proc/PID/status memory figure in MiB (VmHWM: peak RSS, VmRSS: now)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values = sorted(values)

    def at(p):
        return values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))] * 1000

    return {"n": len(values), "p50": round(at(50), 1), "p95": round(at(95), 1), "p99": round(at(99), 1),
            "max": round(values[-1] * 1000, 1), "mean": round(statistics.fmean(values) * 1000, 1)}


SETUP = r'''
import json, sys
from pyramid.paster import get_app
from sqlalchemy import select
from kameng.catalog import service as catalog
from kameng.catalog.models import Sku
from kameng.cli.commands import request_for
from kameng.inventory import service as inventory
from kameng.pluginhost import set_enabled

app = get_app(sys.argv[1])
registry = app.registry
keys, quantity = int(sys.argv[2]), int(sys.argv[3])
with request_for(registry, actor="bench") as req:
    set_enabled(req, "sandbox", True)
    catalog.save_product(req.db, {"name": "Bench card", "type": "card_key",
                                  "skus": [{"code": "BENCH", "name": "1 yuan", "price": "1.00",
                                            "max_quantity": max(quantity, 1)}]}, "CNY")
    sku_id = req.db.scalar(select(Sku.id).where(Sku.code == "BENCH"))
    secret = req.plugin_settings("sandbox")["secret"]
factory = registry["kameng.session_factory"]
inventory.import_keys(lambda: factory(bind=registry["kameng.write_engine"]), registry["kameng.keyring"], sku_id,
                      (f"BENCH-{i:08d}" for i in range(keys)), chunk=5000)
registry["kameng.engine"].dispose()
print(json.dumps({"secret": secret, "sku_id": sku_id}))
'''

CHECK = r'''
import json, sys
from pyramid.paster import get_app
from sqlalchemy import func, select
from kameng.cli.commands import request_for
from kameng.inventory.models import CardKey
from kameng.orders.models import Order

app = get_app(sys.argv[1])
with request_for(app.registry) as req:
    states = dict(req.db.execute(select(CardKey.state, func.count()).group_by(CardKey.state)).all())
    orders = dict(req.db.execute(select(Order.status, func.count()).group_by(Order.status)).all())
app.registry["kameng.engine"].dispose()
print(json.dumps({"keys": states, "orders": orders}))
'''


def init_shop(kameng: list[str], tmp: str, port: int, db: str | None = None, poll_interval: float | None = None) -> str:
    """`kameng init` a shop in TMP/shop listening on PORT, with the core's
    per-address limits off and logs at WARNING; returns its ini file."""
    init = [*kameng, "init", "--data", f"{tmp}/shop", "--listen", f"127.0.0.1:{port}",
            "--base-url", f"http://127.0.0.1:{port}", "--admin-password", "bench-admin-password-1"]
    if db:
        init += ["--db", db]
    subprocess.run(init, check=True, capture_output=True)
    ini = f"{tmp}/shop/kameng.ini"
    with open(ini) as fh:
        text = fh.read()
    text = re.sub(r"kameng\.limits\.(\w+) = \d+", r"kameng.limits.\1 = 0", text)
    if poll_interval is not None:
        text = text.replace("[app:main]\n", f"[app:main]\nkameng.jobs.poll_interval = {poll_interval}\n", 1)
    # the bench measures the shop, not its log volume
    text = text.replace("[logger_kameng]\nlevel = INFO", "[logger_kameng]\nlevel = WARNING")
    text = text.replace("[logger_waitress]\nlevel = INFO", "[logger_waitress]\nlevel = ERROR")
    with open(ini, "w") as fh:
        fh.write(text)
    return ini


def wait_until_up(url: str, tries: int = 200) -> bool:
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class Client:
    """One buyer's keep-alive HTTP/1.1 connection (one per flow: a buyer's
    visit; 100 connections held for the whole run would hit waitress's
    connection_limit of 100 and leave the last buyer waiting for a free one)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=100, help="concurrent buyers (threads with a connection each)")
    ap.add_argument("--orders", type=int, default=1000, help="flows in total")
    ap.add_argument("--quantity", type=int, default=1, help="keys per order")
    ap.add_argument("--threads", type=int, default=8, help="waitress request threads")
    ap.add_argument("--poll", type=float, default=1.0,
                    help="seconds between a buyer's order-page polls (the theme's page polls every 3 s)")
    ap.add_argument("--workers", type=int, default=0,
                    help="run `kameng serve --no-worker` and N separate `kameng worker` processes "
                         "(default: the worker thread embedded in serve)")
    ap.add_argument("--poll-interval", type=float, default=None, help="the worker's idle poll (seconds)")
    ap.add_argument("--db", help="database URL (default: SQLite in the temporary folder)")
    ap.add_argument("--reset", action="store_true", help="drop every table in --db first")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--flow-timeout", type=float, default=120, help="give a flow up after this many seconds")
    args = ap.parse_args()

    kameng = [sys.executable, "-m", "kameng.cli"]
    tmp = tempfile.mkdtemp(prefix="kameng-buyer-bench-")
    port = free_port()
    server, workers, log = None, [], None
    try:
        if args.db and args.reset:
            from kameng.db import make_engine
            from kameng.db import drop_all_tables

            engine = make_engine(args.db)
            drop_all_tables(engine)
            engine.dispose()
        ini = init_shop(kameng, tmp, port, db=args.db, poll_interval=args.poll_interval)
        keys = args.orders * args.quantity + 10
        setup = subprocess.run([sys.executable, "-c", SETUP, ini, str(keys), str(args.quantity)], check=True,
                               capture_output=True, text=True)
        secret = json.loads(setup.stdout.strip().splitlines()[-1])["secret"]
        log = open(os.path.join(tmp, "serve.log"), "wb")  # noqa: SIM115 - closed in finally
        serve = [*kameng, "-c", ini, "serve", "--threads", str(args.threads)]
        server = subprocess.Popen(serve + (["--no-worker"] if args.workers else []), stdout=log, stderr=log)
        workers = [subprocess.Popen([*kameng, "-c", ini, "worker"], stdout=log, stderr=log)
                   for _ in range(args.workers)]
        base = f"http://127.0.0.1:{port}"
        if not wait_until_up(base + "/healthz"):
            raise SystemExit("the server did not start; see " + os.path.join(tmp, "serve.log"))

        from kameng_sandbox.gateway import signed_fields

        lat = {"create": [], "notify": [], "poll_get": [], "until_delivered": [], "flow": []}
        errors: dict[str, int] = {}
        delivered_keys: list[str] = []
        polls = [0]
        lock = threading.Lock()
        remaining = [args.orders]
        print(f"buyer flow bench: {args.buyers} buyers, {args.orders} orders of {args.quantity}, "
              f"waitress {args.threads} threads, db {args.db.split('@')[-1] if args.db else 'sqlite'}",
              file=sys.stderr)

        def error(step: str, detail: str) -> None:
            with lock:
                key = f"{step}:{detail}"
                errors[key] = errors.get(key, 0) + 1

        def buyer(i: int) -> None:
            client = Client(port)
            n = 0
            while True:
                client.close()
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                n += 1
                body = json.dumps({"sku": "BENCH", "quantity": args.quantity, "contact": f"b{i}-{n}@example.com",
                                   "query_password": "bench-pass", "payment_method": "sandbox"}).encode()
                t0 = time.perf_counter()
                try:
                    status, raw = client.request("POST", "/api/v1/orders", body,
                                                 {"Content-Type": "application/json"})
                except OSError as exc:
                    error("create", type(exc).__name__)
                    continue
                t1 = time.perf_counter()
                if status != 201:
                    error("create", f"{status}:{_code(raw)}")
                    continue
                order = json.loads(raw)
                payment = order["payment"]
                fields = signed_fields(payment["attempt_no"], payment["amount"], "paid", secret)
                try:
                    status, raw = client.request("POST", "/pay/sandbox/notify", urllib.parse.urlencode(fields).encode(),
                                                 {"Content-Type": "application/x-www-form-urlencoded"})
                except OSError as exc:
                    error("notify", type(exc).__name__)
                    continue
                t2 = time.perf_counter()
                if status != 200 or raw != b"success":
                    error("notify", f"{status}:{raw[:40]!r}")
                    continue
                path = f"/api/v1/orders/{order['order_no']}?token={order['access_token']}"
                got = None
                while time.perf_counter() - t2 < args.flow_timeout:
                    g0 = time.perf_counter()
                    try:
                        status, raw = client.request("GET", path)
                    except OSError as exc:
                        error("poll", type(exc).__name__)
                        break
                    with lock:
                        lat["poll_get"].append(time.perf_counter() - g0)
                        polls[0] += 1
                    if status != 200:
                        error("poll", f"{status}:{_code(raw)}")
                        break
                    page = json.loads(raw)
                    if page["status"] == "delivered" and page["items"][0]["keys"]:
                        got = [k["secret"] for k in page["items"][0]["keys"]]
                        break
                    if page["status"] not in ("paid", "delivering", "pending"):
                        error("poll", f"status:{page['status']}")
                        break
                    time.sleep(args.poll)
                t3 = time.perf_counter()
                if got is None:
                    error("poll", "not_delivered")
                    continue
                if len(got) != args.quantity:
                    error("poll", f"{len(got)}_keys")
                with lock:
                    lat["create"].append(t1 - t0)
                    lat["notify"].append(t2 - t1)
                    lat["until_delivered"].append(t3 - t2)
                    lat["flow"].append(t3 - t0)
                    delivered_keys.extend(got)

        threads = [threading.Thread(target=buyer, args=(i,)) for i in range(args.buyers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        peak = proc_status(server.pid, "VmHWM")
        now = proc_status(server.pid, "VmRSS")
        worker_peaks = [round(proc_status(w.pid, "VmHWM"), 1) for w in workers]
        check = json.loads(subprocess.run([sys.executable, "-c", CHECK, ini], check=True, capture_output=True,
                                          text=True).stdout.strip().splitlines()[-1])
        done = len(lat["flow"])
        out = {
            "bench": "buyer_flow", "db": (args.db.split("+")[0].split(":")[0] if args.db else "sqlite"),
            "buyers": args.buyers, "orders": args.orders, "quantity": args.quantity, "threads": args.threads,
            "seconds": round(elapsed, 2), "delivered": done, "orders_per_s": round(done / elapsed, 1),
            "requests_per_s": round((2 * done + polls[0]) / elapsed, 1),
            "polls_per_order": round(polls[0] / done, 2) if done else None,
            "latency_ms": {k: percentiles(v) for k, v in lat.items()},
            "errors": errors,
            "duplicate_keys": len(delivered_keys) - len(set(delivered_keys)),
            "db_keys": check["keys"], "db_orders": check["orders"],
            "server_peak_rss_mib": round(peak, 1), "server_rss_end_mib": round(now, 1),
            "workers": args.workers or "embedded", "worker_peak_rss_mib": worker_peaks or None,
        }
        print(json.dumps(out))
    finally:
        for w in workers:
            w.terminate()
            w.wait(30)
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        if log is not None:
            log.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _code(raw: bytes) -> str:
    try:
        return json.loads(raw)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return raw[:40].decode(errors="replace")


if __name__ == "__main__":
    sys.exit(main())
