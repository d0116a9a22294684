"""A fake epay platform on 127.0.0.1: the server side of PROTOCOLS.md A1,
written from the spec and the 彩虹易支付 sources it cites.

It verifies the shop's signed requests (V1 MD5 with the merchant key, V2
RSA with the merchant public key and a 300 s timestamp), creates trades
(refusing a re-submit whose parameters changed), lets a test pay one, sends
the notify the way ``creat_callback`` builds it (``money`` as PHP's float,
so "1.00" goes out as "1"; MD5 for trades made by submit.php/mapi.php, RSA
with a timestamp for trades made by ``api/pay/*``) and retries until the
shop answers ``success`` (the real 1, 3, 20, 60 minute schedule, compressed),
answers queries, and refunds (V2 once per ``out_refund_no``; V1 has no
refund number, so it refunds again when asked again).

``faults[endpoint]`` is a list of misbehaviours consumed one per call:
``garbage`` (not JSON), ``500``, ``refuse`` (an error answer), ``hang`` (no answer until the test ends) and
``hang_after`` (do the work, then never answer: the lost-answer case).
"""
from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from kameng_epay import protocol
from kameng_epay.testing import TEST_KEY, TEST_PID, key_pem

#: seconds between notify attempts: the real 0, 1, 3, 19, 55 minutes, compressed
SCHEDULE = (0, 0.01, 0.02, 0.04, 0.08)
_trade_numbers = itertools.count(int(time.strftime("%Y%m%d%H%M%S")) * 100000 + 11111)


