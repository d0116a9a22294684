"""A supplier connector for the core's supplier tests: an upstream in
memory whose behaviour the test sets (answer now, later, fail, time out,
be down), counting every order it takes."""
import hashlib
import hmac
import json
import threading
from decimal import Decimal

from kameng import hookimpl
from kameng.suppliers.base import CallbackRejected, SupplierConnector, SupplierError
from kameng.types import PluginMeta, SettingField, UpstreamGoods, UpstreamResult, UpstreamSku

PLUGIN = PluginMeta(name="Supplier test plugin", category="supplier")
SECRET = "suptest-callback-secret"


class Upstream:
    """The upstream's side: goods, and the orders it took."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.goods = {"G1": ("Steam card", "card_key", [("STEAM50", "50 元", Decimal("45.00"), 10, True)]),
                      "G2": ("话费直充", "direct_recharge", [("CM100", "100 元", Decimal("98.50"), None, True)])}
        self.orders = {}  # out_order_no -> UpstreamResult
        self.placed = []  # out_order_no of every order taken
        self.mode = "success"  # success | processing | failed | down | timeout_after_placing | crash_after_placing
        self.down = False


UP = Upstream()


class TestConnector(SupplierConnector):
    identifier = "suptest"
    public_name = "Test upstream"
    callbacks = True
    settings = (SettingField("token", "Token", required=True, secret=True),)

    def test_connection(self):
        if UP.down:
            raise SupplierError("cannot connect to the test upstream")
        return "balance 100.00"

    def list_goods(self):
        if UP.down:
            raise SupplierError("cannot connect to the test upstream")
        phone = ({"name": "phone", "label": "手机号", "kind": "mobile_cn"},)
        return [UpstreamGoods(id=gid, name=name, type=type_, category="Test",
                              recharge_fields=phone if type_ == "direct_recharge" else (),
                              skus=tuple(UpstreamSku(code=c, name=n, cost=cost, stock=stock, available=ok)
                                         for c, n, cost, stock, ok in skus))
                for gid, (name, type_, skus) in UP.goods.items()]

    def place_order(self, req):
        with UP.lock:
            if UP.down:
                raise SupplierError("cannot connect to the test upstream")
            if req.out_order_no in UP.orders:  # the upstream is idempotent on the number too
                return UP.orders[req.out_order_no]
            UP.placed.append(req.out_order_no)
            keys = tuple((None, f"UP-{req.out_order_no}-{i}") for i in range(req.quantity))
            mode = UP.mode
            done = UpstreamResult("success", req.out_order_no, "U" + req.out_order_no, keys=keys)
            half = UpstreamResult("partial", req.out_order_no, "U" + req.out_order_no, keys=keys[:1], delivered=1,
                                  message="only one left upstream")
            result = {"success": done, "timeout_after_placing": done, "crash_after_placing": done, "partial": half,
                      "failed": UpstreamResult("failed", req.out_order_no, message="no stock upstream")}.get(
                mode, UpstreamResult("processing", req.out_order_no, "U" + req.out_order_no))
            UP.orders[req.out_order_no] = result
        if mode == "timeout_after_placing":
            raise SupplierError("the test upstream did not answer in time", uncertain=True)
        if mode == "crash_after_placing":
            raise RuntimeError("the worker died right after the upstream took the order")
        return result

    def query_order(self, out_order_no):
        if UP.down:
            raise SupplierError("cannot connect to the test upstream", uncertain=True)
        return UP.orders.get(out_order_no)

    def parse_callback(self, request):
        body = request.body
        if not hmac.compare_digest(hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
                                   request.headers.get("X-Sign", "")):
            raise CallbackRejected("bad signature")
        data = json.loads(body)
        keys = tuple((None, k) for k in data.get("keys", []))
        return UpstreamResult(data["status"], data["out_order_no"], data.get("upstream_order_no", ""), keys=keys)


def finish(out_order_no, status="success", quantity=1):
    """The upstream finishes an order it was processing."""
    keys = tuple((None, f"UP-{out_order_no}-{i}") for i in range(quantity)) if status == "success" else ()
    UP.orders[out_order_no] = UpstreamResult(status, out_order_no, "U" + out_order_no, keys=keys)
    return UP.orders[out_order_no]


def signed_callback(payload: dict) -> tuple[bytes, dict]:
    body = json.dumps(payload).encode()
    return body, {"X-Sign": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


@hookimpl
def kameng_supplier_connectors():
    return [TestConnector]
