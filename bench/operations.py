"""What the operations plugins (coupons, distribution, antifraud) cost on the order path.

One throw-away shop, made and started as a user starts one (`kameng init`,
`kameng serve` with its embedded worker; the helpers of bench/buyer_flow.py),
a card-key SKU at 1.00 with enough keys, and C concurrent clients each
sending `POST /api/v1/orders` (sandbox payment, one key, a new contact per
order) on a keep-alive connection until N orders are placed, in three
configurations, one after the other against the same running server:

  a  coupons, distribution and antifraud disabled;
  b  coupons on (a running promotion "0.10 off from 0.50" and a many-use
     coupon "0.05 off", with a per-buyer limit, named by every order),
     distribution on (levels 2, 5 % and 2 %; every buyer bound under a
     2-level referral chain), antifraud on with every rate limit at
     1,000,000, the unpaid caps at their highest (1000), a 20-line blacklist
     and a 5-line watchlist that match nobody, and a purchase limit of
     1,000,000 per buyer on the product: every check runs, none refuses.
     Counters in the database (PostgreSQL, MariaDB) or, on SQLite, in the
     server's memory (the plugin's choice there);
  c  as b with antifraud's redis_url = redis://127.0.0.1:6379/<--redis-db>
     (skipped, with a note, when no Redis answers there).

`--only` picks and orders them, and also knows `coupons`, `distribution`
and `antifraud`: that plugin alone, with b's settings (which one costs
what). A configuration named twice runs twice (`--only a,b,a`: the drift
of a run, as the orders pile up and the machine's load moves).

The plugins are switched and configured while the server runs, as a
merchant does: `PATCH /api/v1/admin/plugins/{id}` with an admin token made
by `kameng admin token create`, coupons through `POST /api/v1/admin/coupons`.
The promotion, buyers, referral chain and purchase limit are written by a
set-up script before the server starts (they have no JSON API).

Orders come from signed-in buyers (bearer tokens; `--guests`: guest orders
with a query password instead), each client its own buyer and its own
address (`X-Forwarded-For` from 127.0.0.1, which the ini of `kameng init`
trusts, as behind nginx; `--one-address`: all from 127.0.0.1). Each
configuration starts with `--warmup` unmeasured orders; afterwards its
unpaid orders are expired through the core (unmeasured), so the next one
starts with none pending. The reconciliation query each order queues (due
after 5 minutes) is pushed past the run (kameng.payments.query_delay_scale
in the bench's ini), so a long run's later configurations do not also run
the earlier ones' queries. `--pay` also pays every order with a signed
sandbox notify (measured as its own step): the keys are delivered in the
notify's transaction, where distribution credits its commissions.

Then, under configuration b, K concurrent orders (a barrier releases them
together) name one single-use coupon: wall time, how many got it (must be
1) and how many got 409 coupon_unavailable, checked in the database too.

A table goes to stderr; stdout gets ONE JSON line: per configuration,
orders/s, p50/p95/p99/max of the order (and notify) latency, errors by
status and code, the server's RSS (VmRSS) and peak (VmHWM) at its end; the
ratios against a; the race's figures.

Usage: python bench/operations.py [--clients 8] [--orders 600] [--race 20] [--warmup 64]
                                  [--guests] [--one-address] [--pay] [--threads 8]
                                  [--redis-db 13] [--no-redis]
                                  [--only a,b,c | a,coupons,distribution,antifraud,b,c,a]
                                  [--db URL --reset] [--keep]

--db needs a database of its own: with --reset the bench first drops every
table in it (never point it at a shop).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from buyer_flow import (
    SETUP,
    Client,
    free_port,
    init_shop,
    percentiles,
    proc_status,
    wait_until_up,
)

BUYER_PASSWORD = "bench-buyer-password-1"
PRICE, AFTER_COUPON = "1.00", "0.85"  # the list price; after the promotion (0.10) and coupon (0.05)
OPERATIONS = ("coupons", "distribution", "antifraud")
HIGH = 1_000_000
BLACKLIST = "\n".join(["# a merchant's list: none of these is a bench buyer"]
                      + [f"fraud{i}@bad.example" for i in range(8)]
                      + ["*@spam.example", "*@*.burner.example", "bot*@example.org",
                         "+86 139 0000 1111", "13900002222", "192.0.2.7", "192.0.2.128/25", "2001:db8:bad::/48",
                         "2001:db8::1", "100.64.0.0/10", "fraud-a@bad.example", "fraud-b@bad.example"])
WATCHLIST = "watch@watch.example\n*@watch2.example\n13700001111\n192.0.2.99\n2001:db8:beef::/48"
ANTIFRAUD = {
    **{name: HIGH for name in ("orders_per_ip_per_minute", "orders_per_contact_per_hour",
                               "orders_per_account_per_hour", "lookups_per_ip_per_minute",
                               "logins_per_ip_per_minute", "registrations_per_ip_per_hour",
                               "password_resets_per_ip_per_hour", "coupon_attempts_per_ip_per_minute")},
    "max_unpaid_per_contact": 1000, "max_unpaid_per_ip": 1000,
    "blacklist": BLACKLIST, "watchlist": WATCHLIST, "captcha": "", "redis_url": "",
}

SETUP_OPS = r'''
import datetime as dt, json, sys
from pyramid.paster import get_app
from sqlalchemy import select
from kameng import accounts
from kameng.catalog.models import Sku
from kameng.cli.commands import request_for
from kameng_antifraud.models import ProductLimit
from kameng_coupons import service as coupons
from kameng_coupons.models import Promotion
from kameng_distribution import members

app = get_app(sys.argv[1])
buyers, password = int(sys.argv[2]), sys.argv[3]
with request_for(app.registry, actor="bench") as req:
    db, now = req.db, dt.datetime.now(dt.timezone.utc)
    product_id = db.scalar(select(Sku.product_id).where(Sku.code == "BENCH"))
    # two referrers above every buyer: buyer -> mid -> top
    top = accounts.create_user(db, "ref-top@example.com", password)
    mid = accounts.create_user(db, "ref-mid@example.com", password)
    members.ensure(db, top.id)
    members.bind(db, mid.id, members.get(db, top.id), "bench")
    tokens = []
    for i in range(buyers):
        user = accounts.create_user(db, f"buyer{i}@example.com", password)
        members.bind(db, user.id, members.get(db, mid.id), "bench")
        tokens.append(accounts.create_token(db, user, "bench"))
    values = coupons.promotion_values(db, {"name": "Bench promotion", "scope": "all", "tiers": [
        {"threshold": "0.50", "kind": "amount", "value": "0.10"}]}, req.shop["currency"])
    db.add(Promotion(**values, created_at=now, updated_at=now))
    db.add(ProductLimit(product_id=product_id, max_quantity=1000000, window_days=30))
app.registry["kameng.engine"].dispose()
print(json.dumps({"tokens": tokens}))
'''

# the unpaid orders of a configuration expire through the core (stock and coupon uses given back)
EXPIRE = r'''
import datetime as dt, json, sys
from pyramid.paster import get_app
from sqlalchemy import update
from kameng.cli.commands import request_for
from kameng.db import utcnow
from kameng.orders import service
from kameng.orders.models import Order

app = get_app(sys.argv[1])
with request_for(app.registry, actor="bench") as req:
    req.db.execute(update(Order).where(Order.status == "pending")
                   .values(expires_at=utcnow() - dt.timedelta(minutes=1)).execution_options(synchronize_session=False))
total = 0
while True:
    with request_for(app.registry, actor="bench") as req:
        done = service.expire_due(req, {"batch": 200})
    total += done
    if not done:
        break
app.registry["kameng.engine"].dispose()
print(json.dumps({"expired": total}))
'''

CHECK = r'''
import json, sys
from pyramid.paster import get_app
from sqlalchemy import func, select
from kameng.cli.commands import request_for
from kameng.inventory.models import CardKey
from kameng.orders.models import Order
from kameng_coupons.models import Coupon, Redemption
from kameng_distribution.models import Commission

app = get_app(sys.argv[1])
codes = sys.argv[2:]
with request_for(app.registry) as req:
    db = req.db
    out = {"keys": dict(db.execute(select(CardKey.state, func.count()).group_by(CardKey.state)).all()),
           "orders": dict(db.execute(select(Order.status, func.count()).group_by(Order.status)).all()),
           "commissions": db.scalar(select(func.count()).select_from(Commission)) or 0, "coupons": {}}
    for code in codes:
        coupon = db.scalar(select(Coupon).where(Coupon.code == code))
        if coupon is not None:
            out["coupons"][code] = {"used": coupon.used, "max_uses": coupon.max_uses, "redemptions": dict(db.execute(
                select(Redemption.status, func.count()).where(Redemption.coupon_id == coupon.id)
                .group_by(Redemption.status)).all())}
app.registry["kameng.engine"].dispose()
print(json.dumps(out))
'''


#: name → (label, plugins enabled); the one-plugin configurations use b's settings
CONFIGURATIONS = {
    "a": ("plugins off", ()),
    "coupons": ("coupons alone", ("coupons",)),
    "distribution": ("distribution alone", ("distribution",)),
    "antifraud": ("antifraud alone, COUNTERS counters", ("antifraud",)),
    "b": ("all three, COUNTERS counters", OPERATIONS),
    "c": ("all three, Redis counters", OPERATIONS),
}


def db_check(ini: str, codes: list[str]) -> dict:
    res = subprocess.run([sys.executable, "-c", CHECK, ini, *codes], check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _code(raw: bytes) -> str:
    try:
        return json.loads(raw)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return raw[:40].decode(errors="replace")


def redis_ok(db_index: int) -> str | None:
    """None when a Redis answers PING on 127.0.0.1:6379, else why not."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    try:
        client = redis.Redis(host="127.0.0.1", port=6379, db=db_index, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
        client.close()
    except (redis.exceptions.RedisError, OSError) as exc:
        return f"no Redis on 127.0.0.1:6379 ({type(exc).__name__})"
    return None


def redis_keys(db_index: int, prefix: str) -> int:
    """How many keys the bench's counters made (proof that c counted in Redis)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=db_index, socket_timeout=2)
    try:
        return sum(1 for _ in client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()


def redis_cleanup(db_index: int, prefix: str) -> int:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=db_index, socket_timeout=2)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    client.close()
    return len(keys)


class Admin:
    """The admin JSON API with a bearer token, as a merchant's script uses it."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                         headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise SystemExit(f"{method} {path}: {resp.status} {raw[:300]!r}")
        return json.loads(raw)

    def plugin(self, plugin_id: str, enabled: bool | None = None, **settings) -> dict:
        body: dict = {}
        if settings:
            body["settings"] = settings
        if enabled is not None:
            body["enabled"] = enabled
        return self.call("PATCH", f"/api/v1/admin/plugins/{plugin_id}", body)


def order_body(args, run: int, client: int, n: int, coupon: str | None) -> bytes:
    """An order's JSON; its contact is new in the whole bench (RUN numbers the loads)."""
    body = {"sku": "BENCH", "quantity": 1, "payment_method": "sandbox",
            "contact": f"r{run}-c{client}-{n}@example.com"}
    if args.guests:
        body["query_password"] = "bench-pass"
    if coupon:
        body["coupon"] = coupon
    return json.dumps(body).encode()


def headers_for(args, tokens: list[str], client: int) -> dict:
    headers = {"Content-Type": "application/json"}
    if not args.guests:
        headers["Authorization"] = f"Bearer {tokens[client % len(tokens)]}"
    if not args.one_address:
        # one address per client, as the buyers behind nginx (waitress trusts 127.0.0.1's X-Forwarded-For)
        headers["X-Forwarded-For"] = f"198.51.100.{client % 250 + 1}"
    return headers


RUNS = [0]


def load(args, port: int, tokens: list[str], secret: str, total: int, coupon: str | None, expect: str) -> dict:
    """C clients place TOTAL orders; latencies of the measured steps, errors."""
    from kameng_sandbox.gateway import signed_fields

    RUNS[0] += 1
    run = RUNS[0]
    lat: dict[str, list[float]] = {"create": [], "notify": []}
    errors: dict[str, int] = {}
    lock = threading.Lock()
    remaining = [total]
    done = [0]

    def error(key: str) -> None:
        with lock:
            errors[key] = errors.get(key, 0) + 1

    def client(i: int) -> None:
        conn = Client(port)
        headers = headers_for(args, tokens, i)
        n = 0
        try:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                n += 1
                t0 = time.perf_counter()
                try:
                    status, raw = conn.request("POST", "/api/v1/orders", order_body(args, run, i, n, coupon), headers)
                except OSError as exc:
                    error(f"create:{type(exc).__name__}")
                    continue
                t1 = time.perf_counter()
                if status != 201:
                    error(f"create:{status}:{_code(raw)}")
                    continue
                order = json.loads(raw)
                with lock:
                    lat["create"].append(t1 - t0)
                if order.get("amount") != expect:
                    error(f"create:amount_{order.get('amount')}")
                if not args.pay:
                    with lock:
                        done[0] += 1
                    continue
                payment = order["payment"]
                fields = signed_fields(payment["attempt_no"], payment["amount"], "paid", secret)
                try:
                    status, raw = conn.request("POST", "/pay/sandbox/notify", urllib.parse.urlencode(fields).encode(),
                                               {"Content-Type": "application/x-www-form-urlencoded"})
                except OSError as exc:
                    error(f"notify:{type(exc).__name__}")
                    continue
                t2 = time.perf_counter()
                if status != 200 or raw != b"success":
                    error(f"notify:{status}:{raw[:40]!r}")
                    continue
                with lock:
                    lat["notify"].append(t2 - t1)
                    done[0] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    out = {"orders": total, "ok": done[0], "seconds": round(elapsed, 2),
           "orders_per_s": round(done[0] / elapsed, 1) if elapsed else None,
           "latency_ms": {"create": percentiles(lat["create"])}, "errors": errors}
    if args.pay:
        out["latency_ms"]["notify"] = percentiles(lat["notify"])
    return out


def race(args, port: int, tokens: list[str], code: str) -> dict:
    """K orders at once naming one single-use coupon."""
    results: list[tuple[int, str, float, float]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(args.race)

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.connect()
        body, headers = order_body(args, 0, i, 0, code), headers_for(args, tokens, i)
        barrier.wait()
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/orders", body=body, headers=headers)
            resp = conn.getresponse()
            status, raw = resp.status, resp.read()
            what = "created" if status == 201 else f"{status}:{_code(raw)}"
            if status == 201 and json.loads(raw).get("amount") != AFTER_COUPON:
                what = "created_without_coupon"
        except (OSError, http.client.HTTPException) as exc:
            what = type(exc).__name__
        t1 = time.perf_counter()
        conn.close()
        with lock:
            results.append((i, what, t0, t1))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.race)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcome: dict[str, int] = {}
    for _i, what, _t0, _t1 in results:
        outcome[what] = outcome.get(what, 0) + 1
    wall = max(r[3] for r in results) - min(r[2] for r in results)
    return {"orders": args.race, "wall_ms": round(wall * 1000, 1), "got_coupon": outcome.get("created", 0),
            "coupon_unavailable": outcome.get("409:coupon_unavailable", 0),
            "other": {k: v for k, v in outcome.items() if k not in ("created", "409:coupon_unavailable")},
            "latency_ms": percentiles([r[3] - r[2] for r in results])}


def fmt_ms(p: dict, key: str) -> str:
    return f"{p[key]:.0f}" if p.get("n") else "-"


def table(out: dict) -> str:
    pay = out["pay"]
    head = f"{'config':<13} {'ok/orders':>10} {'orders/s':>9} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6}"
    if pay:
        head += f" {'notify p50/p99':>15}"
    head += f" {'RSS MiB':>8} {'peak':>6}  {'errors':<8} plugins"
    lines = [head, "-" * (len(head) + 30)]
    for name, conf in out["configurations"].items():
        if "skipped" in conf:
            lines.append(f"{name:<13} skipped: {conf['skipped']}")
            continue
        c = conf["latency_ms"]["create"]
        line = (f"{name:<13} {str(conf['ok']) + '/' + str(conf['orders']):>10} {conf['orders_per_s']:>9} "
                f"{fmt_ms(c, 'p50'):>6} {fmt_ms(c, 'p95'):>6} {fmt_ms(c, 'p99'):>6} {fmt_ms(c, 'max'):>6}")
        if pay:
            nt = conf["latency_ms"]["notify"]
            line += f" {fmt_ms(nt, 'p50') + '/' + fmt_ms(nt, 'p99'):>15}"
        errors = json.dumps(conf["errors"]) if conf["errors"] else "0"
        line += f" {conf['rss_mib']:>8} {conf['rss_peak_mib']:>6}  {errors:<8} {conf['label']}"
        lines.append(line)
    lines.append("latencies of POST /api/v1/orders in ms" + (" (notify: the signed sandbox notify)" if pay else "")
                 + f"; {out['buyers']}, addresses: {out['addresses']}")
    for name, ratio in out["ratios_vs_a"].items():
        lines.append(f"{name} against a: orders/s x{ratio['orders_per_s']}, p50 x{ratio['p50']}, "
                     f"p99 x{ratio['p99']}")
    r = out.get("race")
    if r:
        lines.append(f"single-use coupon race (configuration b): {r['orders']} orders at once, wall {r['wall_ms']} ms, "
                     f"got the coupon {r['got_coupon']} (must be 1), 409 coupon_unavailable {r['coupon_unavailable']}, "
                     f"other {r['other'] or 0}; in the database right after: used {r['db_used']}, "
                     f"redemptions {r['db_redemptions']}")
    lines.append(f"load average at the end: {out['load_average']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (C)")
    ap.add_argument("--orders", type=int, default=600, help="measured orders per configuration (N)")
    ap.add_argument("--race", type=int, default=20, help="concurrent orders naming one single-use coupon (K; 0: none)")
    ap.add_argument("--warmup", type=int, default=64,
                    help="unmeasured orders at the start of each configuration (the first uses after "
                         "a switch stay out of the figures)")
    ap.add_argument("--guests", action="store_true", help="guest orders (default: signed-in buyers)")
    ap.add_argument("--one-address", action="store_true", help="every order from 127.0.0.1 (default: one address "
                                                               "per client in X-Forwarded-For)")
    ap.add_argument("--pay", action="store_true", help="also pay every order (signed sandbox notify, measured)")
    ap.add_argument("--threads", type=int, default=8, help="waitress request threads")
    ap.add_argument("--redis-db", type=int, default=13, help="Redis database number for configuration c")
    ap.add_argument("--no-redis", action="store_true", help="skip configuration c")
    ap.add_argument("--only", default="a,b,c",
                    help="configurations to run, in this order (comma-separated): a, b, c, and coupons, "
                         "distribution, antifraud (that plugin alone, with b's settings); one named again "
                         "runs again (a,b,a shows the drift)")
    ap.add_argument("--db", help="database URL (default: SQLite in the temporary folder)")
    ap.add_argument("--reset", action="store_true", help="drop every table in --db first")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    wanted = [c.strip() for c in args.only.split(",") if c.strip()]
    if not set(wanted) <= set(CONFIGURATIONS) or not wanted:
        ap.error("--only takes " + ", ".join(CONFIGURATIONS))
    if args.clients < 1 or args.orders < 1 or args.race < 0 or args.warmup < 0:
        ap.error("--clients and --orders must be positive, --race and --warmup not negative")
    if not args.one_address and args.clients > 250:
        ap.error("at most 250 clients (one address each)")
    per_holder = (args.orders + args.warmup + args.race) if args.one_address else \
        -(-(args.orders + args.warmup + args.race) // args.clients)
    if per_holder >= 1000 and not args.pay:
        ap.error("antifraud's unpaid caps stop at 1000: fewer unpaid orders per address and buyer, please "
                 "(more --clients, fewer --orders, or --pay)")

    kameng = [sys.executable, "-m", "kameng.cli"]
    tmp = tempfile.mkdtemp(prefix="kameng-operations-bench-")
    port = free_port()
    server, log = None, None
    redis_prefix = f"kameng-bench-{secrets.token_hex(4)}:"
    used_redis = False
    db_kind = args.db.split("+")[0].split(":")[0] if args.db else "sqlite"
    try:
        if args.db and args.reset:
            from kameng.db import drop_all_tables, make_engine

            engine = make_engine(args.db)
            drop_all_tables(engine)
            engine.dispose()
        ini = init_shop(kameng, tmp, port, db=args.db)
        with open(ini) as fh:
            text = fh.read()
        # every order queues a reconciliation query of its sandbox attempt, due after 5 minutes: pushed past
        # the run, so that a long run's later configurations do not also run the earlier ones' queries
        with open(ini, "w") as fh:
            fh.write(text.replace("[app:main]\n", "[app:main]\nkameng.payments.query_delay_scale = 1000\n", 1))
        keys = len(wanted) * (args.orders + args.warmup) + args.race + 50
        print(f"operations bench: {args.clients} clients, {args.orders} orders per configuration "
              f"({', '.join(wanted)}), {'guests' if args.guests else 'signed-in buyers'}, "
              f"{'one address' if args.one_address else 'one address per client'}, waitress {args.threads} threads, "
              f"db {args.db.split('@')[-1] if args.db else 'sqlite'}; setting up {keys} keys", file=sys.stderr)
        setup = subprocess.run([sys.executable, "-c", SETUP, ini, str(keys), "1"], check=True, capture_output=True,
                               text=True)
        secret = json.loads(setup.stdout.strip().splitlines()[-1])["secret"]
        ops = subprocess.run([sys.executable, "-c", SETUP_OPS, ini, str(args.clients), BUYER_PASSWORD], check=True,
                             capture_output=True, text=True)
        tokens = json.loads(ops.stdout.strip().splitlines()[-1])["tokens"]
        admin_token = subprocess.run([*kameng, "-c", ini, "admin", "token", "create", "bench"], check=True,
                                     capture_output=True, text=True).stdout.strip().splitlines()[-1]
        log = open(os.path.join(tmp, "serve.log"), "wb")  # noqa: SIM115 - closed in finally
        server = subprocess.Popen([*kameng, "-c", ini, "serve", "--threads", str(args.threads)], stdout=log,
                                  stderr=log)
        if not wait_until_up(f"http://127.0.0.1:{port}/healthz"):
            raise SystemExit("the server did not start; see " + os.path.join(tmp, "serve.log"))
        admin = Admin(port, admin_token)
        for plugin_id in OPERATIONS:
            admin.plugin(plugin_id, enabled=False)

        def expire() -> int:
            res = subprocess.run([sys.executable, "-c", EXPIRE, ini], check=True, capture_output=True, text=True)
            return json.loads(res.stdout.strip().splitlines()[-1])["expired"]

        counters = "memory" if db_kind == "sqlite" else "database"
        many_use, single_use = "BENCH-MANY", "BENCH-ONCE"
        configured = [False]

        def configure_once() -> None:
            """The settings and coupons of b, made once (the coupons API answers only while coupons is on)."""
            if configured[0]:
                return
            admin.plugin("coupons", enabled=True)
            admin.call("POST", "/api/v1/admin/coupons", {"code": many_use, "kind": "fixed", "value": "0.05",
                                                         "max_uses": 10 ** 9, "per_buyer": 10 ** 6})
            admin.call("POST", "/api/v1/admin/coupons", {"code": single_use, "kind": "fixed", "value": "0.05",
                                                         "max_uses": 1})
            admin.plugin("distribution", levels=2, rate_1="5", rate_2="2")
            admin.plugin("antifraud", **ANTIFRAUD)
            configured[0] = True

        results: dict[str, dict] = {}
        race_out = None
        for name in wanted:
            label, enabled = CONFIGURATIONS[name]
            key = name
            for again in range(2, 100):
                if key not in results:
                    break
                key = f"{name}#{again}"  # a configuration run again (drift: --only a,b,a)
            if enabled:
                configure_once()
            if name == "c":
                why = "--no-redis" if args.no_redis else redis_ok(args.redis_db)
                if why:
                    results[key] = {"label": label, "skipped": why}
                    print(f"configuration c skipped: {why}", file=sys.stderr)
                    continue
                admin.plugin("antifraud", redis_url=f"redis://127.0.0.1:6379/{args.redis_db}",
                             redis_prefix=redis_prefix)
                used_redis = True
            elif "antifraud" in enabled:
                admin.plugin("antifraud", redis_url="")
            for plugin_id in OPERATIONS:
                admin.plugin(plugin_id, enabled=plugin_id in enabled)
            coupon, expect = (many_use, AFTER_COUPON) if "coupons" in enabled else (None, PRICE)
            if "antifraud" in enabled and name != "c":
                label = label.replace("COUNTERS", counters)
            print(f"configuration {key}: {label}", file=sys.stderr)
            if args.warmup:
                load(args, port, tokens, secret, args.warmup, coupon, expect)
            res = load(args, port, tokens, secret, args.orders, coupon, expect)
            res["label"] = label
            res["enabled"] = list(enabled)
            res["rss_mib"] = round(proc_status(server.pid, "VmRSS"), 1)
            res["rss_peak_mib"] = round(proc_status(server.pid, "VmHWM"), 1)
            if name == "c":
                res["redis"] = f"redis://127.0.0.1:6379/{args.redis_db}"
                res["redis_keys"] = redis_keys(args.redis_db, redis_prefix)
            results[key] = res
            print(f"  {res['ok']}/{res['orders']} in {res['seconds']} s, {res['orders_per_s']} orders/s, "
                  f"p50 {res['latency_ms']['create'].get('p50')} ms, errors {res['errors'] or 0}", file=sys.stderr)
            res["expired_after"] = expire()
            if name == "b" and args.race and race_out is None:
                race_out = race(args, port, tokens, single_use)
                once = db_check(ini, [single_use])["coupons"].get(single_use, {})
                race_out["db_used"] = once.get("used")
                race_out["db_redemptions"] = once.get("redemptions")
                expire()
        if args.race and race_out is None:
            print("the single-use coupon race runs under configuration b, which was not run", file=sys.stderr)

        base = results.get("a")
        ratios = {}
        for name, res in results.items():
            if name == "a" or base is None or "skipped" in res or not base.get("ok") or not res.get("ok"):
                continue
            b50, b99 = base["latency_ms"]["create"]["p50"], base["latency_ms"]["create"]["p99"]
            ratios[name] = {"orders_per_s": round(res["orders_per_s"] / base["orders_per_s"], 2),
                            "p50": round(res["latency_ms"]["create"]["p50"] / b50, 2) if b50 else None,
                            "p99": round(res["latency_ms"]["create"]["p99"] / b99, 2) if b99 else None}
        check = db_check(ini, [many_use, single_use])
        out = {
            "bench": "operations", "db": db_kind, "clients": args.clients, "orders": args.orders,
            "warmup": args.warmup, "threads": args.threads, "buyers": "guests" if args.guests else
            "signed-in (bearer token), each under a 2-level referral chain", "addresses": "one (127.0.0.1)"
            if args.one_address else "one per client (X-Forwarded-For)", "pay": args.pay,
            "antifraud_counters_b": counters, "configurations": results, "ratios_vs_a": ratios, "race": race_out,
            "db_orders": check["orders"], "db_keys": check["keys"], "commissions": check["commissions"],
            "coupons": check["coupons"], "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        print(table(out), file=sys.stderr)
        print(json.dumps(out))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        if log is not None:
            log.close()
        if used_redis:
            try:
                redis_cleanup(args.redis_db, redis_prefix)
            except Exception as exc:  # noqa: BLE001 - best effort: the counters expire by themselves
                print(f"could not delete the bench's Redis keys ({type(exc).__name__})", file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
