"""A fake epusdt / BEpusdt server on 127.0.0.1, written from the protocol's
server side (assimon/epusdt ``middleware/check_sign.go``, ``util/sign/sign.go``,
``mq/handle/callback_queue.go``; v03413/BEpusdt ``handler/epusdt``,
``task/notify``), independently of the plugin's own code:

- ``POST /api/v1/order/create-transaction`` verifies the signature the Go way
  (JSON decoded into a map, numbers as float64 written by FormatFloat), then
  validates and creates a trade. ``flavor="epusdt"`` answers a bad signature
  with status_code 401 and refuses a second create for the same order_id
  (10002); ``flavor="bepusdt"`` answers 400 "签名错误" and rebuilds the trade.
- ``GET /pay/checkout-counter/<trade_id>``: the cashier page the buyer sees.
- :meth:`FakeEpusdt.pay` marks a trade paid and sends the signed callback to
  its notify_url, retrying on the real schedules (epusdt: up to 5 tries, done
  when the body is exactly ``ok``; BEpusdt: 2, 4, 8… minutes up to 10 tries,
  done on HTTP 200), compressed by ``minute`` seconds per minute.
- ``mode`` makes it misbehave: ``garbage`` (HTML), ``http500``, ``slow``
  (hangs until released), ``refuse`` (status_code 10003, no wallet).

There is no query or refund endpoint: the protocol has none.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def go_format(f: float) -> str:
    """strconv.FormatFloat(f, 'f', -1, 64), written out separately from the plugin's."""
    text = repr(float(f))
    if "e" in text or "E" in text:
        text = f"{Decimal(text):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def go_sign(data: dict, token: str, skip_empty: bool) -> str:
    """epusdt's MapToParams (``skip_empty=False``: only nil is left out, the
    ``k=v`` strings sorted) or BEpusdt's EpusdtSign (nil and "" left out, the
    keys sorted). The two orders differ only for names like ``a``/``a0``."""
    parts = []
    for key, value in data.items():
        if key == "signature" or value is None or (skip_empty and value == ""):
            continue
        if isinstance(value, (bool, dict, list)):
            if not skip_empty:
                raise ValueError("signature marshal error")
            value = json.dumps(value)
        elif isinstance(value, float):
            value = go_format(value)
        parts.append((key, f"{key}={value}"))
    parts.sort(key=lambda p: p[0] if skip_empty else p[1])
    return hashlib.md5(("&".join(p[1] for p in parts) + token).encode()).hexdigest()


