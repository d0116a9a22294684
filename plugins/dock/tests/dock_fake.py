"""A fake upstream kameng shop on 127.0.0.1: the docking API's server side,
written from API.md ("Docking API") independently of the connector's code
(its own canonical string and HMAC, its own JSON).

- Every request is checked the way the spec says: the four ``X-Kameng-*``
  headers, the key, the timestamp within 300 s, the nonce never seen before,
  the HMAC over ``METHOD\\nPATH\\nSORTED_QUERY\\nSHA256_HEX(BODY)\\nTIMESTAMP\\nNONCE``.
  Anything wrong is a 401 with kameng's codes (an address the key's
  allow-list leaves out a 403).
- ``GET goods`` / ``goods/{id}`` quote each account its own price (a tier
  price where one is set); ``GET balance``; ``POST orders`` debits the
  balance, is idempotent on ``out_order_no`` per key (the first answer 201,
  a repeat 200 with the same order) and refuses what it cannot sell with
  the API's error codes; ``GET orders/{out_order_no}`` or 404.
- Card keys are delivered at once from a pool; a direct recharge stays
  ``paid`` until :meth:`FakeUpstream.finish`, which also sends the signed
  callback to the order's ``callback_url``.
- ``post_modes`` / ``get_modes`` (consumed one per call) make it misbehave:
  ``hang`` (no answer until released, nothing done), ``hang_after`` (the
  order is made, then no answer), ``hang_then_create`` (no answer; the order
  is made when released), ``500`` / ``500_after`` (HTTP 500 before / after
  making the order), ``garbage`` / ``garbage_after`` (an HTML page with 200),
  ``redirect`` (302 elsewhere), ``huge`` (a 3 MiB body), ``429`` (rate limited).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

PREFIX = "/api/v1/dock"


def canonical(method: str, path: str, query: str, body: bytes, timestamp: str, nonce: str) -> str:
    pairs = sorted(p for p in query.split("&") if p) if query else []
    return "\n".join([method, path, "&".join(pairs), hashlib.sha256(body).hexdigest(), timestamp, nonce])


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed(key_id: str, secret: str, method: str, url: str, body: bytes, ts: int | None = None,
           nonce: str | None = None) -> dict:
    """Headers for a message to ``url`` (used for callbacks and by tests that
    play a client)."""
    parts = urlsplit(url)
    ts_text = str(int(time.time()) if ts is None else ts)
    nonce = nonce or secrets.token_urlsafe(12)
    return {"X-Kameng-Key": key_id, "X-Kameng-Timestamp": ts_text, "X-Kameng-Nonce": nonce,
            "X-Kameng-Signature": hmac_hex(secret, canonical(method, parts.path, parts.query, body, ts_text, nonce))}


def money(d: Decimal) -> str:
    return f"{d.quantize(Decimal('0.01'))}"


class Account:
    def __init__(self, key_id: str, secret: str, balance: str, prices: dict | None = None):
        self.key_id, self.secret = key_id, secret
        self.balance = Decimal(balance)
        self.prices = {k: Decimal(v) for k, v in (prices or {}).items()}  # tier prices by SKU code
        self.revoked = False
        self.address_refused = False  # the key's IP allow-list leaves the caller out


class FakeUpstream:
    def __init__(self, currency: str = "CNY"):
        self.currency = currency
        self.accounts: dict[str, Account] = {}
        self.goods: list[dict] = []
        self.pools: dict[str, list[tuple[str | None, str]]] = {}  # SKU code → card keys left
        self.orders: dict[tuple[str, str], dict] = {}  # (key id, out_order_no) → order
        self.nonces: set[tuple[str, str]] = set()
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of every call
        self.callbacks: list[tuple[str, int]] = []  # (out_order_no, HTTP status) of every callback sent
        #: refuse every callback_url (as a shop does for an http or private address)
        self.refuse_callback_urls = False
        #: anti-fraud refuses every order
        self.blocked = False
        self.post_modes: list[str] = []
        self.get_modes: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.clock = time.time
        self._seq = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        #: set when a ``hang_then_create`` order was finally made
        self.landed = threading.Event()

    def start(self) -> FakeUpstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- arranging ---------------------------------------------------------------------

    def add_account(self, key_id: str, secret: str, balance: str = "100.00", prices: dict | None = None) -> Account:
        self.accounts[key_id] = Account(key_id, secret, balance, prices)
        return self.accounts[key_id]

    def add_goods(self, goods_id, name: str, kind: str, skus: list[dict], **extra) -> None:
        """``skus``: ``{"code", "name", "price", "keys": n}`` (card keys) or without ``keys`` (not counted)."""
        entry = {"id": goods_id, "name": name, "type": kind, "skus": [], **extra}
        for sku in skus:
            entry["skus"].append({"code": sku["code"], "name": sku.get("name", sku["code"]),
                                  "price": Decimal(sku["price"])})
            if "keys" in sku:
                self.pools[sku["code"]] = [(f"N-{sku['code']}-{i}", f"S-{sku['code']}-{i}")
                                           for i in range(sku["keys"])]
        self.goods.append(entry)

    def orders_of(self, key_id: str) -> list[dict]:
        return [o for (k, _no), o in self.orders.items() if k == key_id]

    def posts(self) -> int:
        return sum(1 for m, p, _s in self.log if m == "POST" and p.endswith("/orders"))

    # -- the shop's side ------------------------------------------------------------------

    def _sku(self, code: str):
        for goods in self.goods:
            for sku in goods["skus"]:
                if sku["code"] == code:
                    return goods, sku
        return None, None

    def _goods_json(self, goods: dict, account: Account) -> dict:
        out = {k: v for k, v in goods.items() if k != "skus"}
        out["skus"] = [{"code": s["code"], "name": s["name"],
                        "price": money(account.prices.get(s["code"], s["price"])),
                        "stock": len(self.pools[s["code"]]) if s["code"] in self.pools else None}
                       for s in goods["skus"]]
        return out

    def _order_json(self, order: dict) -> dict:
        out = {k: order[k] for k in ("out_order_no", "order_no", "status")}
        out["amount"] = money(order["amount"])
        out["keys"] = [{"number": n, "secret": s} for n, s in order["keys"]] if order["status"] == "delivered" else []
        return out

    def create(self, account: Account, doc) -> tuple[int, dict]:
        if not isinstance(doc, dict):
            return 400, error("invalid_request", "not an object")
        out_no, code, qty = doc.get("out_order_no"), doc.get("sku"), doc.get("quantity")
        if not isinstance(out_no, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", out_no):
            return 400, error("invalid_request", "out_order_no")
        if doc.get("callback_url") and self.refuse_callback_urls:
            return 422, error("invalid_callback_url", "not a public https URL")
        if self.blocked:
            return 403, error("blocked", "anti-fraud")
        with self.lock:
            existing = self.orders.get((account.key_id, out_no))
            if existing is not None:
                if existing["sku"] != code or existing["quantity"] != qty:
                    return 409, error("idempotency_conflict", "out_order_no used for another order")
                return 200, self._order_json(existing)
            _goods, sku = self._sku(code) if isinstance(code, str) else (None, None)
            if sku is None:
                return 404, error("unknown_sku", "no such SKU")
            if type(qty) is not int or not 1 <= qty <= 10:
                return 422, error("invalid_quantity", "1 to 10")
            pool = self.pools.get(code)
            if pool is not None and len(pool) < qty:
                return 409, error("out_of_stock", "not enough keys")
            amount = account.prices.get(code, sku["price"]) * qty
            if account.balance < amount:
                return 409, error("insufficient_balance", "top up your balance")
            account.balance -= amount
            self._seq += 1
            order = {"out_order_no": out_no, "order_no": f"UP{self._seq:08d}", "sku": code, "quantity": qty,
                     "amount": amount, "keys": [], "status": "paid", "account": account,
                     "callback_url": doc.get("callback_url") or "", "recharge": doc.get("recharge")}
            if pool is not None:
                order["keys"], pool[:qty] = pool[:qty], []
                order["status"] = "delivered"
            self.orders[(account.key_id, out_no)] = order
            return 201, self._order_json(order)

    def finish(self, out_order_no: str, status: str = "delivered", key_id: str | None = None,
               send: bool = True) -> dict:
        """Complete a direct recharge (``delivered``, or ``refunded`` with the
        money back) and send its callback."""
        key_id = key_id or next(iter(self.accounts))
        with self.lock:
            order = self.orders[(key_id, out_order_no)]
            order["status"] = status
            if status == "refunded":
                order["account"].balance += order["amount"]
        if send and order["callback_url"]:
            self.send_callback(order)
        return order

    def callback_message(self, order: dict, ts: int | None = None, nonce: str | None = None,
                         secret: str | None = None, key_id: str | None = None) -> tuple[str, dict, bytes]:
        """``(url, headers, body)`` of the signed callback for ``order``."""
        account = order["account"]
        body = json.dumps(self._order_json(order), separators=(",", ":")).encode()
        url = order["callback_url"]
        headers = signed(key_id or account.key_id, secret or account.secret, "POST", url, body, ts, nonce)
        return url, {**headers, "Content-Type": "application/json"}, body

    def send_callback(self, order: dict) -> int:
        url, headers, body = self.callback_message(order)
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        self.callbacks.append((order["out_order_no"], status))
        return status

    # -- HTTP ---------------------------------------------------------------------------------

    def authenticate(self, method: str, path: str, query: str, headers, body: bytes):
        """The calling account, or ``(status, error)``."""
        key_id, ts, nonce, sig = (headers.get(h) for h in (
            "X-Kameng-Key", "X-Kameng-Timestamp", "X-Kameng-Nonce", "X-Kameng-Signature"))
        if not (key_id and ts and nonce and sig):
            return 401, error("missing_credentials", "missing signature headers")
        if not re.fullmatch(r"[0-9]{1,12}", ts) or abs(self.clock() - int(ts)) > 300:
            return 401, error("stale_timestamp", "the timestamp is off")
        if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", nonce):
            return 401, error("invalid_nonce", "8 to 64 of A-Z a-z 0-9 _ -")
        account = self.accounts.get(key_id)
        if account is None or account.revoked:
            return 401, error("invalid_key", "unknown or revoked key")
        if not hmac.compare_digest(hmac_hex(account.secret, canonical(method, path, query, body, ts, nonce)),
                                   sig):
            return 401, error("invalid_signature", "bad signature")
        if account.address_refused:
            return 403, error("ip_not_allowed", "not from this address")
        with self.lock:
            if (key_id, nonce) in self.nonces:
                return 401, error("nonce_reused", "nonce used already")
            self.nonces.add((key_id, nonce))
        return account

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload=None, raw: bytes | None = None, ctype="application/json",
                      headers=None):
                data = raw if raw is not None else json.dumps(payload).encode()
                path = urlsplit(self.path).path
                fake.log.append((self.command, path, status))
                try:
                    self.send_response(status)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def _hang(self):
                fake.release.wait(timeout=60)

            def _serve(self):
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not parts.path.startswith(PREFIX + "/"):
                    return self._send(404, error("not_found", "no such page"))
                auth = fake.authenticate(self.command, parts.path, parts.query, self.headers, body)
                if isinstance(auth, tuple):
                    return self._send(*auth)
                account, endpoint = auth, parts.path[len(PREFIX):]
                modes = fake.post_modes if self.command == "POST" else fake.get_modes
                mode = modes.pop(0) if modes else "normal"
                if mode == "hang":
                    return self._hang()
                if mode == "500":
                    return self._send(500, raw=b"Internal Server Error", ctype="text/plain")
                if mode == "garbage":
                    return self._send(200, raw=b"<html><body>maintenance</body></html>", ctype="text/html")
                if mode == "429":
                    return self._send(429, error("rate_limited", "slow down"))
                if mode == "redirect":
                    return self._send(302, raw=b"", headers={"Location": fake.url + "/elsewhere"})
                if mode == "huge":
                    return self._send(200, raw=b" " * (3 * 1024 * 1024))
                if mode == "hang_then_create":
                    self._hang()
                    fake.create(account, json.loads(body))
                    fake.landed.set()
                    return None
                status, payload = self._route(account, endpoint, body)
                if mode == "hang_after":
                    return self._hang()
                if mode == "500_after":
                    return self._send(500, raw=b"Internal Server Error", ctype="text/plain")
                if mode == "garbage_after":
                    return self._send(200, raw=b"<html><body>oops</body></html>", ctype="text/html")
                return self._send(status, payload)

            def _route(self, account, endpoint, body):
                if self.command == "GET" and endpoint == "/balance":
                    return 200, {"balance": money(account.balance), "currency": fake.currency}
                if self.command == "GET" and endpoint == "/goods":
                    return 200, {"items": [fake._goods_json(g, account) for g in fake.goods]}
                if self.command == "GET" and endpoint.startswith("/goods/"):
                    wanted = unquote(endpoint[len("/goods/"):])
                    for goods in fake.goods:
                        if str(goods["id"]) == wanted:
                            return 200, fake._goods_json(goods, account)
                    return 404, error("not_found", "no such goods")
                if self.command == "POST" and endpoint == "/orders":
                    try:
                        doc = json.loads(body)
                    except ValueError:
                        return 400, error("invalid_request", "not JSON")
                    return fake.create(account, doc)
                if self.command == "GET" and endpoint.startswith("/orders/"):
                    order = fake.orders.get((account.key_id, unquote(endpoint[len("/orders/"):])))
                    if order is None:
                        return 404, error("not_found", "no such order")
                    return 200, fake._order_json(order)
                return 404, error("not_found", "no such endpoint")

            def do_GET(self):
                self._serve()

            def do_POST(self):
                self._serve()

        return Handler


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}
