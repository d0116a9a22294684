"""acg-faka's legacy "共享店铺" docking protocol (type 0), client side.

Pure functions, no Pyramid and no network: the request signature, the
form that carries it, the answer envelope, the upstream's messages, the
delivered card keys, and this connector's SKU codes.

Every call is a form POST to ``{domain}/shared/...`` whose body holds
``app_id`` (the account's user id at the upstream), ``app_key`` (**the
secret itself**, as acg-faka's own client sends it) and ``sign``::

    sign = md5(urldecode(http_build_query(ksort(params - sign - empty))) + "&key=" + app_key)

as ``App\\Util\\Str::generateSignature`` computes it and
``App\\Interceptor\\SharedValidation`` checks it over every posted field.
``urldecode(http_build_query(...))`` gives the raw ``k=v`` pairs back (a
nested field ``sku[颜色]=红`` as that text); the decode also runs over the
appended key, so a ``+`` or ``%xx`` in a key is decoded before hashing. There
is no timestamp and no nonce: a captured request can be replayed, and since
the key travels in the body, anyone who sees one request holds the key.
Hence https only, no redirects, and nothing of the body in a log line.

Answers are JSON ``{"code": 200, "msg": "success", "data": …}``; any other
``code`` is a refusal with its ``msg``.
"""
from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from kameng import strictjson
from kameng.suppliers.base import SupplierError

PATH_CONNECT = "/shared/authentication/connect"
PATH_ITEMS = "/shared/commodity/items"
PATH_ITEM = "/shared/commodity/item"
PATH_STOCK = "/shared/commodity/stock"
PATH_INVENTORY = "/shared/commodity/inventory"
PATH_VALUATION = "/shared/commodity/valuation"
PATH_TRADE = "/shared/commodity/trade"
PATH_QUERY = "/shared/commodity/query"

#: what acg-faka answers when a request_no was used before (Service\Bind\Order::trade)
DUPLICATE_MESSAGE = "The request ID already exists"
#: what a paid card order says when the cards were gone (pullCardForLocal): charged, nothing delivered
NOTHING_DELIVERED = ("很抱歉，有人在你付款之前抢走了商品，请联系客服。",)
#: form fields of the protocol itself: a recharge field may not take these names
RESERVED = frozenset({
    "app_id", "app_key", "sign", "shared_code", "sharedCode", "code", "contact", "num", "card_id", "device",
    "password", "race", "request_no", "sku", "pay_id", "item_id", "commodity_id", "coupon", "from", "tradeNo"})
#: how much of an upstream message is kept (it is shown to the admin and logged)
MAX_MESSAGE = 200


class ProtocolError(ValueError):
    """The answer is not the protocol. The message says what, never a value
    that could be a secret (the key, a card key)."""


class UpstreamHTTPError(SupplierError):
    """The upstream answered, but not with the protocol: an HTTP status other
    than 200 (``status``), or a body that is not the JSON envelope (``status``
    200)."""

    def __init__(self, message: str, status: int, uncertain: bool):
        super().__init__(message, uncertain=uncertain)
        self.status = status


