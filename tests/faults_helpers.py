"""Shared parts of the fault tests (tests/test_faults_*.py): real ``kameng``
processes started through tests/fault_launcher.py with a fault armed, an
upstream supplier whose order book is a file (so it outlives the shop's
processes, as a real supplier would), plain HTTP on 127.0.0.1, and one
check of the books that every test ends with."""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kameng import jobs
from kameng.catalog.models import Sku
from kameng.inventory.models import AVAILABLE, RESERVED, SOLD, CardKey
from kameng.orders.models import Order, OrderEvent, Refund
from kameng.payments.models import PaymentAttempt
from kameng.suppliers.models import SkuUpstream, UpstreamOrder
from kameng.wallet import LedgerEntry

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "fault_launcher.py")

UPSTREAM_ID = "faultupstream"
UPSTREAM_SKU = "FUP5"

#: a supplier connector for the fault tests, installed for the ``kameng``
#: processes as a distribution on PYTHONPATH (and loaded by the test process
#: from the same file). Its upstream keeps every order it takes in a file
#: (``FAULT_UPSTREAM_BOOK``): one line per *placing*, so a second placing of
#: one number shows as a second line. It is not idempotent on the number:
#: the core must ask before it places again. With ``FAULT_UPSTREAM_TIMEOUT``
#: set, the first placing of a number is taken and then answered with a
#: time-out; with ``FAULT_UPSTREAM_FAIL`` set, every order fails upstream.
UPSTREAM_PLUGIN = textwrap.dedent('''
    import fcntl
    import json
    import os
    from decimal import Decimal

    from kameng import hookimpl
    from kameng.suppliers.base import SupplierConnector, SupplierError
    from kameng.types import PluginMeta, SettingField, UpstreamGoods, UpstreamResult, UpstreamSku

    PLUGIN = PluginMeta(name="Fault upstream (tests)", category="supplier")


    def _placings():
        path = os.environ.get("FAULT_UPSTREAM_BOOK", "")
        if not path or not os.path.exists(path):
            return []
        with open(path) as fh:
            return [json.loads(line) for line in fh if line.strip()]


    def _result(out_order_no, quantity):
        if os.environ.get("FAULT_UPSTREAM_FAIL"):
            return UpstreamResult("failed", out_order_no, "U" + out_order_no, message="no stock upstream")
        keys = tuple((None, f"UP-{out_order_no}-{i}") for i in range(quantity))
        return UpstreamResult("success", out_order_no, "U" + out_order_no, keys=keys)


    class FaultUpstream(SupplierConnector):
        identifier = "faultupstream"
        public_name = "Fault upstream"
        settings = (SettingField("token", "Token", required=True, secret=True),)

        def test_connection(self):
            return "ok"

        def list_goods(self):
            return [UpstreamGoods(id="FG1", name="Fault card", type="card_key", category="Faults",
                                  skus=(UpstreamSku(code="FUP5", name="5 yuan", cost=Decimal("4.00"), stock=100),))]

        def place_order(self, req):
            path = os.environ["FAULT_UPSTREAM_BOOK"]
            with open(path, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                earlier = sum(1 for p in _placings() if p["out_order_no"] == req.out_order_no)
                fh.write(json.dumps({"out_order_no": req.out_order_no, "quantity": req.quantity,
                                     "pid": os.getpid()}) + "\\n")
                fh.flush()
                os.fsync(fh.fileno())
            if os.environ.get("FAULT_UPSTREAM_TIMEOUT") and not earlier:
                raise SupplierError("the upstream did not answer in time", uncertain=True)
            return _result(req.out_order_no, req.quantity)

        def query_order(self, out_order_no):
            mine = [p for p in _placings() if p["out_order_no"] == out_order_no]
            return _result(out_order_no, mine[0]["quantity"]) if mine else None


    @hookimpl
    def kameng_supplier_connectors():
        return [FaultUpstream]
''')