class FakeEpusdt:
    def __init__(self, token: str, flavor: str = "epusdt", minute: float = 0.001, rate: str = "7.2"):
        self.token = token
        self.flavor = flavor
        self.minute = minute
        self.rate = Decimal(rate)
        self.mode = "normal"
        self.requests: list[dict] = []  # every API call: {"path", "body", "sign_ok"}
        self.trades: dict[str, dict] = {}
        self.deliveries: list[tuple[str, int, str]] = []  # (trade_id, HTTP status, body)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._seq = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeEpusdt:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- the API ---------------------------------------------------------------------

    def _reply(self, code: int, message: str, data=None) -> dict:
        return {"status_code": code, "message": message, "data": data, "request_id": ""}

    def create(self, raw: bytes) -> dict:
        try:
            data = json.loads(raw)  # Go: map[string]interface{}, every number a float64
            data = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in data.items()}
        except ValueError:
            return self._reply(10009, "无法解析请求参数")
        bep = self.flavor == "bepusdt"
        signature = data.get("signature")
        try:
            ok = signature is not None and go_sign(data, self.token, skip_empty=bep) == signature
        except ValueError:
            ok = False
        with self.lock:
            self.requests.append({"path": "/api/v1/order/create-transaction", "body": data, "sign_ok": ok})
        if not ok:
            return self._reply(400, "签名错误") if bep else self._reply(401, "签名认证错误")
        amount, order_id, notify_url = data.get("amount"), data.get("order_id"), data.get("notify_url")
        if not isinstance(amount, float) or amount <= 0.01:
            return self._reply(400, "请求参数错误：Key: 'createReq.Amount' Error:Field validation for 'Amount' "
                                    "failed on the 'required' tag" if bep else "支付金额必须大于0.01")
        if not isinstance(order_id, str) or not order_id or len(order_id) > 32:
            return self._reply(400, "订单号 格式错误")
        if not isinstance(notify_url, str) or not notify_url.startswith(("http://", "https://")):
            return self._reply(400, "异步回调网址 格式错误")
        if self.mode == "refuse":
            return self._reply(10003, "无可用钱包地址，无法发起支付")
        with self.lock:
            existing = [t for t in self.trades.values() if t["order_id"] == order_id]
            if existing and not bep:
                return self._reply(10002, "支付交易已存在，请勿重复创建")
            self._seq += 1
            trade_id = existing[0]["trade_id"] if existing else f"2025112612{self._seq:014d}"
            actual = (Decimal(go_format(amount)) / self.rate).quantize(Decimal("0.0001"))
            self.trades[trade_id] = {
                "trade_id": trade_id, "order_id": order_id, "amount": amount, "actual_amount": actual,
                "notify_url": notify_url, "redirect_url": data.get("redirect_url", ""), "status": 1,
                "address": "TNEns8t9jbWENbStkQdVQtHMGpbsYsQjZK", "block": ""}
        return self._reply(200, "success", {
            "trade_id": trade_id, "order_id": order_id,
            "amount": go_format(amount) if bep else amount,
            "actual_amount": str(actual) if bep else float(actual),
            "token": "TNEns8t9jbWENbStkQdVQtHMGpbsYsQjZK", "expiration_time": 600 if bep else int(time.time()) + 600,
            "payment_url": f"{self.url}/pay/checkout-counter/{trade_id}"})

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/api/v1/order/create-transaction":
                    return self._send(404, b"404 page not found", "text/plain")
                if fake.mode == "slow":
                    fake.release.wait(10)
                    return self._send(200, b"")
                if fake.mode == "http500":
                    return self._send(500, b"Internal Server Error", "text/plain")
                if fake.mode == "garbage":
                    return self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
                self._send(200, json.dumps(fake.create(raw), ensure_ascii=False).encode())

            def do_GET(self):
                trade_id = self.path.rsplit("/", 1)[-1]
                trade = fake.trades.get(trade_id)
                if self.path.startswith("/pay/checkout-counter/") and trade:
                    page = (f"<html><body>Send {trade['actual_amount']} USDT (TRC20) to {trade['address']}"
                            f"</body></html>")
                    return self._send(200, page.encode(), "text/html")
                self._send(404, b"not found", "text/plain")

        return Handler

    # -- paying, and the callbacks --------------------------------------------------

    def trade_for(self, order_id: str) -> dict:
        return next(t for t in self.trades.values() if t["order_id"] == order_id)

    def callback_body(self, trade: dict, token: str | None = None, amount: float | None = None) -> bytes:
        """The callback exactly as the Go struct is written (and signed)."""
        bep = self.flavor == "bepusdt"
        data = {"trade_id": trade["trade_id"], "order_id": trade["order_id"],
                "amount": amount if amount is not None else trade["amount"],
                "actual_amount": str(trade["actual_amount"]) if bep else float(trade["actual_amount"]),
                "token": trade["address"], "block_transaction_id": trade["block"], "signature": "",
                "status": trade["status"]}
        data["signature"] = go_sign(data, token or self.token, skip_empty=bep)
        # Go's encoding/json writes a float64 like FormatFloat for these sizes
        items = []
        for key, value in data.items():
            text = go_format(value) if isinstance(value, float) else json.dumps(value)
            items.append(f'"{key}":{text}')
        return ("{" + ",".join(items) + "}").encode()

    def _post(self, trade: dict, body: bytes) -> tuple[int, str]:
        req = urllib.request.Request(trade["notify_url"], data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Powered-By": "fake-epusdt"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def done(self, status: int, body: str) -> bool:
        return status == 200 if self.flavor == "bepusdt" else body == "ok"

    def schedule(self) -> list[float]:
        """Seconds before each try: epusdt 5 tries close together, BEpusdt 2ⁿ minutes."""
        if self.flavor == "bepusdt":
            return [0.0] + [2 ** n * self.minute for n in range(1, 10)]
        return [0.0] + [self.minute] * 4

    def send(self, trade: dict, lost: int = 0, token: str | None = None, amount: float | None = None,
             tries: int | None = None) -> list[tuple[int, str]]:
        """Send the trade's callback until the shop takes it. The first
        ``lost`` tries never arrive (a network failure)."""
        body = self.callback_body(trade, token, amount)
        answers = []
        for i, delay in enumerate(self.schedule()[:tries]):
            time.sleep(delay)
            if i < lost:
                answers.append((0, "lost"))
                continue
            status, text = self._post(trade, body)
            answers.append((status, text))
            with self.lock:
                self.deliveries.append((trade["trade_id"], status, text))
            if self.done(status, text):
                break
        return answers

    def pay(self, order_id: str, send: bool = True, **kw) -> list[tuple[int, str]]:
        trade = self.trade_for(order_id)
        trade["status"] = 2
        trade["block"] = hashlib.sha256(trade["trade_id"].encode()).hexdigest()
        return self.send(trade, **kw) if send else []

    def waiting(self, order_id: str) -> list[tuple[int, str]]:
        """BEpusdt's minutely "still waiting" callback (status 1)."""
        return self.send(self.trade_for(order_id), tries=1)

    def expire(self, order_id: str) -> list[tuple[int, str]]:
        trade = self.trade_for(order_id)
        trade["status"] = 3
        return self.send(trade, tries=1)