def php_float(money: str) -> str:
    """``(float)"1.00"`` printed by PHP: ``1``; ``"12.50"`` → ``12.5``."""
    text = format(Decimal(money), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def acknowledged(body: str) -> bool:
    """``do_notify``: a substring test, so any page that contains one of these words stops the retries."""
    return any(word in body for word in ("success", "SUCCESS", "Success"))


@dataclass
class Trade:
    trade_no: str
    out_trade_no: str
    type: str
    name: str
    money: str
    notify_url: str
    return_url: str
    param: str
    api: bool  # made through api/pay/* (RSA notifies) or submit.php/mapi.php (MD5)
    status: int = 0
    refundmoney: Decimal = Decimal("0")


@dataclass
class RefundRecord:
    refund_no: str
    out_refund_no: str
    trade_no: str
    money: str
    status: int = 1


class Refusal(Exception):
    def __init__(self, msg: str, code: int = -1):
        super().__init__(msg)
        self.msg, self.code = msg, code


class FakeEpay:
    def __init__(self, version: str = "1", pid: str = TEST_PID, key: str = TEST_KEY, sign_mode: str = "plain"):
        self.version, self.pid, self.key, self.sign_mode = str(version), pid, key, sign_mode
        self.merchant_public = protocol.load_public_key(key_pem("merchant_public"))
        self.platform_private = protocol.load_private_key(key_pem("platform_private"))
        self.lock = threading.Lock()
        self.trades: dict[str, Trade] = {}
        self.refunds: dict[str, RefundRecord] = {}
        self.refund_executions: list[tuple[str, str]] = []
        self.calls: list[str] = []
        self.faults: dict[str, list[str]] = {}
        self.notify_replies: list[tuple[int, str]] = []
        self.refund_api = True
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def start(self) -> FakeEpay:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- HTTP --------------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        form = {}
        if method == "POST":
            length = int(h.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(h.rfile.read(length).decode("utf-8"), keep_blank_values=True))
        path = parts.path.lstrip("/")
        endpoint = f"api.php?act={query.get('act', '')}" if path == "api.php" else path
        with self.lock:
            self.calls.append(endpoint)
            fault = self.faults.get(endpoint, []).pop(0) if self.faults.get(endpoint) else None
        if fault == "hang":
            self._release.wait(30)
            return
        if fault == "refuse":
            return self._send(h, 200, self._json({"code": -2, "msg": "支付通道维护中"}), "application/json")
        if fault in ("garbage", "500"):
            body = b"<html>502 Bad Gateway</html>" if fault == "garbage" else b"internal error"
            return self._send(h, 200 if fault == "garbage" else 500, body, "text/html")
        try:
            status, body, ctype = self.route(endpoint, method, query, form)
        except Refusal as exc:
            status, body, ctype = 200, self._json({"code": exc.code, "msg": exc.msg}), "application/json"
        if fault == "hang_after":
            self._release.wait(30)
            return
        self._send(h, status, body, ctype)

    @staticmethod
    def _send(h, status: int, body: bytes, ctype: str) -> None:
        h.send_response(status)
        if status == 302:  # the body is the target
            h.send_header("Location", body.decode())
        h.send_header("Content-Type", ctype + "; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def _json(data: dict) -> bytes:
        return json.dumps(data, ensure_ascii=True).encode()

    def route(self, endpoint: str, method: str, query: dict, form: dict):
        def ok(data):
            return 200, self._json(data), "application/json"

        if endpoint == "submit.php":
            fields = form if method == "POST" else query
            self.check_sign(fields, api=False)
            trade = self.create(fields, api=False, need_type=False)
            return 200, f"<html>cashier for {trade.trade_no}</html>".encode(), "text/html"
        if endpoint == "mapi.php" and method == "POST":
            self.check_sign(form, api=False)
            if not form.get("clientip"):
                raise Refusal("用户IP地址(clientip)不能为空")
            trade = self.create(form, api=False)
            return ok({"code": 1, "trade_no": trade.trade_no, **self.answer(trade)})
        if endpoint == "api.php?act=order" and method == "GET":
            self.check_key(query)
            return ok({"code": 1, "msg": "succ", **self.describe(self.find(query), v2=False)})
        if endpoint == "api.php?act=refund" and method == "POST":
            self.check_key(form)
            trade = self.find(form, missing="当前订单不存在！")
            return ok(self.refund(trade, form.get("money", ""), None))
        paying = re.fullmatch(r"pay/(\d+)/?", endpoint)
        if paying:  # the buyer's payment page: GET shows it, POST pays
            trade = next((t for t in self.trades.values() if t.trade_no == paying.group(1)), None)
            if trade is None:
                return 404, b"no such trade", "text/plain"
            if method == "GET":
                return 200, f"<html>pay {trade.money} for {trade.name}</html>".encode(), "text/html"
            self.pay(trade.out_trade_no)
            self.deliver_notifies(trade.out_trade_no)
            back = trade.return_url + ("&" if "?" in trade.return_url else "?") + urlencode(self.notify_fields(trade))
            return 302, back.encode(), "text/plain"
        if endpoint.startswith("api/") and method == "POST":
            self.check_sign(form, api=True)
            return ok(self.signed(self.v2(endpoint[4:], form)))
        return 404, b"not found", "text/plain"

    def v2(self, name: str, form: dict) -> dict:
        if name == "pay/create":
            trade = self.create(form, api=True)
            answer = self.answer(trade)
            kind = "qrcode" if "qrcode" in answer else "html" if "html" in answer else "jump"
            return {"code": 0, "trade_no": trade.trade_no, "pay_type": kind, "pay_info": next(iter(answer.values()))}
        if name == "pay/query":
            return {"code": 0, **self.describe(self.find(form), v2=True)}
        if name == "pay/refund":
            return self.refund(self.find(form, missing="当前订单不存在！"), form.get("money", ""),
                               form.get("out_refund_no") or None)
        if name == "pay/refundquery":
            record = self.refunds.get(form.get("out_refund_no", ""))
            if record is None:
                raise Refusal("退款记录不存在")
            return {"code": 0, "refund_no": record.refund_no, "out_refund_no": record.out_refund_no,
                    "trade_no": record.trade_no, "money": record.money, "status": str(record.status)}
        if name == "merchant/info":
            return {"code": 0, "pid": int(self.pid), "status": "1", "money": "0.00", "order_num": str(len(self.trades))}
        raise Refusal("接口方法不存在", -5)

    # -- the platform's rules ---------------------------------------------------------------
    def check_key(self, fields: dict) -> None:
        if fields.get("pid") != self.pid:
            raise Refusal("商户ID不存在", -3)
        if fields.get("key") != self.key:
            raise Refusal("商户密钥错误", -3)

    def check_sign(self, fields: dict, api: bool) -> None:
        """``ApiHelper::api_verify``: MD5 with the key, or RSA with the merchant
        public key; the api/* endpoints need a fresh timestamp too."""
        if fields.get("pid") != self.pid:
            raise Refusal("商户不存在！")
        if "sign" not in fields:
            raise Refusal("缺少签名参数")
        if api and not protocol.fresh(fields.get("timestamp"), time.time()):
            raise Refusal("时间戳字段不正确，请检查服务器时间", -3)
        if fields.get("sign_type") == "RSA":
            good = protocol.rsa_verify(fields, fields["sign"], self.merchant_public)
        else:
            good = not api and protocol.md5_sign(fields, self.key, self.sign_mode) == fields["sign"]
        if not good:
            raise Refusal(f"{fields.get('sign_type') or 'MD5'}签名校验失败", -3)

    def create(self, fields: dict, api: bool, need_type: bool = True) -> Trade:
        for name, label in (("out_trade_no", "订单号"), ("notify_url", "通知地址"), ("name", "商品名称"),
                            ("money", "金额")):
            if protocol.is_empty(fields.get(name)):
                raise Refusal(f"{label}({name})不能为空")
        if need_type and not fields.get("type"):
            raise Refusal("支付方式(type)不能为空")
        money = fields["money"]
        if not re.fullmatch(r"[0-9.]+", money) or Decimal(money) <= 0:
            raise Refusal("金额不合法")
        if not re.fullmatch(r"[a-zA-Z0-9._\-|]+", fields["out_trade_no"]):
            raise Refusal("订单号(out_trade_no)格式不正确")
        with self.lock:
            old = self.trades.get(fields["out_trade_no"])
            if old is not None:
                if old.status > 0:
                    raise Refusal(f"该订单({old.out_trade_no})已完成支付，请勿重复发起支付")
                if (Decimal(old.money) != Decimal(money) or old.name != fields["name"]
                        or old.notify_url != fields["notify_url"] or old.return_url != fields.get("return_url", "")
                        or old.param != fields.get("param", "")):
                    raise Refusal(f"该订单({old.out_trade_no})支付参数有变化，请更换订单号重新发起支付")
                old.type = fields.get("type") or old.type
                return old
            trade = Trade(trade_no=str(next(_trade_numbers)), out_trade_no=fields["out_trade_no"],
                          type=fields.get("type", ""), name=fields["name"], money=money,
                          notify_url=fields["notify_url"], return_url=fields.get("return_url", ""),
                          param=fields.get("param", ""), api=api)
            self.trades[trade.out_trade_no] = trade
            return trade

    def answer(self, trade: Trade) -> dict:
        if trade.type == "wxpay":
            return {"qrcode": f"weixin://wxpay/bizpayurl?pr={trade.trade_no}"}
        if trade.type == "qqpay":
            return {"html": f"<form action='{self.url}pay/{trade.trade_no}'></form>"}
        return {"payurl": f"{self.url}pay/{trade.trade_no}/"}

    def find(self, fields: dict, missing: str = "订单号不存在") -> Trade:
        trade = self.trades.get(fields.get("out_trade_no", ""))
        if trade is None:
            raise Refusal(missing)
        return trade

    def describe(self, trade: Trade, v2: bool) -> dict:
        out = {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "type": trade.type,
               "pid": self.pid, "name": trade.name, "money": trade.money, "status": str(trade.status)}
        if v2 and trade.refundmoney:
            out["refundmoney"] = format(trade.refundmoney, "f")
        return out

    def refund(self, trade: Trade, money: str, out_refund_no: str | None) -> dict:
        """``Order::refund``; V2 answers a known ``out_refund_no`` without refunding again."""
        if not self.refund_api:
            raise Refusal("商户未开启订单退款API接口", -2)
        if not re.fullmatch(r"[0-9.]+", money or ""):
            raise Refusal("金额输入错误")
        with self.lock:
            if out_refund_no and out_refund_no in self.refunds:
                record = self.refunds[out_refund_no]
                return {"code": 0, "refund_no": record.refund_no, "out_refund_no": out_refund_no,
                        "trade_no": record.trade_no, "money": record.money, "msg": "已存在相同退款单号！"}
            if trade.status not in (1, 2, 3):
                raise Refusal("该订单状态不支持退款！")
            left = Decimal(trade.money) - trade.refundmoney
            if Decimal(money) > left or left <= 0:
                raise Refusal("退款金额不能超过该订单剩余可退款金额！")
            refund_no = str(next(_trade_numbers))
            trade.status, trade.refundmoney = 2, trade.refundmoney + Decimal(money)
            self.refunds[out_refund_no or refund_no] = RefundRecord(refund_no, out_refund_no or refund_no,
                                                                    trade.trade_no, money)
            self.refund_executions.append((trade.out_trade_no, money))
        return {"code": 0, "refund_no": refund_no, "out_refund_no": out_refund_no or refund_no,
                "trade_no": trade.trade_no, "money": money, "reducemoney": money}

    def signed(self, data: dict) -> dict:
        """``ApiHelper::load_api``: a successful V2 answer gets a timestamp and the platform's signature."""
        if data.get("code") != 0:
            return data
        data = {**data, "timestamp": str(int(time.time())), "sign_type": "RSA"}
        data["sign"] = protocol.rsa_sign(protocol.signed_fields_of(data), self.platform_private)
        return data

    # -- paying and notifying ---------------------------------------------------------------
    def pay(self, out_trade_no: str) -> Trade:
        with self.lock:
            trade = self.trades[out_trade_no]
            trade.status = 1
            return trade

    def notify_fields(self, trade: Trade, **changes) -> dict:
        """``creat_callback``: MD5 for submit.php/mapi.php trades, RSA + timestamp for api/pay/* ones."""
        fields = {"pid": self.pid, "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "type": trade.type,
                  "name": trade.name, "money": php_float(trade.money), "trade_status": "TRADE_SUCCESS"}
        if trade.api:
            fields["api_trade_no"] = "4200" + trade.trade_no
        if trade.param:
            fields["param"] = trade.param
        fields.update(changes)
        if trade.api:
            fields["timestamp"] = fields.get("timestamp") or str(int(time.time()))
            fields["sign_type"] = "RSA"
            fields["sign"] = protocol.rsa_sign(fields, self.platform_private)
        else:
            fields["sign"] = protocol.md5_sign(fields, self.key, self.sign_mode)
            fields["sign_type"] = "MD5"
        return fields

    def send_notify(self, trade: Trade, after_sign: dict | None = None, **changes) -> tuple[int, str]:
        """One notify (``changes`` are signed, ``after_sign`` replaces fields after signing: a forgery)."""
        fields = {**self.notify_fields(trade, **changes), **(after_sign or {})}
        url = trade.notify_url + ("&" if "?" in trade.notify_url else "?") + urlencode(fields)
        with httpx.Client(timeout=10, trust_env=False) as client:
            resp = client.get(url)
        reply = (resp.status_code, resp.text)
        self.notify_replies.append(reply)
        return reply

    def deliver_notifies(self, out_trade_no: str, schedule=SCHEDULE, before_attempt=None) -> list[tuple[int, str]]:
        """``do_notify`` then the cron retries until the body holds ``success``
        (``before_attempt(i)`` runs before each try); the replies, in order."""
        trade = self.trades[out_trade_no]
        replies = []
        for i, delay in enumerate(schedule):
            time.sleep(delay)
            if before_attempt is not None:
                before_attempt(i)
            replies.append(self.send_notify(trade))
            if acknowledged(replies[-1][1]):
                break
        return replies
