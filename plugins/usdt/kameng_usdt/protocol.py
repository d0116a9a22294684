"""The epusdt protocol (assimon/epusdt ``wiki/API.md`` and ``src/util/sign/sign.go``;
the v03413/BEpusdt fork speaks the same create call and callback).

Pure functions, no Pyramid: building the signed create request, reading the
server's answer, and verifying a callback exactly as it arrived.

The signature is ``md5(k=v&k=v… + api_token)`` over the non-empty fields but
``signature``, sorted by name. The servers are written in Go and decode JSON
into ``map[string]interface{}``, so every JSON number becomes a float64 and is
written back with ``strconv.FormatFloat(f, 'f', -1, 64)``: ``10.0`` is signed
as ``10`` and ``28.80`` as ``28.8``. Python's ``str(float)`` gives ``10.0``
and the signature would not match, so numbers are kept as the tokens that
arrived (:class:`Number`) and rendered the Go way (:func:`go_float`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from kameng import strictjson
from kameng.money import MoneyError, parse_decimal

CREATE_PATH = "/api/v1/order/create-transaction"
#: a callback is a few hundred bytes; anything far larger is not one
MAX_BODY = 64 * 1024
MAX_FIELDS = 50
#: status → what the core understands (1 waiting, 2 paid, 3 expired)
STATUSES = {"1": "pending", "2": "paid", "3": "closed"}

_SIGNATURE = re.compile(r"[0-9a-f]{32}")
_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
_ORDER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TRADE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ProtocolError(ValueError):
    """Something that is not the protocol. The message names what, never a
    value that could be a secret."""


class Number(str):
    """A JSON number exactly as it was written (``28.80``, ``10.0``, ``1e2``)."""

    __slots__ = ()


def go_float(value) -> str:
    """``strconv.FormatFloat(float64(value), 'f', -1, 64)``: the shortest
    digits that give the same float64, never an exponent, no trailing
    ``.0``. ``repr(float)`` is Python's shortest round-trip form, the same
    digits Go picks."""
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError("not a number") from None
    if not math.isfinite(f):
        raise ProtocolError("not a finite number")
    return format(Decimal(repr(f)).normalize(), "f")


def render(value) -> str:
    """How the Go server writes one decoded JSON value into the sign string."""
    if isinstance(value, Number):
        return go_float(value)
    if isinstance(value, str):
        return value
    raise ProtocolError("a signed field is not a string or a number")


def sign_string(fields: dict) -> str:
    """``k=v&…`` over the fields but ``signature``, sorted by name (byte order
    of UTF-8, which is code point order), empty and ``null`` values left out."""
    parts = []
    for key in sorted(fields):
        value = fields[key]
        if key == "signature" or value is None:
            continue
        text = render(value)
        if text != "":
            parts.append(f"{key}={text}")
    return "&".join(parts)


def sign(fields: dict, token: str) -> str:
    """The lowercase hex md5 of the sign string with the API token appended."""
    try:
        data = (sign_string(fields) + token).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape
        raise ProtocolError("a field is not valid text") from None
    return hashlib.md5(data).hexdigest()  # imposed by the protocol, not our choice


def dumps(fields: dict) -> bytes:
    """Compact JSON, with :class:`Number` values written as their raw token."""
    items = []
    for key, value in fields.items():
        text = str(value) if isinstance(value, Number) else json.dumps(value, ensure_ascii=False)
        items.append(json.dumps(key, ensure_ascii=False) + ":" + text)
    return ("{" + ",".join(items) + "}").encode("utf-8")


# -- reading JSON the way it arrived --------------------------------------------------


def loads(body: bytes):
    """Strict JSON: UTF-8 only, no duplicate keys, no NaN, numbers kept as
    :class:`Number` tokens."""
    try:
        return strictjson.loads(body, max_bytes=MAX_BODY, parse_float=Number, parse_int=Number)
    except strictjson.StrictJSONError as exc:
        raise ProtocolError(str(exc)) from None


# -- the create call ------------------------------------------------------------------


def amount_number(amount: Decimal) -> Number:
    """A CNY amount as the JSON number the server will decode into a float64:
    written the Go way, so what we sign is what the server signs."""
    token = go_float(amount)
    if Decimal(token) != amount:
        raise ProtocolError("the amount cannot be sent as a float64")
    return Number(token)


def create_request(order_id: str, amount: Decimal, notify_url: str, redirect_url: str, token: str) -> bytes:
    """The signed JSON body of ``POST /api/v1/order/create-transaction``."""
    fields = {"order_id": order_id, "amount": amount_number(amount), "notify_url": notify_url,
              "redirect_url": redirect_url}
    fields["signature"] = sign(fields, token)
    return dumps(fields)


def _clean(text, limit: int = 120) -> str:
    text = str(text)
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit]


@dataclass(frozen=True)
class Created:
    """What the server answered to a create: the cashier page and what the
    buyer must send (kept for the admin; the cashier page shows it too)."""

    payment_url: str
    trade_id: str = ""
    address: str = ""
    actual_amount: str = ""
    expiration_time: str = ""


def reply(body: bytes) -> tuple[int, str, object]:
    """``(status_code, message, data)`` of a server answer (``{"status_code":
    200, "message", "data", "request_id"}``; errors come with HTTP 200 too)."""
    doc = loads(body)
    if not isinstance(doc, dict):
        raise ProtocolError("the answer is not a JSON object")
    code = doc.get("status_code")
    if not isinstance(code, Number) or not re.fullmatch(r"\d{1,6}", code):
        raise ProtocolError("the answer has no status_code")
    message = doc.get("message")
    return int(code), _clean(message) if isinstance(message, str) else "", doc.get("data")


def _text(value, limit: int = 200) -> str:
    if isinstance(value, Number):
        return go_float(value)
    if isinstance(value, str):
        return _clean(value, limit)
    return ""


def parse_created(body: bytes, order_id: str) -> Created:
    """The create answer, or :class:`ProtocolError` saying why not."""
    code, message, data = reply(body)
    if code != 200:
        raise ProtocolError(f"the server refused the order (status_code {code}: {message})")
    if not isinstance(data, dict):
        raise ProtocolError("the answer has no data")
    url = data.get("payment_url")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s\"'<>]{1,2000}", url):
        raise ProtocolError("the answer has no payment_url")
    if data.get("order_id") not in (None, order_id):
        raise ProtocolError("the answer is for another order")
    return Created(payment_url=url, trade_id=_text(data.get("trade_id"), 128), address=_text(data.get("token"), 128),
                   actual_amount=_text(data.get("actual_amount"), 40),
                   expiration_time=_text(data.get("expiration_time"), 40))


def signature_refused(code: int, message: str) -> bool:
    """Whether an error answer says the signature (so the token) is wrong:
    epusdt answers status_code 401; BEpusdt 400 with "签名错误"/"签名丢失"."""
    return code == 401 or "签名" in message or "signature" in message.lower()


# -- the callback ---------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """A verified callback."""

    order_id: str
    trade_id: str
    amount: Decimal
    status: str
    raw: dict = field(default_factory=dict)


def _string(fields: dict, name: str, pattern: re.Pattern | None = None, required: bool = True) -> str:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise ProtocolError(f"missing field {name}")
        return ""
    if type(value) is not str:
        raise ProtocolError(f"field {name} is not a string")
    if pattern is not None and not pattern.fullmatch(value):
        raise ProtocolError(f"malformed {name}")
    return value


def _amount(value) -> Decimal:
    """The CNY amount: a plain decimal, at most two places, and (for a JSON
    number) exactly the value the signature covers."""
    if value is None or value == "":
        raise ProtocolError("missing field amount")
    try:
        amount = parse_decimal(str(value), 2)
        if isinstance(value, Number) and Decimal(go_float(value)) != amount:
            raise ProtocolError("malformed amount")
    except (MoneyError, InvalidOperation):
        raise ProtocolError("malformed amount") from None
    if amount <= 0:
        raise ProtocolError("malformed amount")
    return amount


def verify_callback(fields, token: str) -> Callback:
    """Check a decoded callback (:func:`loads`) against the API token and read it.

    Every field takes part in the signature (a fork's extra fields too); only
    strings and numbers may be signed, the signature must be 32 lowercase hex
    characters and is compared in constant time."""
    if not token:
        raise ProtocolError("the gateway has no API token configured")
    if not isinstance(fields, dict):
        raise ProtocolError("the body is not a JSON object")
    if len(fields) > MAX_FIELDS:
        raise ProtocolError("too many fields")
    for key, value in fields.items():
        if not _KEY.fullmatch(key):
            raise ProtocolError("a field name is not a plain name")
        if value is not None and not isinstance(value, str):  # Number is a str
            raise ProtocolError(f"field {key} is not a string or a number")
    signature = fields.get("signature")
    if signature is None or signature == "":
        raise ProtocolError("missing signature")
    if type(signature) is not str or not _SIGNATURE.fullmatch(signature):
        raise ProtocolError("malformed signature")
    if not hmac.compare_digest(sign(fields, token), signature):
        raise ProtocolError("bad signature")
    status = fields.get("status")
    if status is None or render(status) not in STATUSES:
        raise ProtocolError("unknown status")
    state = STATUSES[render(status)]
    order_id = _string(fields, "order_id", _ORDER_ID)
    trade_id = _string(fields, "trade_id", _TRADE_ID)
    amount = _amount(fields.get("amount"))
    for name in ("token", "block_transaction_id"):
        if fields.get(name) not in (None, "") and type(fields[name]) is not str:
            raise ProtocolError(f"field {name} is not a string")
    if state == "paid":
        # a success without the chain transaction it rests on is not one
        _string(fields, "block_transaction_id")
    raw = {k: render(v) for k, v in fields.items() if v is not None}
    return Callback(order_id=order_id, trade_id=trade_id, amount=amount, status=state, raw=raw)
