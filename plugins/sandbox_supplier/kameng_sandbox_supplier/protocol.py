"""The sandbox supplier's pure parts: the generated catalogue, the keys and
outcomes derived from the seed, and the signed callback format.

Everything a simulated order produces is a function of ``(seed, out_order_no)``,
so a retry, a second worker or a restarted process computes the same keys
and the same success or failure: the simulation itself can never hand out
two different answers for one order.

Callback (``POST`` to the ``callback_url`` the core gave with the order)::

    X-Sandbox-Signature: hex(HMAC-SHA256(secret, raw_body))
    Content-Type: application/json

    {"cost": "47.15", "delivered": 1, "keys": [], "message": "...",
     "out_order_no": "...", "status": "success", "timestamp": 1764115200,
     "upstream_order_no": "SBX..."}

The signature covers the raw bytes; the timestamp inside them must be within
300 s of the receiver's clock.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from kameng import strictjson
from kameng.suppliers.base import CallbackRejected
from kameng.types import UpstreamGoods, UpstreamResult, UpstreamSku

SIGNATURE_HEADER = "X-Sandbox-Signature"
MAX_SKEW = 300
MIN_SECRET = 16
STATUSES = ("processing", "success", "failed", "partial")
CALLBACK_FIELDS = frozenset({"cost", "delivered", "keys", "message", "out_order_no", "status", "timestamp",
                             "upstream_order_no"})
OUT_ORDER_NO = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MOBILE_CN = re.compile(r"1[3-9]\d{9}")
# no 0/O, 1/I: keys are read aloud and typed by hand
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LABEL = "[SANDBOX]"
CATEGORY_CARDS = f"游戏点卡 {LABEL}"
CATEGORY_RECHARGE = f"话费充值 {LABEL}"
DESCRIPTION = "Simulated goods from the kameng sandbox supplier: keys and recharges are not real."
PHONE_FIELD = {"name": "phone", "label": "手机号", "kind": "mobile_cn", "required": True}


@dataclass(frozen=True)
class Template:
    """One product of the generated catalogue; ``skus`` are ``(code, name,
    face value)``; ``numbered`` cards come as number + password."""

    id: str
    name: str
    type: str
    category: str
    skus: tuple[tuple[str, str, int], ...]
    numbered: bool = False


TEMPLATES = (
    Template("sbx-steam", f"Steam 钱包充值码 {LABEL}", "card_key", CATEGORY_CARDS,
             (("SBX-STEAM-50", "50 元", 50), ("SBX-STEAM-100", "100 元", 100), ("SBX-STEAM-500", "500 元", 500))),
    Template("sbx-razer", f"Razer Gold 礼品卡 {LABEL}", "card_key", CATEGORY_CARDS,
             (("SBX-RAZER-10", "10 USD", 70), ("SBX-RAZER-50", "50 USD", 345)), numbered=True),
    Template("sbx-qb", f"腾讯 Q 币卡 {LABEL}", "card_key", CATEGORY_CARDS,
             (("SBX-QB-10", "10 Q币", 10), ("SBX-QB-30", "30 Q币", 30), ("SBX-QB-100", "100 Q币", 100)),
             numbered=True),
    Template("sbx-cmcc", f"中国移动话费直充 {LABEL}", "direct_recharge", CATEGORY_RECHARGE,
             (("SBX-CMCC-30", "30 元", 30), ("SBX-CMCC-50", "50 元", 50), ("SBX-CMCC-100", "100 元", 100))),
    Template("sbx-cucc", f"中国联通话费直充 {LABEL}", "direct_recharge", CATEGORY_RECHARGE,
             (("SBX-CUCC-50", "50 元", 50), ("SBX-CUCC-100", "100 元", 100))),
)
#: the upstream sold out of this one (stock 0) and stopped selling that one:
#: a sync shows how the shop hides such goods
SOLD_OUT = "SBX-STEAM-500"
STOPPED = "SBX-QB-100"


def _h(seed: str, *parts: str) -> int:
    data = "\x1f".join((seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def unit_cost(seed: str, code: str, face: int) -> Decimal:
    """The face value less a discount of 2.1 % to 10 %, fixed by the seed."""
    rate = Decimal(900 + _h(seed, "discount", code) % 80) / 1000
    return (Decimal(face) * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)


def initial_stock(seed: str, code: str, card: bool) -> int | None:
    if not card:
        return None
    if code == SOLD_OUT:
        return 0
    return 20 + _h(seed, "stock", code) % 181


def find_sku(code: str) -> tuple[Template, tuple[str, str, int]] | None:
    for template in TEMPLATES:
        for sku in template.skus:
            if sku[0] == code:
                return template, sku
    return None


def catalogue(seed: str, stock: dict) -> list[UpstreamGoods]:
    """The goods, costs for ``seed``, stock as in ``stock`` (code → count)."""
    goods = []
    for t in TEMPLATES:
        skus = tuple(UpstreamSku(code=code, name=name, cost=unit_cost(seed, code, face), stock=stock.get(code),
                                 available=code != STOPPED) for code, name, face in t.skus)
        goods.append(UpstreamGoods(id=t.id, name=t.name, type=t.type, skus=skus, category=t.category,
                                   description=DESCRIPTION,
                                   recharge_fields=(dict(PHONE_FIELD),) if t.type == "direct_recharge" else ()))
    return goods


def _letters(digest: bytes, n: int) -> str:
    value = int.from_bytes(digest, "big")
    out = []
    for _i in range(n):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(out)


def card_key(seed: str, out_order_no: str, index: int, numbered: bool) -> tuple[str | None, str]:
    """The ``index``-th key of an order: ``SANDBOX-XXXX-XXXX-XXXX`` (and a
    ``SBX`` + 13 digit card number for cards that have one)."""
    digest = hmac.new(seed.encode(), f"key\x1f{out_order_no}\x1f{index}".encode(), hashlib.sha256).digest()
    letters = _letters(digest[:10], 12)
    secret = f"SANDBOX-{letters[:4]}-{letters[4:8]}-{letters[8:]}"
    number = f"SBX{int.from_bytes(digest[10:18], 'big') % 10**13:013d}" if numbered else None
    return number, secret


def upstream_order_no(seed: str, out_order_no: str) -> str:
    return f"SBX{_h(seed, 'order', out_order_no):016X}"


def fails(seed: str, out_order_no: str, failure_rate: int) -> bool:
    """Whether this order is one of the ``failure_rate`` % that fail: a
    function of the order, so asking twice gives the same answer."""
    return _h(seed, "outcome", out_order_no) % 100 < failure_rate


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else "***"


# -- callbacks --------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def callback_body(result: UpstreamResult, now: float | None = None) -> bytes:
    """The exact bytes the simulated upstream POSTs for ``result``."""
    data = {"out_order_no": result.out_order_no, "upstream_order_no": result.upstream_order_no,
            "status": result.status, "delivered": result.delivered,
            "cost": None if result.cost is None else str(result.cost), "message": result.message,
            "keys": [{"number": number, "secret": secret} for number, secret in result.keys],
            "timestamp": int(now if now is not None else time.time())}
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _text(data: dict, name: str, limit: int, allow_empty: bool = True) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > limit or (not value and not allow_empty):
        raise CallbackRejected(f"malformed {name}")
    return value


def _keys(raw) -> tuple[tuple[str | None, str], ...]:
    if not isinstance(raw, list) or len(raw) > 1000:
        raise CallbackRejected("malformed keys")
    keys = []
    for item in raw:
        if not isinstance(item, dict) or set(item) - {"number", "secret"}:
            raise CallbackRejected("malformed keys")
        number, secret = item.get("number"), item.get("secret")
        if not isinstance(secret, str) or not secret or len(secret) > 500:
            raise CallbackRejected("malformed keys")
        if number is not None and (not isinstance(number, str) or len(number) > 200):
            raise CallbackRejected("malformed keys")
        keys.append((number, secret))
    return tuple(keys)


def verify_callback(body: bytes, signature: str, secret: str, now: float | None = None) -> UpstreamResult:
    """Check a callback exactly as it arrived and read it; raise
    :class:`CallbackRejected` on anything off. Fail closed: no secret, no
    signature or a signature of the wrong shape is a rejection."""
    if not secret or len(secret) < MIN_SECRET:
        raise CallbackRejected("the sandbox supplier has no secret configured")
    if not signature:
        raise CallbackRejected("missing signature")
    if not re.fullmatch(r"[0-9a-f]{64}", signature):
        raise CallbackRejected("malformed signature")
    if not hmac.compare_digest(sign(body, secret), signature):
        raise CallbackRejected("bad signature")
    try:
        data = strictjson.loads(body)
    except strictjson.StrictJSONError as exc:
        raise CallbackRejected(str(exc)) from None
    if not isinstance(data, dict) or set(data) != CALLBACK_FIELDS:
        raise CallbackRejected("unexpected or missing fields")
    stamp = data["timestamp"]
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        raise CallbackRejected("malformed timestamp")
    if abs((now if now is not None else time.time()) - stamp) > MAX_SKEW:
        raise CallbackRejected("timestamp outside the 300 s window")
    out_order_no = _text(data, "out_order_no", 64, allow_empty=False)
    if not OUT_ORDER_NO.fullmatch(out_order_no):
        raise CallbackRejected("malformed out_order_no")
    status = data["status"]
    if status not in STATUSES:
        raise CallbackRejected("unknown status")
    delivered = data["delivered"]
    if delivered is not None and (not isinstance(delivered, int) or isinstance(delivered, bool) or delivered < 0):
        raise CallbackRejected("malformed delivered")
    cost = data["cost"]
    if cost is not None:
        if not isinstance(cost, str) or not re.fullmatch(r"\d{1,12}(\.\d{1,2})?", cost):
            raise CallbackRejected("malformed cost")
        try:
            cost = Decimal(cost)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise CallbackRejected("malformed cost") from None
    return UpstreamResult(status=status, out_order_no=out_order_no,
                          upstream_order_no=_text(data, "upstream_order_no", 64), keys=_keys(data["keys"]),
                          delivered=delivered, cost=cost, message=_text(data, "message", 500))
