"""The kameng docking protocol (``../shared/API.md`` "Docking API"), client side.

Pure functions, no Pyramid and no network: signing a request, verifying a
signed callback, and reading the upstream's answers strictly.

Every request (and every callback the upstream sends back) carries
``X-Kameng-Key`` (the key id), ``X-Kameng-Timestamp`` (unix seconds),
``X-Kameng-Nonce`` and ``X-Kameng-Signature``, the lowercase hex
HMAC-SHA256, keyed with the key's secret, of::

    METHOD \\n PATH \\n SORTED_QUERY \\n SHA256_HEX(BODY) \\n TIMESTAMP \\n NONCE

``SORTED_QUERY`` is the query's ``k=v`` pairs exactly as sent (still
percent-encoded), sorted, joined by ``&``; empty when there is none. The body
hash is over the raw bytes (an empty body hashes to ``e3b0c442…``), so a
proxy that re-serialises JSON breaks the signature, as it should.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal

from kameng import strictjson
from kameng.money import MoneyError, parse_decimal
from kameng.types import UpstreamGoods, UpstreamResult, UpstreamSku

API_PREFIX = "/api/v1/dock"
HEADER_KEY = "X-Kameng-Key"
HEADER_TIMESTAMP = "X-Kameng-Timestamp"
HEADER_NONCE = "X-Kameng-Nonce"
HEADER_SIGNATURE = "X-Kameng-Signature"
#: seconds a timestamp may be off, either way
MAX_SKEW = 300
#: a callback is an order: a few KiB even with many keys
MAX_CALLBACK_BODY = 256 * 1024

#: the upstream's order states → the connector contract's
STATUSES = {"pending": "processing", "paid": "processing", "delivering": "processing", "delivered": "success",
            "failed": "failed", "refunded": "failed", "expired": "failed", "cancelled": "failed"}
PRODUCT_TYPES = ("card_key", "direct_recharge", "manual")

_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[\x21-\x7e]{1,128}")
_KEY_ID = re.compile(r"[\x21-\x7e]{1,128}")
_ORDER_NO = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CURRENCY = re.compile(r"[A-Z]{3,8}")


class ProtocolError(ValueError):
    """Not the protocol. The message says what, never a value that could be
    a secret (a key, a signature, a card key)."""


# -- signatures ---------------------------------------------------------------------------


def sorted_query(query: str) -> str:
    """The query's ``k=v`` pairs as sent, sorted, joined by ``&`` (empty
    pieces, as in ``a=1&&b=2``, are no pairs)."""
    if not query:
        return ""
    return "&".join(sorted(part for part in query.split("&") if part))


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body or b"").hexdigest()


def string_to_sign(method: str, path: str, query: str, body: bytes, timestamp: str, nonce: str) -> bytes:
    return "\n".join((method.upper(), path, sorted_query(query), body_hash(body), str(timestamp),
                      nonce)).encode("utf-8")


def sign(secret: str, method: str, path: str, query: str, body: bytes, timestamp: str, nonce: str) -> str:
    """The hex signature of one request. ``secret`` is the key's secret as
    the upstream showed it (its UTF-8 bytes are the HMAC key)."""
    if not secret:
        raise ProtocolError("no secret to sign with")
    return hmac.new(secret.encode("utf-8"), string_to_sign(method, path, query, body, timestamp, nonce),
                    hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def signed_headers(key_id: str, secret: str, method: str, path: str, query: str = "", body: bytes = b"",
                   now: float | None = None, nonce: str | None = None) -> dict:
    """The four headers for a request to ``path`` (the path as it goes on the
    wire, the upstream shop's own prefix included)."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or new_nonce()
    return {HEADER_KEY: key_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: sign(secret, method, path, query, body, timestamp, nonce)}


@dataclass(frozen=True)
class Verified:
    key_id: str
    timestamp: int
    nonce: str


def verify(headers, key_id: str, secret: str, method: str, path: str, query: str, body: bytes,
           now: float | None = None) -> Verified:
    """Check a signed message (a callback) against our key: the key id is
    ours, the timestamp within :data:`MAX_SKEW`, the signature right
    (compared in constant time). ``headers`` is anything with ``.get``.
    Nonce reuse is the caller's to check (it needs memory)."""
    if not key_id or not secret:
        raise ProtocolError("the connection has no key id or secret")
    values = {}
    for name in (HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE):
        value = headers.get(name)
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"missing header {name}")
        values[name] = value
    if not _KEY_ID.fullmatch(values[HEADER_KEY]):
        raise ProtocolError(f"malformed {HEADER_KEY}")
    if not hmac.compare_digest(values[HEADER_KEY].encode(), key_id.encode()):
        raise ProtocolError("signed with another key")
    if not _TIMESTAMP.fullmatch(values[HEADER_TIMESTAMP]):
        raise ProtocolError(f"malformed {HEADER_TIMESTAMP}")
    timestamp = int(values[HEADER_TIMESTAMP])
    if abs((time.time() if now is None else now) - timestamp) > MAX_SKEW:
        raise ProtocolError("the timestamp is more than 300 s off (check the clocks)")
    if not _NONCE.fullmatch(values[HEADER_NONCE]):
        raise ProtocolError(f"malformed {HEADER_NONCE}")
    if not _SIGNATURE.fullmatch(values[HEADER_SIGNATURE]):
        raise ProtocolError(f"malformed {HEADER_SIGNATURE}")
    expected = sign(secret, method, path, query, body, values[HEADER_TIMESTAMP], values[HEADER_NONCE])
    if not hmac.compare_digest(expected.encode(), values[HEADER_SIGNATURE].lower().encode()):
        raise ProtocolError("bad signature")
    return Verified(values[HEADER_KEY], timestamp, values[HEADER_NONCE])