def install_upstream_plugin(site) -> object:
    """Write the plugin as an installed distribution under ``site`` (for the
    processes' PYTHONPATH) and load it here too; gives the module."""
    os.makedirs(os.path.join(site, "kameng_faultupstream-1.0.dist-info"), exist_ok=True)
    path = os.path.join(site, "kameng_faultupstream.py")
    with open(path, "w") as fh:
        fh.write(UPSTREAM_PLUGIN)
    meta = os.path.join(site, "kameng_faultupstream-1.0.dist-info")
    with open(os.path.join(meta, "METADATA"), "w") as fh:
        fh.write("Metadata-Version: 2.1\nName: kameng-faultupstream\nVersion: 1.0\n")
    with open(os.path.join(meta, "entry_points.txt"), "w") as fh:
        fh.write(f"[kameng]\n{UPSTREAM_ID} = kameng_faultupstream\n")
    if "kameng_faultupstream" not in sys.modules:
        spec = importlib.util.spec_from_file_location("kameng_faultupstream", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["kameng_faultupstream"] = module
        spec.loader.exec_module(module)
    return sys.modules["kameng_faultupstream"]


def upstream_placings(book) -> list[dict]:
    if not os.path.exists(book):
        return []
    with open(book) as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        return [json.loads(line) for line in fh if line.strip()]


# -- processes --------------------------------------------------------------------------------


def write_ini(path, settings: dict, port: int) -> str:
    lines = ["[app:main]", "use = egg:kameng"]
    lines += [f"{k} = {str(v).replace('%', '%%')}" for k, v in settings.items() if not k.startswith("kameng.engine")]
    lines += ["", "[server:main]", "use = egg:waitress#main", f"listen = 127.0.0.1:{port}", "threads = 4", ""]
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    return str(path)


def wait_for(condition, what, timeout=60.0):
    """Poll ``condition`` until it holds: a guard against hanging, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


class Processes:
    """``kameng`` processes of one test: started through the launcher, each
    with its output in a log file; whatever is left is killed at the end."""

    def __init__(self, ini, tmp, port, env=None):
        self.ini, self.tmp, self.port = ini, str(tmp), port
        self.env = {**os.environ, **(env or {})}
        for name in ("KAMENG_CONFIG", "KAMENG_DATABASE_URL", "KAMENG_FAULT", "KAMENG_FAULT_MARKER",
                     "KAMENG_FAULT_SQLITE_PAGES"):
            self.env.pop(name, None)
        self.procs: list[subprocess.Popen] = []
        self.n = 0

    def marker(self, name="fault"):
        return os.path.join(self.tmp, f"{name}.fired")

    def start(self, *args, fault=None, env=None):
        self.n += 1
        env = {**self.env, **(env or {})}
        if fault:
            env.update(KAMENG_FAULT=fault, KAMENG_FAULT_MARKER=self.marker())
        log = open(os.path.join(self.tmp, f"proc-{self.n}-{args[0]}.log"), "wb")
        proc = subprocess.Popen([sys.executable, LAUNCHER, "-c", self.ini, *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=self.tmp)
        proc.log_path = log.name
        log.close()
        self.procs.append(proc)
        return proc

    def serve(self, fault=None, worker=True, port=None, wait=True):
        """``kameng serve`` (with its worker thread unless ``worker`` is
        false) on ``port`` (default: the shop's), once it answers; its
        address is ``proc.url``. With ``wait`` false, :meth:`up` waits later."""
        port = port or self.port
        proc = self.start("serve", "--port", str(port), *(() if worker else ("--no-worker",)), fault=fault)
        proc.port, proc.url = port, f"http://127.0.0.1:{port}"
        return self.up(proc) if wait else proc

    def up(self, proc):
        def listening():
            if proc.poll() is not None:
                raise AssertionError(f"kameng serve exited with {proc.returncode}: {self.output(proc)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", proc.port), timeout=0.5):
                return True
            return False

        wait_for(listening, "the server to listen")
        return proc

    def worker(self, fault=None, env=None):
        return self.start("worker", fault=fault, env=env)

    def output(self, proc) -> str:
        with open(proc.log_path, errors="replace") as fh:
            return fh.read()[-4000:]

    def killed(self, proc, timeout=60):
        """The process died of its own armed SIGKILL."""
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("the armed fault never fired: " + self.output(proc)) from None
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, self.output(proc))
        assert os.path.exists(self.marker())

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


# -- HTTP -------------------------------------------------------------------------------------


class NoAnswer(Exception):
    """The connection broke before an answer came (the server died)."""


def http(method, url, data=None, headers=None, form=False, timeout=60):
    """``(status, body, headers)``; a JSON body is decoded. Raises
    :class:`NoAnswer` when the server dies under the request."""
    if data is not None and not form:
        body = json.dumps(data).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    elif data is not None:
        body = urllib.parse.urlencode(data).encode()
    else:
        body = None
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, got = r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, got = e.code, e.read().decode(), dict(e.headers)
    except (urllib.error.URLError, ConnectionError, OSError) as exc:
        raise NoAnswer(repr(exc)) from None
    try:
        return status, json.loads(raw), got
    except ValueError:
        return status, raw, got


# -- the books --------------------------------------------------------------------------------


def read(registry, stmt, scalar=True):
    """A read in its own short transaction (never the write lock)."""
    with Session(registry["kameng.engine"]) as s:
        return s.scalar(stmt) if scalar else list(s.execute(stmt).all())


def status_of(registry, order_no):
    return read(registry, select(Order.status).where(Order.order_no == order_no))


def settled(registry) -> bool:
    """No order waits for payment processing or delivery, and no due job is left."""
    open_orders = read(registry, select(func.count()).select_from(Order).where(
        Order.status.in_(("paid", "delivering"))))
    busy = read(registry, select(func.count()).select_from(jobs.Job).where(
        jobs.Job.status.in_((jobs.QUEUED, jobs.RUNNING)),
        jobs.Job.kind.in_(("kameng.orders.deliver", "kameng.orders.refund", "kameng.suppliers.place",
                           "kameng.suppliers.poll"))))
    return not open_orders and not busy


def check_books(registry, upstream_book=None) -> dict:
    """What must hold after any crash and restart, checked with SQL:
    every paid order delivered exactly once or refunded in full, no key
    in two orders or sold twice, stock counters equal to the keys, each
    wallet's ledger a gap-free running sum that never went below zero and
    moved once per payment and refund, and every upstream order placed at
    most once. Gives a summary for the test's own assertions."""
    with Session(registry["kameng.engine"]) as s:
        orders = list(s.scalars(select(Order).order_by(Order.id)))
        problems = []
        for o in orders:
            paid = list(s.scalars(select(PaymentAttempt).where(PaymentAttempt.order_id == o.id,
                                                              PaymentAttempt.status == "paid")))
            sold = s.scalar(select(func.count()).select_from(CardKey).where(
                CardKey.order_ref == o.order_no, CardKey.state == SOLD))
            trail = [(e.from_status, e.to_status) for e in s.scalars(
                select(OrderEvent).where(OrderEvent.order_id == o.id, OrderEvent.kind == "status")
                .order_by(OrderEvent.id))]
            refunds = list(s.scalars(select(Refund).where(Refund.order_id == o.id)))
            refunded = sum(r.amount for r in refunds if r.status == "succeeded")
            if len(paid) > 1:
                problems.append(f"{o.order_no}: paid by {len(paid)} attempts")
            if paid and o.paid_attempt_id != paid[0].id:
                problems.append(f"{o.order_no}: paid_attempt_id does not name the paid attempt")
            if Counter(to for _f, to in trail)["paid"] > 1 or Counter(to for _f, to in trail)["delivered"] > 1:
                problems.append(f"{o.order_no}: status trail {trail}")
            if paid:
                if o.status == "delivered":
                    if o.product_type == "card_key" and sold != o.quantity:
                        problems.append(f"{o.order_no}: delivered with {sold} keys for {o.quantity}")
                    if refunded:
                        problems.append(f"{o.order_no}: delivered and refunded {refunded}")
                elif o.status in ("refunded", "failed"):
                    if refunded != o.amount or o.refunded_amount != o.amount:
                        problems.append(f"{o.order_no}: {o.status}, {refunded} of {o.amount} refunded")
                    if sold:
                        problems.append(f"{o.order_no}: {o.status} but {sold} keys sold to it")
                else:
                    problems.append(f"{o.order_no}: paid, left {o.status}")
            else:
                if o.status not in ("pending", "expired", "cancelled") or sold or refunds:
                    problems.append(f"{o.order_no}: unpaid, {o.status}, {sold} keys, {len(refunds)} refunds")
        # keys: one order each (order_ref is one column), sold ones only to delivered orders
        by_no = {o.order_no: o for o in orders}
        for ref, state, n in s.execute(select(CardKey.order_ref, CardKey.state, func.count())
                                       .where(CardKey.order_ref.is_not(None)).group_by(CardKey.order_ref,
                                                                                        CardKey.state)):
            o = by_no.get(ref)
            if o is None:
                problems.append(f"{n} {state} keys bound to a missing order {ref}")
            elif state == SOLD and o.status != "delivered":
                problems.append(f"{n} keys sold to {ref}, which is {o.status}")
            elif state == RESERVED and o.status not in ("pending", "paid"):
                problems.append(f"{n} keys still reserved for {ref}, which is {o.status}")
        bound = set(s.scalars(select(SkuUpstream.sku_id)))  # a supplier's SKU counts the upstream's stock
        for sku in s.scalars(select(Sku).where(Sku.id.not_in(bound) if bound else Sku.id.is_not(None))):
            keys = s.scalar(select(func.count()).select_from(CardKey).where(CardKey.sku_id == sku.id))
            if keys and sku.stock is not None:
                available = s.scalar(select(func.count()).select_from(CardKey).where(
                    CardKey.sku_id == sku.id, CardKey.state == AVAILABLE))
                if sku.stock != available:
                    problems.append(f"SKU {sku.code}: stock counter {sku.stock}, {available} keys available")
        # the ledger: per user a gap-free running sum, never negative, one entry per purpose
        entries = list(s.scalars(select(LedgerEntry).order_by(LedgerEntry.user_id, LedgerEntry.seq)))
        running: dict[int, tuple[int, int]] = {}
        for e in entries:
            seq, bal = running.get(e.user_id, (0, 0))
            if e.seq != seq + 1 or e.balance_after != bal + e.amount or e.balance_after < 0:
                problems.append(f"ledger of user {e.user_id} broken at seq {e.seq}")
            running[e.user_id] = (e.seq, e.balance_after)
        for o in orders:
            if o.payment_method == "balance" and o.paid_attempt_id is not None:
                debits = [e for e in entries if e.ref == f"order:{o.order_no}"]
                if len(debits) != 1 or debits[0].amount != -o.amount:
                    problems.append(f"{o.order_no}: {len(debits)} ledger debits")
        for r in s.scalars(select(Refund).where(Refund.destination == "balance")):
            credits = [e for e in entries if e.ref == f"refund:{r.refund_no}"]
            if len(credits) != (1 if r.status == "succeeded" else 0):
                problems.append(f"refund {r.refund_no} ({r.status}): {len(credits)} ledger credits")
        # the upstream
        ups = list(s.scalars(select(UpstreamOrder)))
        if len({u.order_id for u in ups}) != len(ups):
            problems.append("two upstream orders for one order")
        placed = Counter(p["out_order_no"] for p in upstream_placings(upstream_book)) if upstream_book else {}
        for no, n in placed.items():
            if n > 1:
                problems.append(f"upstream order {no} placed {n} times")
        dead = list(s.execute(select(jobs.Job.kind, jobs.Job.last_error).where(jobs.Job.status == jobs.DEAD)))
        if dead:
            problems.append(f"dead jobs: {dead}")
        assert not problems, problems
        return {"orders": {o.order_no: o.status for o in orders},
                "balances": {uid: bal for uid, (_seq, bal) in running.items()},
                "placed": dict(placed), "upstream": {u.out_order_no: u.status for u in ups}}
