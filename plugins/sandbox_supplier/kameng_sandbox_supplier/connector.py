"""The sandbox supplier connector: kameng's supplier contract in front of
the in-process simulation (:mod:`kameng_sandbox_supplier.simulator`).

It is a simulation for demos and tests: it buys nothing and its keys are
not real. What it does exercise for real is the core's side: idempotent
placing, processing → success/failed by polling, partial deliveries, refunds
and the signed callback route.
"""
from __future__ import annotations

import time

from kameng.i18n import _
from kameng.suppliers.base import CallbackRejected, SupplierConnector
from kameng.types import SettingField, UpstreamGoods, UpstreamOrderRequest, UpstreamResult

from kameng_sandbox_supplier import protocol, simulator

MAX_LATENCY_MS = 60_000


def _int(value, default: int, low: int, high: int) -> int:
    """A stored int setting (the core may hand ``None`` for a blank one)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return min(max(number, low), high)


class SandboxSupplier(SupplierConnector):
    identifier = "sandbox_supplier"
    public_name = _("Sandbox supplier (simulated upstream, for tests)")
    callbacks = True
    currency = "CNY"
    settings = (
        SettingField("failure_rate", _("Failure rate (%)"), type="int", default=0, min_value=0, max_value=100,
                     help=_("The share of orders that fail, decided per order number (the same order always "
                            "gets the same answer).")),
        SettingField("latency_ms", _("Latency (ms)"), type="int", default=0, min_value=0, max_value=MAX_LATENCY_MS,
                     help=_("How long every call to the simulated upstream takes to answer, placing a direct "
                            "recharge included.")),
        SettingField("seed", _("Seed"), default="demo", pattern=r"[A-Za-z0-9_.-]{1,64}", max_length=64,
                     help=_("Names the simulated upstream account: its catalogue, costs, stock and keys follow "
                            "from it. Connections with the same seed share one account.")),
        SettingField("processing_seconds", _("Recharge time (s)"), type="int", default=2, min_value=0,
                     max_value=3600,
                     help=_("Direct recharges answer \"processing\" first and finish after this many seconds.")),
        # a blank bool is false (an unticked box), so the switch is "off" by default: callbacks on
        SettingField("poll_only", _("No callbacks (poll only)"), type="bool", default=False,
                     help=_("Send no callbacks when a direct recharge finishes: the shop has to poll.")),
        SettingField("secret", _("Callback signing secret"), required=True, secret=True, min_length=16,
                     help=_("HMAC-SHA256 key the simulated callbacks are signed with.")),
    )

    def __init__(self, settings: dict):
        super().__init__(settings)
        cfg = settings or {}
        self.failure_rate = _int(cfg.get("failure_rate"), 0, 0, 100)
        self.latency_ms = _int(cfg.get("latency_ms"), 0, 0, MAX_LATENCY_MS)
        self.processing_seconds = _int(cfg.get("processing_seconds"), 2, 0, 3600)
        seed = cfg.get("seed")
        self.seed = seed if isinstance(seed, str) and seed else "demo"
        self.secret = cfg.get("secret") or ""
        self.callbacks = cfg.get("poll_only") is not True

    def _wait(self) -> None:
        """The simulated round trip (never under the simulator's lock)."""
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)

    def test_connection(self) -> str:
        self._wait()
        goods = simulator.goods(self.seed)
        return (f"Sandbox supplier (a simulation, nothing is real): account {self.seed!r}, {len(goods)} goods, "
                f"balance {simulator.balance(self.seed)} {self.currency}")

    def balance(self) -> str | None:
        self._wait()
        return str(simulator.balance(self.seed))

    def list_goods(self) -> list[UpstreamGoods]:
        self._wait()
        return simulator.goods(self.seed)

    def place_order(self, req: UpstreamOrderRequest) -> UpstreamResult:
        self._wait()
        secret = self.secret if self.callbacks else None
        return simulator.place(self.seed, req, self.failure_rate, self.processing_seconds, secret)

    def query_order(self, out_order_no: str) -> UpstreamResult | None:
        self._wait()
        return simulator.query(self.seed, out_order_no)

    def parse_callback(self, request) -> UpstreamResult:
        if request.method != "POST":
            raise CallbackRejected("the sandbox supplier calls back by POST")
        return protocol.verify_callback(request.body, request.headers.get(protocol.SIGNATURE_HEADER, ""),
                                        self.secret)