class Refusal(Exception):
    """The upstream answered with ``code != 200``: it refused, and acg-faka
    refuses inside its transaction, so nothing was charged. ``message`` is
    the upstream's ``msg``, cleaned."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def duplicate(self) -> bool:
        return DUPLICATE_MESSAGE.lower() in self.message.lower()


# -- signing ---------------------------------------------------------------------------------


def php_urldecode(raw: bytes) -> bytes:
    """PHP's ``urldecode``: ``+`` is a space, ``%xx`` a byte, a ``%`` not
    followed by two hex digits stays as it is."""
    out, i = bytearray(), 0
    while i < len(raw):
        c = raw[i]
        if c == 0x2B:  # +
            out.append(0x20)
        elif c == 0x25 and re.fullmatch(rb"[0-9A-Fa-f]{2}", raw[i + 1:i + 3]):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 2
        else:
            out.append(c)
        i += 1
    return bytes(out)


def _pairs(params: dict) -> list[tuple[str, str]]:
    """``http_build_query`` then ``urldecode`` of ``ksort``-ed params, as raw
    ``(name, value)`` pairs: top-level empty strings and ``None`` dropped, a
    dict spelled ``name[sub]`` in its own order (its empty strings kept)."""
    out = []
    for name in sorted(params):
        value = params[name]
        if value is None or value == "":
            continue
        if isinstance(value, dict):
            out += [(f"{name}[{sub}]", _scalar(v)) for sub, v in value.items() if v is not None]
        else:
            out.append((name, _scalar(value)))
    return out


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (str, int, Decimal)):
        return str(value)
    raise TypeError(f"a form value must be text or a number, not {type(value).__name__}")


def sign_base(params: dict, app_key: str) -> bytes:
    """The bytes that are hashed (they hold the key: never log them)."""
    query = "&".join(f"{k}={v}" for k, v in _pairs({k: v for k, v in params.items() if k != "sign"}))
    return query.encode("utf-8") + b"&key=" + php_urldecode(app_key.encode("utf-8"))


def sign(params: dict, app_key: str) -> str:
    return hashlib.md5(sign_base(params, app_key)).hexdigest()


def signed_form(params: dict, app_id: str, app_key: str) -> dict[str, str]:
    """The form to POST: ``params`` plus ``app_id``, ``app_key`` and
    ``sign``, flattened the way PHP reads it back (``sku[颜色]``). Empty
    values are sent (acg-faka's own client sends them) but not signed."""
    full = {**params, "app_id": str(app_id), "app_key": app_key}
    full["sign"] = sign(full, app_key)
    form: dict[str, str] = {}
    for name, value in full.items():
        if isinstance(value, dict):
            form.update({f"{name}[{sub}]": _scalar(v) for sub, v in value.items() if v is not None})
        elif value is not None:
            form[name] = _scalar(value)
    return form


# -- answers ---------------------------------------------------------------------------------


def clean_message(text, app_key: str = "") -> str:
    """An upstream message fit for the admin and a log line: no markup, one
    line, short, and never the key (should an upstream echo it)."""
    text = html.unescape(re.sub(r"<[^>]*>", " ", str(text or "")))
    if app_key and len(app_key) >= 4:
        text = text.replace(app_key, "***")
    text = re.sub(r"[\x00-\x1f\x7f\s]+", " ", text).strip()
    return text[:MAX_MESSAGE]


def read_envelope(body: bytes, app_key: str = "", max_bytes: int = 256 * 1024):
    """``data`` of a ``code == 200`` answer; :class:`Refusal` for any other
    code; :class:`ProtocolError` when it is not the envelope at all."""
    try:
        doc = strictjson.loads(body, max_bytes=max_bytes, parse_float=Decimal)
    except strictjson.StrictJSONError as exc:
        raise ProtocolError(str(exc)) from None
    if not isinstance(doc, dict) or "code" not in doc:
        raise ProtocolError("the answer has no code")
    code = doc["code"]
    if isinstance(code, bool) or not isinstance(code, (int, str)):
        raise ProtocolError("the answer's code is not a number")
    if str(code).strip() != "200":
        raise Refusal(clean_message(doc.get("msg"), app_key) or f"refused (code {str(code)[:10]})")
    return doc.get("data")


def decimal_of(value) -> Decimal | None:
    """A price as acg-faka sends it (``"9.90"``, ``9.9``, ``10``); ``None``
    when it is not a finite, non-negative number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def int_of(value) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if re.fullmatch(r"-?\d{1,12}", text) else None


# -- delivered keys --------------------------------------------------------------------------


def parse_keys(secret, quantity: int) -> tuple[tuple[str | None, str], ...]:
    """The card keys in a trade's ``secret`` (acg-faka joins the cards with
    newlines). One per line; when **every** line is ``number----secret``, or
    every line is exactly two words, the pair is split, else the number is
    ``None``. A single unit delivered as several lines is one key."""
    text = str(secret or "").replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if not lines or lines[0] in NOTHING_DELIVERED:
        return ()
    if quantity == 1 and len(lines) > 1:
        return ((None, "\n".join(lines)),)
    if all(_dash_pair(ln) for ln in lines):
        return tuple((a.strip(), b.strip()) for a, _, b in (ln.partition("----") for ln in lines))
    if all(re.fullmatch(r"\S+\s+\S+", ln) for ln in lines):
        return tuple((a, b) for a, b in (ln.split(None, 1) for ln in lines))
    return tuple((None, ln) for ln in lines)


def _dash_pair(line: str) -> bool:
    number, sep, secret = line.partition("----")
    return bool(sep and number.strip() and secret.strip() and "----" not in secret)


# -- this connector's SKU codes --------------------------------------------------------------

#: a SKU code is ``kind:code[/race][?name=option&...]``: ``k`` the upstream
#: delivers card keys, ``m`` it delivers by hand (a recharge, a service)
KINDS = ("k", "m")
MAX_SKU_CODE = 128
_ESCAPE = {c: f"%{ord(c):02X}" for c in "%/?&=:"}


def _esc(text: str) -> str:
    return "".join(_ESCAPE.get(c, c) for c in text)


def _unesc(text: str) -> str:
    def one(m):
        return chr(int(m.group(1), 16))

    return re.sub(r"%(25|2F|3F|26|3D|3A)", one, text)


@dataclass(frozen=True)
class SkuRef:
    kind: str
    code: str
    race: str = ""
    options: dict = field(default_factory=dict)

    def text(self) -> str:
        out = f"{self.kind}:{_esc(self.code)}"
        if self.race:
            out += "/" + _esc(self.race)
        if self.options:
            out += "?" + "&".join(f"{_esc(k)}={_esc(v)}" for k, v in self.options.items())
        return out


def parse_sku(text: str) -> SkuRef:
    """The reference a SKU code stands for; :class:`ProtocolError` when it
    is not one of this connector's codes."""
    m = re.fullmatch(r"([km]):([^/?]+)(?:/([^?]+))?(?:\?(.+))?", text or "", re.DOTALL)
    if m is None or len(text) > MAX_SKU_CODE:
        raise ProtocolError("not an acg-faka SKU code of this connector")
    options = {}
    for pair in (m.group(4) or "").split("&") if m.group(4) else []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ProtocolError("not an acg-faka SKU code of this connector")
        options[_unesc(name)] = _unesc(value)
    return SkuRef(m.group(1), _unesc(m.group(2)), _unesc(m.group(3) or ""), options)


# -- recharge field names --------------------------------------------------------------------

_KAMENG_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: the widget names this connector can send back as they are (PHP reads them unchanged)
_UPSTREAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def field_name(upstream: str) -> str | None:
    """kameng's name for an upstream input (kameng allows ``[a-z][a-z0-9_]``,
    at most 32): the same name when it fits, else ``x_`` + its hex (so the
    connector can turn it back without remembering anything); ``None`` when
    neither works."""
    if not _UPSTREAM_NAME.fullmatch(upstream or "") or upstream in RESERVED:
        return None
    if _KAMENG_NAME.fullmatch(upstream) and not upstream.startswith("x_"):
        return upstream
    encoded = "x_" + upstream.encode("ascii").hex()
    return encoded if len(encoded) <= 32 else None


def upstream_name(name: str) -> str | None:
    """The inverse of :func:`field_name`; ``None`` for a name it never gives."""
    if not isinstance(name, str):
        return None
    if name.startswith("x_"):
        try:
            raw = bytes.fromhex(name[2:]).decode("ascii")
        except ValueError:
            return None
        return raw if field_name(raw) == name else None
    return name if field_name(name) == name else None
