"""The epusdt server's side of a callback, for kameng's gateway conformance
suite (:mod:`kameng.testing.gateways`).

Amounts are raw JSON tokens, the protocol's own form: ``"1"`` is the JSON
number ``1`` (what a Go server writes for 1.00 CNY), ``'"1.00"'`` a JSON
string. Callbacks are signed the way the Go servers sign: every non-empty
field but ``signature``, numbers written by ``strconv.FormatFloat``.
"""
from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from kameng.testing.gateways import MISSING, GatewayDriver, NotifyRequest

from kameng_usdt import protocol
from kameng_usdt.protocol import Number

TOKEN = "conformance-test-token-0123456789"
WRONG_TOKEN = "not-the-merchant-token-9876543210"
WALLET = "TNEns8t9jbWENbStkQdVQtHMGpbsYsQjZK"
STATUS_CODES = {"paid": 2, "pending": 1, "failed": 3, "closed": 3, "expired": 3, 1: 1, 2: 2, 3: 3}


def value_of(token) -> object:
    """A raw token (``1.00``, ``"1.00"``) as the value :func:`protocol.dumps` writes."""
    if isinstance(token, (int, Decimal)) and not isinstance(token, bool):
        return Number(str(token))
    text = str(token)
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return json.loads(text)
    return Number(text)


def _signed_text(value) -> str:
    """What a Go server writes for a value; a token Go could not decode
    (``NaN``) is signed as written, so only the gateway's parser refuses it."""
    if isinstance(value, Number):
        try:
            return protocol.go_float(value)
        except protocol.ProtocolError:
            return str(value)
    return value


def signature(fields: dict, token: str) -> str:
    text = "&".join(f"{k}={_signed_text(fields[k])}" for k in sorted(fields)
                    if k != "signature" and fields[k] is not None and _signed_text(fields[k]) != "")
    return hashlib.md5((text + token).encode("utf-8")).hexdigest()


def _pairs(body: bytes) -> list:
    return json.loads(body, object_pairs_hook=list, parse_float=Number, parse_int=Number,
                      parse_constant=Number)


def _emit(pairs: list) -> bytes:
    items = []
    for key, value in pairs:
        text = str(value) if isinstance(value, Number) else json.dumps(value, ensure_ascii=False)
        items.append(json.dumps(key) + ":" + text)
    return ("{" + ",".join(items) + "}").encode("utf-8")


def _installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "usdt" for ep in entry_points(group="kameng"))


class UsdtDriver(GatewayDriver):
    gateway_id = "usdt"
    key_setting = "api_token"
    has_timestamp = False
    has_merchant_id = False
    has_currency = False
    signs_extra_fields = True
    currency = "CNY"

    @property
    def plugins(self) -> tuple:
        """Load the plugin by hand only from a checkout that was not installed."""
        if _installed():
            return ()
        import kameng_usdt

        return (("usdt", kameng_usdt),)

    def settings(self) -> dict:
        # a discard port on loopback: the conformance suite never creates trades
        return {"api_url": "http://127.0.0.1:9", "api_token": TOKEN}

    def fields(self, attempt_no: str, amount, trade_no: str, status="paid", extra: dict | None = None) -> dict:
        """The callback's fields in the order epusdt's struct writes them."""
        code = STATUS_CODES[status]
        fields = {"trade_id": trade_no, "order_id": attempt_no, "amount": value_of(amount),
                  "actual_amount": Number("0.1389"), "token": WALLET,
                  # the chain transaction exists once paid; BEpusdt sends "" before
                  "block_transaction_id": hashlib.sha256(trade_no.encode()).hexdigest() if code == 2 else "",
                  "status": Number(str(code))}
        fields.update(extra or {})
        return fields

    def request(self, fields: dict, token: str = TOKEN) -> NotifyRequest:
        # epusdt's struct writes the signature just before the status
        pairs = [(k, v) for k, v in fields.items() if k not in ("signature", "status")]
        pairs.append(("signature", signature(fields, token)))
        if "status" in fields:
            pairs.append(("status", fields["status"]))
        return NotifyRequest(method="POST", path="/pay/usdt/notify", body=_emit(pairs),
                             content_type="application/json",
                             headers=(("Powered-By", "https://github.com/v03413/BEpusdt"),))

    def notify(self, attempt_no: str, amount, *, trade_no: str, status: str = "paid",
               merchant_id: str | None = None, currency: str | None = None, timestamp: int | None = None,
               extra: dict | None = None, wrong_key: bool = False) -> NotifyRequest:
        # the protocol carries no merchant, currency or timestamp: those are ignored
        fields = self.fields(attempt_no, amount, trade_no, status, extra)
        return self.request(fields, WRONG_TOKEN if wrong_key else TOKEN)

    def amount_forms(self, minor: int) -> list:
        d = Decimal(minor).scaleb(-2)
        forms = [protocol.go_float(d), f"{d:.2f}"]
        if d == d.quantize(Decimal("0.1")):
            forms.append(f"{d:.1f}")
        forms.append(json.dumps(f"{d:.2f}"))
        return list(dict.fromkeys(forms))

    def malformed_amounts(self) -> list:
        return ["1e0", "1E0", "100e-2", "-1", "1.001", "0.999", "NaN", "Infinity",
                '"1e0"', '" 1.00"', '"1.00 "', '"0x10"', '"+1.00"', '"01.00"', '"1,00"', '"-1.00"']

    def with_signature(self, n: NotifyRequest, value) -> NotifyRequest:
        pairs = [(k, v) for k, v in _pairs(n.body) if k != "signature"]
        if value is not MISSING:
            pairs.append(("signature", list(value) if isinstance(value, (list, tuple)) else value))
        return n.with_(body=_emit(pairs))

    def with_unsigned_field(self, n: NotifyRequest, name: str, value: str) -> NotifyRequest:
        return n.with_(body=_emit(_pairs(n.body) + [(name, value)]))

    def with_duplicate(self, n: NotifyRequest) -> NotifyRequest:
        pairs = _pairs(n.body)
        first = next(v for k, v in pairs if k == "amount")
        other = Number("1000") if str(first) != "1000" else Number("2000")
        return n.with_(body=_emit(pairs + [("amount", other)]))

    def empty_fields(self, attempt_no: str, amount, trade_no: str) -> list[tuple[str, NotifyRequest]]:
        out = []
        for name in ("order_id", "trade_id", "amount", "status", "block_transaction_id"):
            fields = self.fields(attempt_no, amount, trade_no)
            fields[name] = ""
            out.append((name, self.request(fields)))
        return out

    def accepted(self, status: int, body: bytes) -> bool:
        # epusdt stops retrying on the exact body "ok"; BEpusdt on HTTP 200
        return status == 200 and body == b"ok"
