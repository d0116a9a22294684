"""A fake acg-faka shop on 127.0.0.1 speaking the legacy 共享店铺 API.

It does what ``SharedValidation`` and the ``Shared\\Commodity`` controller
do, written from the PHP and not from the connector: the form is read the
way PHP reads it (``sku[颜色]=红`` is a nested array), the signature is
``md5(urldecode(http_build_query(ksort(post - sign - '')) . "&key=" . key))``
recomputed with ``quote_plus``/``unquote`` over every posted field, a used
``request_no`` is refused inside the "transaction" (nothing charged), and a
trade charges the balance and answers the cards joined by newlines.

``legacy=True`` plays an older acg-faka: the goods list carries the
account's prices (``factory_price``, ``[category_factory]``) and the
commodity's stock column, and ``stock``/``valuation`` do not exist (404).

Faults are scripted per path: ``fake.script[path] = [behaviour, …]``, one
behaviour per request, then normal again. Behaviours: ``"garbage"`` (HTML
instead of JSON), ``("status", code)``, ``"hang"`` (answer nothing until
``fake.release`` is set), ``"hang_after"`` / ``"garbage_after"`` (do the
work, then hang or answer garbage: the order exists but the answer is lost).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote_plus, unquote_to_bytes

APP_ID = 1001
APP_KEY = "fAkeAcgKey0123456789abcdefXYZ"
CARD_MESSAGE_GONE = "很抱歉，有人在你付款之前抢走了商品，请联系客服。"


# -- the PHP side, spelled out ---------------------------------------------------------------


def php_post(body: bytes) -> dict:
    """``$_POST`` for a urlencoded body: ``a[b]=c`` nests, the last value wins."""
    post: dict = {}
    for name, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        m = re.fullmatch(r"([^\[\]]+)\[([^\[\]]*)\]", name)
        if m:
            sub = post.setdefault(m.group(1), {})
            if isinstance(sub, dict):
                sub[m.group(2)] = value
        else:
            post[name] = value
    return post


def http_build_query(data: dict) -> str:
    parts = []
    for name, value in data.items():
        if isinstance(value, dict):
            parts += [f"{quote_plus(f'{name}[{k}]')}={quote_plus(str(v))}" for k, v in value.items()]
        else:
            parts.append(f"{quote_plus(name)}={quote_plus(str(value))}")
    return "&".join(parts)


def php_urldecode(text: str) -> bytes:
    return unquote_to_bytes(text.replace("+", " "))


def generate_signature(data: dict, app_key: str) -> str:
    data = {k: v for k, v in sorted(data.items()) if k != "sign" and v != ""}
    return hashlib.md5(php_urldecode(http_build_query(data) + "&key=" + app_key)).hexdigest()


def parse_ini(text: str) -> dict:
    out, node = {}, None
    for line in text.strip().splitlines():
        m = re.fullmatch(r"\[(.*)\]", line)
        if m:
            node = out.setdefault(m.group(1), {})
            continue
        name, value = line.split("=")
        path = name.split(".")
        cur = node
        for p in path[:-1]:
            cur = cur.setdefault(p, {})
        cur[path[-1]] = value
    return out


def to_ini(config: dict) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            if isinstance(v, dict):
                lines += [f"{k}.{k2}={v2}" for k2, v2 in v.items()]
            else:
                lines.append(f"{k}={v}")
    return "\n".join(lines)


# -- the shop ---------------------------------------------------------------------------------


class Refused(Exception):
    pass


@dataclass
class Commodity:
    code: str
    name: str
    price: Decimal
    user_price: Decimal
    category: str = "游戏点卡"
    delivery_way: int = 0
    races: dict = field(default_factory=dict)  # race -> list price
    skus: dict = field(default_factory=dict)  # group -> {option: surcharge}
    widget: list = field(default_factory=list)
    stock: int = 0  # the stock column (goods delivered by hand)
    delivery_message: str = "正在发货中，请耐心等待，如有疑问，请联系客服。"
    minimum: int = 0
    maximum: int = 0

    def config(self) -> dict:
        out = {}
        if self.races:
            out["category"] = {k: str(v) for k, v in self.races.items()}
        if self.skus:
            out["sku"] = {g: {o: str(p) for o, p in opts.items()} for g, opts in self.skus.items()}
        return out


class FakeAcgFaka:
    def __init__(self, legacy: bool = False, discount: str = "0.1"):
        self.legacy = legacy
        self.discount = Decimal(discount)  # this account's group discount (0.1: 10 % off)
        self.lose_cards = False  # the cards are gone by the time the trade pays: charged, nothing delivered
        self.users = {APP_ID: {"app_key": APP_KEY, "balance": Decimal("100.00")}}
        self.shop_name = "测试发卡网"
        self.commodities: dict[str, Commodity] = {}
        self.cards: dict[tuple, list[str]] = {}  # (code, race, sku-json) -> secrets
        self.orders: list[dict] = []
        self.requests: list[tuple[str, dict]] = []
        self.script: dict[str, list] = {}
        self.release = threading.Event()
        self.traded = threading.Event()  # set when a trade has charged (a test may wait for it)
        self.lock = threading.Lock()
        self.server = None
        self._seq = 0

    # setup
    def add(self, commodity: Commodity, cards=None) -> Commodity:
        """``cards``: ``{race: [secret, …]}``, or ``[(race, {group: option}, [secret, …]), …]``."""
        self.commodities[commodity.code] = commodity
        entries = [(race, {}, secrets) for race, secrets in cards.items()] if isinstance(cards, dict) else cards
        for race, sku, secrets in entries or []:
            self.cards[(commodity.code, race, json.dumps(sku, sort_keys=True, ensure_ascii=False))] = list(secrets)
        return commodity

    def unit_price(self, c: Commodity, race: str, sku: dict) -> Decimal:
        base = Decimal(str(c.races[race])) if race else c.user_price
        base = (base - base * self.discount).quantize(Decimal("0.01"))
        for g, o in sku.items():
            base += Decimal(str(c.skus[g][o]))
        return base

    def count(self, code: str, race: str, sku: dict | None) -> int:
        total = 0
        for (c, r, s), secrets in self.cards.items():
            if c == code and (not race or r == race) and (sku is None or json.loads(s) == sku):
                total += len(secrets)
        return total

    # server
    def start(self) -> FakeAcgFaka:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.handle(self, self.path, body)

            def do_GET(self):
                self.send_response(405)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _reply(self, handler, status: int, body: bytes, ctype="application/json; charset=utf-8") -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def handle(self, handler, path: str, body: bytes) -> None:
        post = php_post(body)
        with self.lock:
            self.requests.append((path, post))
            script = self.script.get(path) or []
            behaviour = script.pop(0) if script else None
        if behaviour == "hang":
            self.release.wait(30)
            return
        if behaviour == "garbage":
            return self._reply(handler, 200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        if isinstance(behaviour, tuple) and behaviour[0] == "status":
            return self._reply(handler, behaviour[1], b"<html>error</html>", "text/html")
        answer = self.answer(path, post)
        if answer is None:
            return self._reply(handler, 404, b"<html>404 Not Found</html>", "text/html")
        if behaviour == "hang_after":
            self.release.wait(30)
            return
        if behaviour == "garbage_after":
            return self._reply(handler, 200, b"Fatal error: Allowed memory size exhausted", "text/html")
        self._reply(handler, 200, json.dumps(answer, ensure_ascii=True, default=str).encode())

    def answer(self, path: str, post: dict):
        routes = {"/shared/authentication/connect": self.connect, "/shared/commodity/items": self.items,
                  "/shared/commodity/item": self.item, "/shared/commodity/inventory": self.inventory,
                  "/shared/commodity/trade": self.trade, "/shared/commodity/query": self.query}
        if not self.legacy:
            routes.update({"/shared/commodity/stock": self.stock, "/shared/commodity/valuation": self.valuation})
        route = routes.get(path)
        if route is None:
            return None
        try:
            user = self.validate(post)
            with self.lock:
                return {"code": 200, "msg": "success", "data": route(user, post)}
        except Refused as exc:
            return {"code": 0, "msg": str(exc)}

    def validate(self, post: dict) -> dict:
        """``SharedValidation::handle``."""
        app_id = post.get("app_id")
        if not isinstance(app_id, str) or not app_id.isdigit() or int(app_id) not in self.users:
            raise Refused("商户ID不存在")
        user = self.users[int(app_id)]
        sign = post.get("sign")
        if not isinstance(sign, str) or not hmac.compare_digest(generate_signature(post, user["app_key"]), sign):
            raise Refused("密钥错误")
        return user

    # endpoints
    def connect(self, user, post):
        return {"shopName": self.shop_name, "balance": str(user["balance"])}

    def _row(self, c: Commodity) -> dict:
        config = c.config()
        row = {"id": hash(c.code) % 1000, "name": c.name, "code": c.code, "description": f"<p>{c.name}</p>",
               "price": str(c.price), "user_price": str(c.user_price), "status": 1, "delivery_way": c.delivery_way,
               "widget": json.dumps(c.widget, ensure_ascii=False) if c.widget else None, "minimum": c.minimum,
               "maximum": c.maximum, "draft_status": 0}
        if self.legacy:
            if c.races:
                config["category_factory"] = {r: str(self.unit_price(c, r, {})) for r in c.races}
                row["factory_price"] = 0
            else:
                row["factory_price"] = str(self.unit_price(c, "", {}))
            row["stock"] = c.stock  # the column: not the key count
            row["api_status"] = 1
        else:
            row["stock"] = self.count(c.code, "", None) if c.delivery_way == 0 else c.stock
        row["config"] = to_ini(config)
        return row

    def items(self, user, post):
        cats: dict[str, list] = {}
        for c in self.commodities.values():
            cats.setdefault(c.category, []).append(self._row(c))
        return [{"id": i, "name": name, "children": rows} for i, (name, rows) in enumerate(cats.items(), 1)]

    def _commodity(self, code) -> Commodity:
        c = self.commodities.get(code if isinstance(code, str) else "")
        if c is None:
            raise Refused("商品不存在")
        return c

    def item(self, user, post):
        if self.legacy:  # reads sharedCode and answers the tree cut down to the one commodity
            c = self._commodity(post.get("sharedCode"))
            return [{"id": 1, "name": c.category, "children": [self._row(c)]}]
        c = self._commodity(post.get("code"))
        row = self._row(c)
        config = parse_ini(row["config"]) if row["config"] else {}
        if c.races:
            config["category_factory"] = {r: str(self.unit_price(c, r, {})) for r in c.races}
            row["factory_price"] = 0
        else:
            row["factory_price"] = str(self.unit_price(c, "", {}))
        row["config"] = config
        return row

    def stock(self, user, post):
        c = self._commodity(post.get("code"))
        sku = post.get("sku") if isinstance(post.get("sku"), dict) else None
        return {"stock": self.count(c.code, post.get("race") or "", sku) if c.delivery_way == 0 else c.stock}

    def inventory(self, user, post):
        c = self._commodity(post.get("sharedCode"))
        count = self.count(c.code, post.get("race") or "", None) if c.delivery_way == 0 else 0
        return {"count": count, "delivery_way": c.delivery_way}

    def valuation(self, user, post):
        c = self._commodity(post.get("code"))
        sku = post.get("sku") if isinstance(post.get("sku"), dict) else {}
        price = self.unit_price(c, post.get("race") or "", sku) * int(post.get("num") or 1)
        return {"price": str(price), "currency_code": "CNY"}

    def trade(self, user, post):
        """``Shared\\Commodity::trade`` → ``Order::trade`` paid from the balance."""
        c = self._commodity(post.get("shared_code"))
        num = int(post.get("num") or 0)
        if num <= 0:
            raise Refused("至少购买1个")
        if c.maximum and num > c.maximum:
            raise Refused(f"本商品单次最多购买{c.maximum}个")
        race = post.get("race") or ""
        if c.races and race not in c.races:
            raise Refused("请选择商品类型" if not race else f"此商品类型不存在[{race}]")
        sku = post.get("sku") if isinstance(post.get("sku"), dict) else {}
        for group, options in c.skus.items():
            if sku.get(group, "") not in options:
                raise Refused(f"请选择{group}")
        widget = {}
        for w in c.widget:
            value = post.get(w["name"])
            if value is None:
                raise Refused(f"Undefined array key \"{w['name']}\"")
            if w.get("regex") and not re.search(w["regex"], value):
                raise Refused(w.get("error") or "输入有误")
            widget[w["name"]] = {"value": value, "cn": w.get("cn")}
        key = (c.code, race, json.dumps(sku, sort_keys=True, ensure_ascii=False))
        if c.delivery_way == 0 and len(self.cards.get(key, [])) < num and not self.lose_cards:
            raise Refused("库存不足")
        amount = self.unit_price(c, race, sku) * num
        request_no = post.get("request_no") or ""
        if request_no and any(o["request_no"] == request_no for o in self.orders):
            raise Refused("The request ID already exists")
        if user["balance"] < amount:
            raise Refused("余额不足")
        user["balance"] -= amount
        self._seq += 1
        trade_no = f"{self._seq:03d}240101120000{self._seq:03d}"
        if c.delivery_way == 0:
            cards = self.cards.get(key, [])
            if len(cards) >= num:
                secret = "\n".join(cards[:num])
                del cards[:num]
            else:
                secret = CARD_MESSAGE_GONE
        else:
            secret = c.delivery_message
            c.stock = max(0, c.stock - num)
        self.orders.append({"trade_no": trade_no, "request_no": request_no, "secret": secret, "amount": amount,
                            "widget": widget, "race": race, "sku": sku, "num": num, "code": c.code})
        self.traded.set()
        return {"url": "", "amount": str(amount), "tradeNo": trade_no, "secret": secret, "stock": 0}

    def query(self, user, post):
        order = next((o for o in self.orders if o["trade_no"] == post.get("tradeNo")), None)
        if order is None:
            raise Refused("订单不存在")
        return {"secret": order["secret"], "widget": order["widget"] or None, "status": 1}
