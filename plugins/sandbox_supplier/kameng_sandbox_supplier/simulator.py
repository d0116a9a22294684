"""The simulated upstream: stock, balance and orders in this process's memory.

THIS IS A SIMULATION. Nothing leaves the process except the signed callbacks
it POSTs to the shop; nothing is bought, no key is real. The state lives in a
module-level dict keyed by the connection's ``seed`` (connections with the
same seed share one simulated upstream account) and is guarded by one lock,
because the web server's and the worker's threads call in at the same time.

A restart forgets every order: ``query`` then answers ``None`` ("never
placed") and the shop may place the order again, which gives the same keys and
the same outcome, since those derive from ``(seed, out_order_no)``. Several
processes (a web server and a separate worker) each have their own memory;
the callbacks verify anywhere because they only need the connection's secret.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from kameng import httpclient
from kameng.types import UpstreamOrderRequest, UpstreamResult

from kameng_sandbox_supplier import protocol

log = logging.getLogger(__name__)

#: what every simulated account starts with (CNY); sales are charged against it
STARTING_BALANCE = Decimal("1000000.00")
#: the callback is POSTed up to this many times, waiting these seconds between
CALLBACK_RETRY_DELAYS = (1.0, 5.0)
#: the wall clock the simulation runs on (tests move it forward)
clock = time.time

_LOCK = threading.RLock()
_UPSTREAMS: dict[str, "_Upstream"] = {}


@dataclass
class _Order:
    out_order_no: str
    upstream_order_no: str
    status: str
    keys: tuple = ()
    delivered: int | None = None
    cost: Decimal | None = None
    message: str = ""
    #: a direct recharge in progress: when it finishes and how
    finish_at: float = 0.0
    fails: bool = False
    recharge_note: str = ""
    quantity: int = 1

    def result(self) -> UpstreamResult:
        return UpstreamResult(status=self.status, out_order_no=self.out_order_no,
                              upstream_order_no=self.upstream_order_no, keys=self.keys, delivered=self.delivered,
                              cost=self.cost, message=self.message)


class _Upstream:
    def __init__(self, seed: str):
        self.seed = seed
        self.stock = {code: protocol.initial_stock(seed, code, t.type == "card_key")
                      for t in protocol.TEMPLATES for code, _n, _f in t.skus}
        self.balance = STARTING_BALANCE
        self.orders: dict[str, _Order] = {}
        self.timers: list[threading.Timer] = []


def upstream(seed: str) -> _Upstream:
    """The simulated account of ``seed`` (made on first use)."""
    with _LOCK:
        if seed not in _UPSTREAMS:
            _UPSTREAMS[seed] = _Upstream(seed)
        return _UPSTREAMS[seed]


def reset() -> None:
    """Forget everything, as a restart would (tests; pending timers are cancelled)."""
    with _LOCK:
        for up in _UPSTREAMS.values():
            for timer in up.timers:
                timer.cancel()
        _UPSTREAMS.clear()


def goods(seed: str) -> list:
    with _LOCK:
        return protocol.catalogue(seed, dict(upstream(seed).stock))


def balance(seed: str) -> Decimal:
    with _LOCK:
        return upstream(seed).balance


def query(seed: str, out_order_no: str) -> UpstreamResult | None:
    with _LOCK:
        up = _UPSTREAMS.get(seed)
        order = up.orders.get(out_order_no) if up else None
        if order is None:
            return None
        _settle(up, order)
        return order.result()


def place(seed: str, req: UpstreamOrderRequest, failure_rate: int, processing_seconds: int,
          callback_secret: str | None = None) -> UpstreamResult:
    """Place ``req`` once: a second call with the same ``out_order_no``
    answers the first order's state and creates nothing. ``callback_secret``
    (with a ``req.callback_url``) makes a finishing recharge call back."""
    with _LOCK:
        up = upstream(seed)
        order = up.orders.get(req.out_order_no)
        if order is not None:
            _settle(up, order)
            return order.result()
        order = _new_order(up, req, failure_rate, processing_seconds)
        up.orders[req.out_order_no] = order
        if order.status == "processing" and callback_secret and req.callback_url:
            timer = threading.Timer(max(0.0, order.finish_at - clock()), _finish,
                                    args=(up, req.out_order_no, req.callback_url, callback_secret))
            timer.daemon = True
            up.timers = [t for t in up.timers if t.is_alive()] + [timer]
            timer.start()
        return order.result()


def _new_order(up: _Upstream, req: UpstreamOrderRequest, failure_rate: int, processing_seconds: int) -> _Order:
    order = _Order(req.out_order_no, protocol.upstream_order_no(up.seed, req.out_order_no), "failed")
    found = protocol.find_sku(req.sku)
    if found is None:
        order.message = "unknown goods (simulated upstream)"
        return order
    template, (code, _name, face) = found
    unit = protocol.unit_cost(up.seed, code, face)
    if code == protocol.STOPPED:
        order.message = "the upstream stopped selling these goods (simulated)"
    elif not isinstance(req.quantity, int) or not 1 <= req.quantity <= 1000:
        order.message = "quantity must be 1 to 1000 (simulated upstream)"
    elif req.max_unit_cost is not None and unit > req.max_unit_cost:
        order.message = f"the cost {unit} is above the ceiling {req.max_unit_cost} (simulated upstream)"
    elif protocol.fails(up.seed, req.out_order_no, failure_rate) and template.type == "card_key":
        order.message = "simulated failure (failure_rate)"
    elif template.type == "card_key":
        _deliver_cards(up, order, template, code, unit, req.quantity)
    else:
        _accept_recharge(up, order, req, unit, failure_rate, processing_seconds)
    return order


def _charge(up: _Upstream, order: _Order, amount: Decimal) -> bool:
    if amount > up.balance:
        order.status, order.message = "failed", "insufficient balance at the simulated upstream"
        return False
    up.balance -= amount
    return True


def _deliver_cards(up: _Upstream, order: _Order, template, code: str, unit: Decimal, quantity: int) -> None:
    """Card keys at once, as many as the stock has (fewer: a partial order)."""
    count = min(quantity, up.stock[code] or 0)
    if count == 0:
        order.message = "out of stock (simulated upstream)"
        return
    if not _charge(up, order, unit * count):
        return
    up.stock[code] -= count
    order.keys = tuple(protocol.card_key(up.seed, order.out_order_no, i, template.numbered) for i in range(count))
    order.delivered, order.cost = count, unit * count
    order.status = "success" if count == quantity else "partial"
    order.message = "simulated delivery" if count == quantity else f"only {count} in stock (simulated upstream)"


def _accept_recharge(up: _Upstream, order: _Order, req: UpstreamOrderRequest, unit: Decimal, failure_rate: int,
                     processing_seconds: int) -> None:
    """Accept a recharge: charged now, refunded if it fails when it finishes."""
    phone = (req.recharge or {}).get("phone")
    if not isinstance(phone, str) or not protocol.MOBILE_CN.fullmatch(phone):
        order.message = "invalid phone number (simulated upstream)"
        return
    if not _charge(up, order, unit * req.quantity):
        return
    order.status, order.cost, order.message = "processing", unit * req.quantity, "recharging (simulated)"
    order.finish_at = clock() + processing_seconds
    order.fails = protocol.fails(up.seed, req.out_order_no, failure_rate)
    order.recharge_note, order.quantity = protocol.mask_phone(phone), req.quantity


def _settle(up: _Upstream, order: _Order, force: bool = False) -> None:
    """Finish a recharge whose time has come (idempotent; the lock is held)."""
    if order.status != "processing" or (not force and clock() < order.finish_at):
        return
    if order.fails:
        up.balance += order.cost
        order.status, order.cost = "failed", None
        order.message = f"simulated recharge failure for {order.recharge_note} (failure_rate)"
    else:
        order.status, order.delivered = "success", order.quantity
        order.message = f"simulated recharge of {order.recharge_note} done"


def _finish(up: _Upstream, out_order_no: str, url: str, secret: str) -> None:
    """The timer: finish the recharge, then POST the signed callback (a
    few tries). Runs on its own thread: it must never raise."""
    try:
        with _LOCK:
            if _UPSTREAMS.get(up.seed) is not up or out_order_no not in up.orders:
                return
            order = up.orders[out_order_no]
            _settle(up, order, force=True)
            result = order.result()
        body = protocol.callback_body(result)
        signature = protocol.sign(body, secret)
        for attempt, delay in enumerate((0.0, *CALLBACK_RETRY_DELAYS)):
            time.sleep(delay)
            with _LOCK:
                if _UPSTREAMS.get(up.seed) is not up:
                    return
            try:
                resp = httpclient.post_json(url, body, headers={protocol.SIGNATURE_HEADER: signature})
            except httpclient.HttpError as exc:
                log.warning("sandbox_supplier_callback_failed", extra={"out_order_no": out_order_no,
                                                                       "attempt": attempt + 1, "error": str(exc)})
                continue
            log.info("sandbox_supplier_callback", extra={"out_order_no": out_order_no, "status": result.status,
                                                         "http_status": resp.status, "attempt": attempt + 1})
            if 200 <= resp.status < 300:
                return
    except Exception:  # a daemon thread has nobody to raise to
        log.exception("sandbox_supplier_callback_crashed", extra={"out_order_no": out_order_no})
