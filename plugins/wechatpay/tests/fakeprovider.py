"""A fake WeChat Pay API v3 on 127.0.0.1, written from the protocol's server
side: it checks the shop's signed requests as WeChat Pay does (401 on a bad
signature), keeps trades and refunds, signs every answer with the platform
key, and sends encrypted, signed callbacks to the shop's notify_url, again
and again until the shop says it took them (WeChat Pay's schedule,
compressed to fractions of a second).

Faults for the error paths: ``fault`` = ``"500"``, ``"garbage"`` (unsigned
HTML), ``"signed_garbage"``, ``"unsigned"`` (valid JSON without signature),
``"badsig"`` (signed with a stranger's key), ``"slow"`` (act, then answer too
late: the request went through but the shop cannot know) — on every call
whose path starts with ``fault_path`` (and whose method is ``fault_method``,
if set), ``fault_times`` times (None: always).
"""
from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from kameng_wechatpay import protocol, testing

#: WeChat Pay's callback retry schedule (15s/15s/30s/3m/10m/…), in seconds / 300
NOTIFY_SCHEDULE = (0.0, 0.05, 0.05, 0.1, 0.6, 2.0)


class FakeWechatPay:
    def __init__(self, mchid=testing.MCHID, appid=testing.APPID, merchant_serial=testing.MERCHANT_SERIAL,
                 merchant_public_key=None, apiv3_key=testing.APIV3_KEY):
        self.mchid, self.appid, self.merchant_serial, self.apiv3_key = mchid, appid, merchant_serial, apiv3_key
        self.merchant_public_key = merchant_public_key or testing.merchant_key().public_key()
        #: how answers are signed: ``certificate`` or ``public_key``; callbacks follow ``notify_mode``
        self.sign_mode = "certificate"
        self.notify_mode = "certificate"
        self.trades: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.refund_posts: Counter = Counter()
        self.calls: list[tuple[str, str, int]] = []
        self.refunded_fen = 0
        #: new refunds start PROCESSING and finish after this many queries (0: SUCCESS at once)
        self.refund_processing_queries = 0
        self.fault: str | None = None
        self.fault_path = "/"
        self.fault_times: int | None = None
        self.fault_method: str | None = None
        self.slow_seconds = 0.6
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def start(self) -> FakeWechatPay:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the buyer's side -----------------------------------------------------------------
    def pay(self, out_trade_no: str, notify: bool = True, tamper_first: bool = False) -> list[int]:
        """The buyer pays: the trade becomes SUCCESS and (unless ``notify`` is
        off: a lost callback) the callback is sent until the shop takes it.
        ``tamper_first`` spoils the first delivery's signature (the shop must
        refuse it; WeChat Pay then retries). Returns the shop's statuses."""
        with self.lock:
            trade = self.trades[out_trade_no]
            if trade["trade_state"] == "NOTPAY":
                trade["trade_state"] = "SUCCESS"
                trade["transaction_id"] = "42000" + "".join(secrets.choice("0123456789") for _ in range(23))
        return self.send_notify(out_trade_no, tamper_first=tamper_first) if notify else []

    def send_notify(self, out_trade_no: str, tamper_first: bool = False) -> list[int]:
        trade = self.trades[out_trade_no]
        statuses = []
        for i, delay in enumerate(NOTIFY_SCHEDULE):
            time.sleep(delay)
            body, headers = testing.callback(self.transaction(trade), mode=self.notify_mode)
            if tamper_first and i == 0:
                headers["Wechatpay-Signature"] = testing.signed_headers(body + b" ")["Wechatpay-Signature"]
            req = urllib.request.Request(trade["notify_url"], data=body, method="POST",
                                         headers={**headers, "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    statuses.append(resp.status)
                    if 200 <= resp.status < 300:
                        return statuses
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
                exc.read()
        return statuses

    def transaction(self, trade: dict) -> dict:
        tx = testing.transaction(trade["out_trade_no"], trade["total"], trade.get("transaction_id"),
                                 state=trade["trade_state"], mchid=self.mchid, appid=trade["appid"])
        tx["trade_type"] = trade["trade_type"]
        if trade["trade_state"] == "NOTPAY":  # as WeChat Pay answers an unpaid order
            tx["amount"] = {"total": trade["total"], "payer_currency": "CNY"}
            tx.pop("payer")
        return tx

    # -- the HTTP side --------------------------------------------------------------------------
    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

        return Handler

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if not self.authenticated(h, method, body):
            return self.reply(h, method, 401, {"code": "SIGN_ERROR", "message": "签名错误"}, sign=False)
        fault = self._take_fault(method, h.path)
        if fault is not None and fault != "slow":
            return self.faulty(h, method, fault)
        status, data = self.route(method, h.path, body)
        if fault == "slow":
            time.sleep(self.slow_seconds)
        self.reply(h, method, status, data)

    def _take_fault(self, method: str, path: str) -> str | None:
        with self.lock:
            if (self.fault is None or not path.startswith(self.fault_path)
                    or self.fault_method not in (None, method)):
                return None
            if self.fault_times is not None:
                if self.fault_times <= 0:
                    return None
                self.fault_times -= 1
            return self.fault

    def authenticated(self, h, method: str, body: bytes) -> bool:
        try:
            auth = protocol.parse_authorization(h.headers.get("Authorization", ""))
        except protocol.ProtocolError:
            return False
        if auth["mchid"] != self.mchid or auth["serial_no"] != self.merchant_serial:
            return False
        if not auth["timestamp"].isdigit() or abs(time.time() - int(auth["timestamp"])) > 300:
            return False
        message = protocol.request_message(method, h.path, auth["timestamp"], auth["nonce_str"], body)
        return protocol.verify(self.merchant_public_key, message, auth["signature"])

    def reply(self, h, method, status: int, data, sign: bool = True, key=None) -> None:
        self.calls.append((method, urlsplit(h.path).path, status))
        body = b"" if data is None else protocol.dumps(data)
        headers = testing.signed_headers(body, self.sign_mode, key=key) if sign else {}
        try:
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            if body:
                h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the shop gave up waiting ("slow")

    def faulty(self, h, method, fault: str) -> None:
        if fault == "500":
            return self.reply(h, method, 500, {"code": "SYSTEM_ERROR", "message": "系统错误"})
        if fault == "unsigned":
            return self.reply(h, method, 200, {"code_url": "weixin://wxpay/bizpayurl?pr=unsigned"}, sign=False)
        if fault == "badsig":
            return self.reply(h, method, 200, {"code_url": "weixin://wxpay/bizpayurl?pr=forged"},
                              key=testing.stranger_key())
        body = b"<html>502 Bad Gateway</html>"
        headers = testing.signed_headers(body) if fault == "signed_garbage" else {}
        self.calls.append((method, urlsplit(h.path).path, 200))
        h.send_response(200)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    # -- WeChat Pay's API -------------------------------------------------------------------------
    def route(self, method: str, target: str, body: bytes):
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        try:
            data = protocol.loads(body) if body else None
        except protocol.ProtocolError:
            return 400, {"code": "PARAM_ERROR", "message": "body is not JSON"}
        with self.lock:
            if method == "POST" and path in ("/v3/pay/transactions/native", "/v3/pay/transactions/h5"):
                return self.create(path.rsplit("/", 1)[1], data)
            prefix = "/v3/pay/transactions/out-trade-no/"
            if path.startswith(prefix) and method == "GET":
                if query.get("mchid") != [self.mchid]:
                    return 400, {"code": "PARAM_ERROR", "message": "mchid"}
                trade = self.trades.get(unquote(path[len(prefix):]))
                if trade is None:
                    return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
                return 200, self.transaction(trade)
            if path.startswith(prefix) and path.endswith("/close") and method == "POST":
                return self.close(unquote(path[len(prefix):-len("/close")]), data)
            if path == "/v3/refund/domestic/refunds" and method == "POST":
                return self.refund(data)
            if path.startswith("/v3/refund/domestic/refunds/") and method == "GET":
                refund = self.refunds.get(unquote(path.rsplit("/", 1)[1]))
                if refund is None:
                    return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}
                if refund["status"] == "PROCESSING":
                    refund["queries_left"] -= 1
                    if refund["queries_left"] <= 0:
                        refund["status"] = "SUCCESS"
                return 200, {k: v for k, v in refund.items() if k != "queries_left"}
            if path == "/v3/certificates" and method == "GET":
                return 200, json.loads(testing.certificate_list(self.apiv3_key))
        return 404, {"code": "NOT_FOUND", "message": "no such API"}

    def create(self, kind: str, data) -> tuple[int, dict]:
        if not isinstance(data, dict):
            return 400, {"code": "PARAM_ERROR", "message": "body"}
        amount = data.get("amount") or {}
        bad = (data.get("appid") != self.appid or data.get("mchid") != self.mchid
               or not isinstance(data.get("description"), str) or not 0 < len(data["description"].encode()) <= 127
               or not protocol.OUT_TRADE_NO.fullmatch(str(data.get("out_trade_no", "")))
               or not str(data.get("notify_url", "")).startswith(("http://", "https://"))
               or "?" in str(data.get("notify_url", ""))
               or type(amount.get("total")) is not int or amount["total"] <= 0 or amount.get("currency") != "CNY")
        if kind == "h5":
            scene = data.get("scene_info") or {}
            bad = bad or not scene.get("payer_client_ip") or (scene.get("h5_info") or {}).get("type") != "Wap"
        if bad:
            return 400, {"code": "PARAM_ERROR", "message": "参数错误"}
        no = data["out_trade_no"]
        trade = self.trades.get(no)
        if trade is not None:
            if trade["trade_state"] != "NOTPAY":
                return 400, {"code": "ORDERPAID" if trade["trade_state"] == "SUCCESS" else "ORDER_CLOSED",
                             "message": "订单状态不对"}
            if trade["request"] != data:
                return 400, {"code": "INVALID_REQUEST", "message": "订单号重复"}
        else:
            trade = {"out_trade_no": no, "appid": data["appid"], "total": amount["total"], "trade_state": "NOTPAY",
                     "notify_url": data["notify_url"], "trade_type": kind.upper() if kind == "native" else "MWEB",
                     "request": data, "prepay": secrets.token_hex(8)}
            self.trades[no] = trade
        if kind == "native":
            return 200, {"code_url": f"weixin://wxpay/bizpayurl?pr={trade['prepay']}"}
        return 200, {"h5_url": f"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx{trade['prepay']}"
                               f"&package=1037687096"}

    def close(self, no: str, data):
        if not isinstance(data, dict) or data.get("mchid") != self.mchid:
            return 400, {"code": "PARAM_ERROR", "message": "mchid"}
        trade = self.trades.get(no)
        if trade is None:
            return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
        if trade["trade_state"] in ("SUCCESS", "REFUND"):
            return 400, {"code": "ORDERPAID", "message": "订单已支付"}
        trade["trade_state"] = "CLOSED"
        return 204, None

    def refund(self, data):
        if not isinstance(data, dict):
            return 400, {"code": "PARAM_ERROR", "message": "body"}
        no = str(data.get("out_refund_no", ""))
        self.refund_posts[no] += 1
        if no in self.refunds:  # the same refund request: answered again, refunded once
            return 200, {k: v for k, v in self.refunds[no].items() if k != "queries_left"}
        trade = next((t for t in self.trades.values() if t.get("transaction_id") == data.get("transaction_id")
                      or t["out_trade_no"] == data.get("out_trade_no")), None)
        if trade is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}
        if trade["trade_state"] not in ("SUCCESS", "REFUND"):
            return 400, {"code": "INVALID_REQUEST", "message": "订单未支付"}
        amount = data.get("amount") or {}
        done = sum(r["amount"]["refund"] for r in self.refunds.values() if r["out_trade_no"] == trade["out_trade_no"])
        if (type(amount.get("refund")) is not int or amount.get("total") != trade["total"] or amount["refund"] <= 0
                or done + amount["refund"] > trade["total"] or amount.get("currency") != "CNY"):
            return 400, {"code": "PARAM_ERROR", "message": "退款金额错误"}
        refund = {"refund_id": "50300" + secrets.token_hex(10), "out_refund_no": no,
                  "transaction_id": trade["transaction_id"], "out_trade_no": trade["out_trade_no"],
                  "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
                  "status": "PROCESSING" if self.refund_processing_queries else "SUCCESS",
                  "queries_left": self.refund_processing_queries, "create_time": "2024-01-01T12:30:00+08:00",
                  "amount": {"total": trade["total"], "refund": amount["refund"], "payer_total": trade["total"],
                             "payer_refund": amount["refund"], "currency": "CNY"}}
        self.refunds[no] = refund
        self.refunded_fen += amount["refund"]
        trade["trade_state"] = "REFUND"
        return 200, {k: v for k, v in refund.items() if k != "queries_left"}