# -- requests -------------------------------------------------------------------------------


def dumps(obj) -> bytes:
    """Compact UTF-8 JSON: the bytes that are signed are the bytes sent."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def order_body(out_order_no: str, sku: str, quantity: int, recharge: dict | None = None,
               callback_url: str = "") -> bytes:
    if not isinstance(out_order_no, str) or not _ORDER_NO.fullmatch(out_order_no):
        raise ProtocolError("malformed out_order_no")
    if not isinstance(sku, str) or not sku:
        raise ProtocolError("no upstream SKU")
    if type(quantity) is not int or quantity < 1:
        raise ProtocolError("the quantity must be a positive whole number")
    body = {"out_order_no": out_order_no, "sku": sku, "quantity": quantity}
    if recharge:
        if not isinstance(recharge, dict) or not all(isinstance(k, str) for k in recharge):
            raise ProtocolError("the recharge fields are not a mapping of names")
        body["recharge"] = {k: v if isinstance(v, str) else str(v) for k, v in recharge.items()}
    if callback_url:
        body["callback_url"] = callback_url
    return dumps(body)


# -- answers ---------------------------------------------------------------------------------


def loads(body: bytes, max_bytes: int = strictjson.MAX_BYTES):
    try:
        return strictjson.loads(body, max_bytes=max_bytes)
    except strictjson.StrictJSONError as exc:
        raise ProtocolError(str(exc)) from None


def clean(text, limit: int = 200) -> str:
    """Upstream text for a log line or an admin message: printable, short."""
    return "".join(ch if ch.isprintable() else " " for ch in str(text))[:limit]


def error_of(body: bytes) -> tuple[str, str]:
    """``(code, message)`` of an ``{"error": {"code", "message"}}`` answer;
    empty strings when the body is not one."""
    try:
        doc = loads(body)
    except ProtocolError:
        return "", ""
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return "", ""
    code, message = err.get("code"), err.get("message")
    code = code if isinstance(code, str) and re.fullmatch(r"[a-z0-9_]{1,64}", code) else ""
    return code, clean(message) if isinstance(message, str) else ""


def _object(doc, what: str) -> dict:
    if not isinstance(doc, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return doc


def _str(obj: dict, name: str, what: str, limit: int = 500, required: bool = True) -> str:
    value = obj.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise ProtocolError(f"{what}: {name} is missing or not a string")
    return value


def _money(value, what: str, signed: bool = False) -> Decimal:
    """A decimal string (API.md: money is a string), at most 8 places."""
    if isinstance(value, str) and signed and value.startswith("-"):
        return -_money(value[1:], what)
    try:
        return parse_decimal(value, 8)
    except MoneyError:
        raise ProtocolError(f"{what} is not a decimal string") from None


def _int(value, what: str, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if type(value) is not int or value < 0:
        raise ProtocolError(f"{what} is not a whole number")
    return value


def parse_balance(doc) -> tuple[Decimal, str]:
    """``{"balance": "90.00", "currency": "CNY"}`` → ``(Decimal, currency)``."""
    doc = _object(doc, "the balance")
    amount = _money(doc.get("balance"), "the balance", signed=True)
    currency = doc.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ProtocolError("the balance has no currency")
    return amount, currency


def _goods_id(value) -> str:
    if type(value) is int and value >= 0:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[\x21-\x7e]{1,128}", value):
        return value
    raise ProtocolError("a goods id is missing or malformed")


def _sku(raw, goods_id: str) -> UpstreamSku:
    what = f"goods {goods_id}: a SKU"
    raw = _object(raw, what)
    code = _str(raw, "code", what, limit=128)
    if not re.fullmatch(r"[\x21-\x7e]{1,128}", code):
        raise ProtocolError(f"{what}: malformed code")
    available = raw.get("available", True)
    if not isinstance(available, bool):
        raise ProtocolError(f"{what}: available is not true or false")
    return UpstreamSku(code=code, name=_str(raw, "name", what, limit=200, required=False) or code,
                       cost=_money(raw.get("price"), f"{what}: the price"),
                       stock=_int(raw.get("stock"), f"{what}: the stock", nullable=True), available=available)


def _category(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        value = value.get("name")
    if not isinstance(value, str) or len(value) > 200:
        raise ProtocolError("a goods category is malformed")
    return value


def parse_goods(raw) -> UpstreamGoods | None:
    """One goods entry; ``None`` for a product type this shop does not know
    (a newer upstream may sell more kinds: skipping one is not an error)."""
    raw = _object(raw, "a goods entry")
    goods_id = _goods_id(raw.get("id"))
    what = f"goods {goods_id}"
    kind = _str(raw, "type", what, limit=64)
    if kind not in PRODUCT_TYPES:
        return None
    skus = raw.get("skus")
    if not isinstance(skus, list):
        raise ProtocolError(f"{what}: skus is not a list")
    parsed = tuple(_sku(s, goods_id) for s in skus)
    if len({s.code for s in parsed}) != len(parsed):
        raise ProtocolError(f"{what}: a SKU code appears twice")
    fields = raw.get("recharge_fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        raise ProtocolError(f"{what}: recharge_fields is not a list of objects")
    return UpstreamGoods(id=goods_id, name=_str(raw, "name", what, limit=500), type=kind, skus=parsed,
                         category=_category(raw.get("category")),
                         description=_str(raw, "description", what, limit=100_000, required=False),
                         recharge_fields=tuple(fields))


def goods_currencies(doc) -> set[str] | None:
    """The currencies the goods list names (each entry's ``currency``, an
    extension kameng sends), or ``None`` when an entry names none."""
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("currency") for i in items):
        return None
    return {str(i["currency"]) for i in items}


def parse_goods_list(doc) -> list[UpstreamGoods]:
    """``{"items": [goods, …]}``; a SKU code sold under two goods is refused
    (the core binds SKUs by code)."""
    items = _object(doc, "the goods list").get("items")
    if not isinstance(items, list):
        raise ProtocolError("the goods list has no items")
    out = [g for g in (parse_goods(item) for item in items) if g is not None]
    if len({g.id for g in out}) != len(out):
        raise ProtocolError("a goods id appears twice")
    codes = [s.code for g in out for s in g.skus]
    if len(set(codes)) != len(codes):
        raise ProtocolError("a SKU code appears under two goods")
    return out


@dataclass(frozen=True)
class Order:
    """An upstream order as the docking API reports it."""

    out_order_no: str
    order_no: str
    status: str
    amount: Decimal
    keys: tuple[tuple[str | None, str], ...] = ()


def _keys(value) -> tuple[tuple[str | None, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProtocolError("the order's keys are not a list")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise ProtocolError("a delivered key is not an object")
        secret, number = item.get("secret"), item.get("number")
        if not isinstance(secret, str) or not secret or len(secret) > 10_000:
            raise ProtocolError("a delivered key has no secret")
        if number is not None and (not isinstance(number, str) or len(number) > 10_000):
            raise ProtocolError("a delivered key's number is not a string")
        out.append((number or None, secret))
    return tuple(out)


def parse_order(doc, out_order_no: str | None = None) -> Order:
    """An order answer (``POST orders``, ``GET orders/{no}``, a callback).
    With ``out_order_no``, the answer must be about that order."""
    doc = _object(doc, "the order")
    got = _str(doc, "out_order_no", "the order", limit=128)
    if out_order_no is not None and got != out_order_no:
        raise ProtocolError("the answer is about another order")
    if not _ORDER_NO.fullmatch(got):
        raise ProtocolError("the order: malformed out_order_no")
    order_no = _str(doc, "order_no", "the order", limit=128)
    if not _ORDER_NO.fullmatch(order_no):
        raise ProtocolError("the order: malformed order_no")
    status = doc.get("status")
    if status not in STATUSES:
        raise ProtocolError("the order has an unknown status")
    # a refunded order still lists the keys it had delivered: they are read
    # (the shape is checked) but only a delivered order reports them
    keys = _keys(doc.get("keys"))
    return Order(got, order_no, status, _money(doc.get("amount"), "the order's amount"), keys)


def result(order: Order) -> UpstreamResult:
    """The contract's view of an upstream order. ``cost`` is what the
    upstream charged for the whole order."""
    status = STATUSES[order.status]
    message = "" if status in ("success", "processing") else f"the upstream order is {order.status}"
    return UpstreamResult(status=status, out_order_no=order.out_order_no, upstream_order_no=order.order_no,
                          keys=order.keys if status == "success" else (), cost=order.amount, message=message)
