"""A fake Alipay Open Platform on 127.0.0.1, written from the protocol
(PROTOCOLS.md A2), not from the plugin: it checks the shop's signed
requests with the app's public key, keeps trades, signs its answers with
"Alipay's" key over the exact response text, and sends signed notifies,
retrying on a compressed schedule until the shop answers ``success``.

Faults for the tests: ``mode`` = ``http500`` | ``garbage`` | ``timeout`` |
``badsign`` (signed with a key that is not Alipay's) | ``reorder`` (a proxy
re-serialised the signed JSON) | ``unsigned`` (a gateway error without a
signature); ``lose_refund_answer`` refunds but never answers.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import httpx

from kameng_alipay import protocol
from kameng_alipay.testing import APP_ID, SELLER_ID, key_pem, notify_fields, sign_notify

#: Alipay's schedule is 4m, 10m, 10m, 1h, 2h, 6h, 15h: the same shape, in seconds
NOTIFY_SCHEDULE = (0, 0.02, 0.05, 0.05, 0.1, 0.2, 0.4, 0.8)


@dataclass
class Trade:
    out_trade_no: str
    total_amount: str
    subject: str
    notify_url: str
    method: str
    trade_no: str
    status: str = "NEW"  # NEW (not scanned: unknown to queries), WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_CLOSED
    refunded: Decimal = Decimal("0")
    biz: dict = field(default_factory=dict)


class FakeAlipay:
    def __init__(self, app_id: str = APP_ID, seller_id: str = SELLER_ID, schedule=NOTIFY_SCHEDULE):
        self.app_id, self.seller_id, self.schedule = app_id, seller_id, schedule
        self.app_public = protocol.load_public_key(key_pem("app_public_key"))
        self.ali_private = protocol.load_private_key(key_pem("ali_private_key"))
        self.wrong_private = protocol.load_private_key(key_pem("app_private_key"))
        self.trades: dict[str, Trade] = {}
        self.refunds: dict[tuple[str, str], Decimal] = {}
        self.calls: list[tuple[str, dict]] = []
        self.rejected: list[str] = []
        self.notifies: list[tuple[str, int, str]] = []  # (out_trade_no, status, body)
        self.mode: str | None = None
        self.lose_refund_answer = False
        self.corrupt_first_notifies = 0
        self.refunds_done = 0
        self.release = threading.Event()
        self._numbers = itertools.count(1)
        self._lock = threading.RLock()
        self._notified: dict[str, threading.Event] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._handle(self, b"")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                fake._handle(self, self.rfile.read(length))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/gateway.do"

    def start(self) -> "FakeAlipay":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    # -- HTTP ----------------------------------------------------------------------------

    def _reply(self, handler, status: int, body: str, ctype: str = "application/json;charset=utf-8") -> None:
        data = body.encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _params(self, handler, body: bytes) -> dict | None:
        pairs = parse_qsl(urlsplit(handler.path).query, keep_blank_values=True)
        if body:
            pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        params: dict[str, str] = {}
        for k, v in pairs:
            if k in params:
                return None
            params[k] = v
        return params

    def _handle(self, handler, body: bytes) -> None:
        if urlsplit(handler.path).path != "/gateway.do":
            return self._reply(handler, 404, "not found", "text/plain")
        params = self._params(handler, body)
        method = (params or {}).get("method", "")
        if self.mode == "http500":
            return self._reply(handler, 500, "internal error", "text/plain")
        if self.mode == "garbage":
            return self._reply(handler, 200, "<html>502 Bad Gateway</html>", "text/html")
        if self.mode == "timeout":
            self.release.wait(5)
            return self._reply(handler, 200, "{}")
        error = self._check_request(params)
        if error is not None:
            self.rejected.append(error)
            return self._answer(handler, method or "error", {"code": "40002", "msg": "Invalid Arguments",
                                                             "sub_code": error, "sub_msg": "bad request"},
                                signed=False)
        try:
            biz = json.loads(params["biz_content"])
        except (KeyError, ValueError):
            return self._answer(handler, method, {"code": "40001", "msg": "Missing Required Arguments",
                                                  "sub_code": "isv.missing-biz-content"}, signed=False)
        with self._lock:
            self.calls.append((method, biz))
        if method in ("alipay.trade.page.pay", "alipay.trade.wap.pay"):
            with self._lock:
                self._new_trade(method, biz, params, status="WAIT_BUYER_PAY")
            return self._reply(handler, 200, "<html><body>Alipay cashier (fake)</body></html>",
                               "text/html;charset=utf-8")
        action = {"alipay.trade.precreate": self._precreate, "alipay.trade.query": self._query,
                  "alipay.trade.close": self._close, "alipay.trade.refund": self._refund,
                  "alipay.trade.fastpay.refund.query": self._refund_query}.get(method)
        if action is None:
            return self._answer(handler, method or "error", {"code": "40004", "msg": "Business Failed",
                                                             "sub_code": "isv.invalid-method"}, signed=False)
        with self._lock:
            result = action(biz, params)
        if method == "alipay.trade.refund" and self.lose_refund_answer:
            self.release.wait(5)  # the refund happened; its answer never comes
            return
        if self.mode == "unsigned":
            return self._answer(handler, method, {"code": "40002", "msg": "Invalid Arguments",
                                                  "sub_code": "isv.invalid-signature"}, signed=False)
        return self._answer(handler, method, result)

    def _check_request(self, params: dict | None) -> str | None:
        """The gateway's checks of a request: what Alipay would refuse."""
        if params is None:
            return "isv.duplicate-parameter"
        if params.get("app_id") != self.app_id:
            return "isv.invalid-app-id"
        if params.get("sign_type") != "RSA2" or params.get("charset") != "utf-8" or params.get("version") != "1.0":
            return "isv.invalid-signature-type"
        try:
            sent = protocol.parse_time(params.get("timestamp", ""))
        except protocol.ProtocolError:
            return "isv.invalid-timestamp"
        if abs((dt.datetime.now(dt.timezone.utc) - sent).total_seconds()) > 600:
            return "isv.invalid-timestamp"
        if not protocol.rsa2_verify(protocol.request_sign_content(params), params.get("sign", ""), self.app_public):
            return "isv.invalid-signature"
        return None

    def _answer(self, handler, method: str, result: dict, signed: bool = True) -> None:
        key = protocol.response_key(method) if "." in method else "error_response"
        inner = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        if not signed:
            return self._reply(handler, 200, f'{{"{key}":{inner}}}')
        signer = self.wrong_private if self.mode == "badsign" else self.ali_private
        sign = protocol.rsa2_sign(inner, signer)
        if self.mode == "reorder":  # a proxy pretty-printed the JSON: the bytes signed are gone
            inner = json.dumps(result, ensure_ascii=False, indent=1, sort_keys=True)
        self._reply(handler, 200, f'{{"{key}":{inner},"sign":"{sign}"}}')

    # -- trades ----------------------------------------------------------------------------

    def _new_trade(self, method: str, biz: dict, params: dict, status: str) -> Trade:
        trade = self.trades.get(biz["out_trade_no"])
        if trade is None:
            trade = Trade(out_trade_no=biz["out_trade_no"], total_amount=biz["total_amount"],
                          subject=biz.get("subject", ""), notify_url=params.get("notify_url", ""), method=method,
                          trade_no=f"2024{next(self._numbers):024d}", status=status, biz=biz)
            self.trades[trade.out_trade_no] = trade
        return trade

    @staticmethod
    def _not_exist() -> dict:
        return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                "sub_msg": "交易不存在"}

    def _precreate(self, biz, params) -> dict:
        known = self.trades.get(biz.get("out_trade_no"))
        if known is not None and known.total_amount != biz.get("total_amount"):
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.CONTEXT_INCONSISTENT"}
        trade = self._new_trade("alipay.trade.precreate", biz, params, status="NEW")
        return {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no,
                "qr_code": f"https://qr.alipay.com/bax0{trade.trade_no[-8:]}"}

    def _visible(self, biz) -> Trade | None:
        trade = self.trades.get(biz.get("out_trade_no"))
        return trade if trade is not None and trade.status != "NEW" else None

    def _query(self, biz, params) -> dict:
        trade = self._visible(biz)
        if trade is None:
            return self._not_exist()
        return {"code": "10000", "msg": "Success", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                "buyer_logon_id": "159****5620", "trade_status": trade.status, "total_amount": trade.total_amount,
                "buyer_pay_amount": trade.total_amount if trade.status == "TRADE_SUCCESS" else "0.00"}

    def _close(self, biz, params) -> dict:
        trade = self._visible(biz)
        if trade is None:
            return self._not_exist()
        if trade.status != "WAIT_BUYER_PAY":
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR"}
        trade.status = "TRADE_CLOSED"
        return {"code": "10000", "msg": "Success", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}

    def _refund(self, biz, params) -> dict:
        trade = self._visible(biz)
        if trade is None:
            return self._not_exist()
        key = (trade.out_trade_no, biz.get("out_request_no", trade.out_trade_no))
        amount = Decimal(biz["refund_amount"])
        base = {"code": "10000", "msg": "Success", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no,
                "buyer_logon_id": "159****5620"}
        if key in self.refunds:  # the same request again: no money moves
            if self.refunds[key] != amount:
                return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"}
            return {**base, "fund_change": "N", "refund_fee": f"{trade.refunded:.2f}"}
        if trade.status != "TRADE_SUCCESS":
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR"}
        if trade.refunded + amount > Decimal(trade.total_amount):
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                    "sub_msg": "退款金额超限"}
        self.refunds[key] = amount
        self.refunds_done += 1
        trade.refunded += amount
        if trade.refunded == Decimal(trade.total_amount):
            trade.status = "TRADE_CLOSED"
        return {**base, "fund_change": "Y", "refund_fee": f"{trade.refunded:.2f}"}

    def _refund_query(self, biz, params) -> dict:
        trade = self.trades.get(biz.get("out_trade_no"))
        if trade is None or trade.status == "NEW":
            return self._not_exist()
        base = {"code": "10000", "msg": "Success", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}
        amount = self.refunds.get((trade.out_trade_no, biz.get("out_request_no")))
        if amount is None:
            return base  # no such refund request: nothing but the trade
        return {**base, "out_request_no": biz["out_request_no"], "refund_amount": f"{amount:.2f}",
                "total_amount": trade.total_amount, "refund_status": "REFUND_SUCCESS"}

    # -- the buyer ---------------------------------------------------------------------------

    def scan(self, out_trade_no: str) -> None:
        """The buyer scanned the QR code: the trade now exists for queries."""
        with self._lock:
            trade = self.trades[out_trade_no]
            if trade.status == "NEW":
                trade.status = "WAIT_BUYER_PAY"

    def pay(self, out_trade_no: str, notify: bool = True) -> Trade:
        """The buyer pays; the notify goes out (in a thread) unless ``notify`` is False."""
        self.scan(out_trade_no)
        with self._lock:
            trade = self.trades[out_trade_no]
            trade.status = "TRADE_SUCCESS"
            done = self._notified[out_trade_no] = threading.Event()
        if notify:
            threading.Thread(target=self._send_notifies, args=(trade, done), daemon=True).start()
        return trade

    def wait_notified(self, out_trade_no: str, timeout: float = 30) -> bool:
        """Until the shop answered ``success`` (or the schedule ran out)."""
        return self._notified[out_trade_no].wait(timeout)

    def notify_fields(self, trade: Trade) -> list[tuple[str, str]]:
        fields = notify_fields(trade.out_trade_no, trade.total_amount, trade.trade_no, trade.status,
                               app_id=self.app_id, seller_id=self.seller_id)
        fields["subject"] = trade.subject
        return sign_notify(fields, key_pem("ali_private_key"))

    def _send_notifies(self, trade: Trade, done: threading.Event) -> None:
        try:
            for n, delay in enumerate(self.schedule):
                time.sleep(delay)
                form = self.notify_fields(trade)
                if n < self.corrupt_first_notifies:  # damaged on the way: the signature no longer matches
                    form = [(k, v + "0" if k == "total_amount" else v) for k, v in form]
                try:
                    resp = httpx.post(trade.notify_url, data=dict(form), timeout=10)
                except httpx.HTTPError:
                    self.notifies.append((trade.out_trade_no, 0, ""))
                    continue
                self.notifies.append((trade.out_trade_no, resp.status_code, resp.text))
                if resp.text == "success":
                    return
        finally:
            done.set()
