"""Docked orders per second between two local kameng shops.

Two shops run in this process, each with its own SQLite database (or the
databases given with --up-db / --down-db, which are emptied first: never a
shop's), served by waitress on loopback, each with its own worker thread:

  upstream:   a card-key SKU with enough keys, an agent account with a
              balance and a docking key;
  downstream: the `dock` connector connected to the upstream, the SKU
              imported (10 % markup), the sandbox gateway on.

B buyer threads then each loop: POST /api/v1/orders downstream → the signed
sandbox notify → poll the order until it is delivered with its keys (the
downstream placed it upstream over HTTP, paid from the agent's balance, and
took the keys from the answer or the upstream's callback). Prints one JSON
line: docked orders/s, p50/p95/p99 of the whole flow, errors, peak RSS, and
a check that every key reached exactly one buyer.

Usage: python bench/docked.py [--buyers 20] [--orders 200] [--poll 0.2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def percentiles(values):
    if not values:
        return {"n": 0}
    values = sorted(values)

    def at(p):
        return round(values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))] * 1000, 1)

    return {"n": len(values), "p50": at(50), "p95": at(95), "p99": at(99), "mean": round(statistics.fmean(values) * 1000, 1)}


def make_shop(folder, name, url_db=None):
    from kameng.config import configure
    from kameng.crypto import new_key_line
    from kameng.migrate import upgrade
    from kameng.db import drop_all_tables
    from kameng.testing import LiveServer, free_port

    port = free_port()
    key_file = os.path.join(folder, f"{name}.key")
    with open(key_file, "w") as fh:
        fh.write(new_key_line() + "\n")
    url = url_db or f"sqlite:///{os.path.join(folder, name + '.sqlite')}"
    settings = {"sqlalchemy.url": url, "kameng.key_file": key_file, "kameng.session_secret": "bench-" + "x" * 40,
                "kameng.base_url": f"http://127.0.0.1:{port}", "kameng.data_dir": folder,
                "kameng.http.allow_private_targets": "true", "kameng.limits.orders_per_ip_per_minute": "0",
                "kameng.limits.lookups_per_ip_per_minute": "0", "kameng.jobs.poll_interval": "0.05",
                "kameng.suppliers.delay_scale": "0.1"}
    config = configure(settings)
    if url_db:
        drop_all_tables(config.registry["kameng.engine"])
    upgrade(config.registry["kameng.engine"], config.registry["kameng.plugins"])
    app = config.make_wsgi_app()
    server = LiveServer(app, port).start()
    server.registry = app.registry
    return server


def worker_loop(registry, stop):
    from kameng import jobs

    worker = jobs.Worker(registry, worker_id=f"bench-{id(registry)}")
    while not stop.is_set():
        if not worker.run_one():
            time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buyers", type=int, default=20)
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--poll", type=float, default=0.2)
    ap.add_argument("--up-db")
    ap.add_argument("--down-db")
    args = ap.parse_args()

    from kameng import accounts, wallet
    from kameng.catalog.models import Sku
    from kameng.dock.manage import issue
    from kameng.suppliers import connections, sync
    from kameng.testing import add_card_sku, app_request, set_plugin
    from kameng_sandbox.gateway import signed_fields
    from sqlalchemy import select

    folder = tempfile.mkdtemp(prefix="kameng-docked-")
    up, down = make_shop(folder, "up", args.up_db), make_shop(folder, "down", args.down_db)
    add_card_sku(up.registry, code="BENCH", price="1.00", keys=args.orders + 10, name="Bench card")
    with app_request(up.registry, actor="bench") as req:
        agent = accounts.create_user(req.db, "agent@bench.example", "bench-password-1", role="agent")
        wallet.post(req.db, agent.id, 100 * (args.orders + 10), "CNY", "admin", note="bench")
        key, secret = issue(req, agent, name="bench")
        key_id = key.key_id
    sandbox_secret = "bench-sandbox-secret-0123456789"
    set_plugin(down.registry, "sandbox", enabled=True, secret=sandbox_secret)
    set_plugin(down.registry, "dock", enabled=True)
    with app_request(down.registry, actor="bench") as req:
        c = connections.save_connection(req, None, "dock", "up", {"url": up.url, "key_id": key_id, "secret": secret})
        sync.import_goods(req, c, [g.id for g in connections.connector_for(req, c).list_goods()], ("markup", "10", 1))
        code = req.db.scalar(select(Sku.code))

    stop = threading.Event()
    workers = [threading.Thread(target=worker_loop, args=(r, stop), daemon=True) for r in (up.registry, down.registry)]
    for w in workers:
        w.start()

    lock = threading.Lock()
    todo = iter(range(args.orders))
    flows, errors, keys = [], {}, []

    def call(method, path, body=None, form=None):
        data = json.dumps(body).encode() if body is not None else urllib.parse.urlencode(form).encode() if form else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        req = urllib.request.Request(down.url + path, method=method, data=data, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw[:1] == b"{" else raw

    def buyer():
        while True:
            with lock:
                n = next(todo, None)
            if n is None:
                return
            started = time.monotonic()
            try:
                made = call("POST", "/api/v1/orders", {"sku": code, "quantity": 1, "contact": f"b{n}@bench.example",
                                                       "query_password": "pass1234", "payment_method": "sandbox"})
                call("POST", "/pay/sandbox/notify",
                     form=signed_fields(made["payment"]["attempt_no"], made["amount"], "paid", sandbox_secret))
                while True:
                    order = call("GET", f"/api/v1/orders/{made['order_no']}?token={made['access_token']}")
                    if order["status"] in ("delivered", "failed", "refunded"):
                        break
                    time.sleep(args.poll)
                if order["status"] != "delivered":
                    raise RuntimeError(order["status"])
                with lock:
                    flows.append(time.monotonic() - started)
                    keys.extend(k["secret"] for k in order["items"][0]["keys"])
            except Exception as exc:  # counted, the bench goes on
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=buyer) for _ in range(args.buyers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    stop.set()
    print(json.dumps({"bench": "docked", "buyers": args.buyers, "orders": args.orders, "delivered": len(flows),
                      "seconds": round(elapsed, 1), "docked_orders_per_s": round(len(flows) / elapsed, 2),
                      "flow_ms": percentiles(flows), "errors": errors,
                      "keys_unique": len(keys) == len(set(keys)), "keys": len(keys),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "databases": [str(up.registry["kameng.engine"].url.drivername),
                                    str(down.registry["kameng.engine"].url.drivername)]}))
    up.stop()
    down.stop()


if __name__ == "__main__":
    main()
