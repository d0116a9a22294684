"""Calls to the epay platform, V1 and V2, through :mod:`kameng.httpclient`.

Each function returns the decoded answer or raises :class:`GatewayError`
with a message that holds no key (V1 sends the merchant key in the query
string of ``api.php``; httpclient never logs query strings, and nothing here
repeats a URL with its query). V2 answers are signed by the platform and are
only believed once the signature and the timestamp verify; V2 errors are
unsigned and only ever read as a refusal.
"""
from __future__ import annotations

import json
import time

from kameng import httpclient
from kameng.payments import GatewayError

from kameng_epay import protocol
from kameng_epay.config import Config

#: seconds to wait for the platform (tests shorten it)
TIMEOUT = 10.0
#: V1 answers ``code == 1`` for success; V2 ``code == 0``
V1_OK, V2_OK = "1", "0"


def clean_message(value, limit: int = 160) -> str:
    """A provider's ``msg`` made safe to show and log: text only, one line, short."""
    text = value if isinstance(value, str) else ""
    text = " ".join(text.split())
    return text[:limit] or "no message"


def _call(method: str, url: str, **kw) -> httpclient.HttpResponse:
    try:
        return httpclient.request(method, url, timeout=TIMEOUT, **kw)
    except httpclient.HttpError as exc:
        raise GatewayError(f"epay: {exc}", uncertain=exc.uncertain) from None


def decode(resp: httpclient.HttpResponse) -> dict:
    """The JSON object of a 200 answer, numbers kept as their text (V2
    signatures cover the text PHP printed)."""
    if resp.status != 200:
        raise GatewayError(f"epay answered HTTP {resp.status}")
    try:
        data = json.loads(resp.body.decode("utf-8-sig"), parse_int=str, parse_float=protocol.php_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise GatewayError("epay answered something that is not JSON") from None
    if not isinstance(data, dict):
        raise GatewayError("epay answered something that is not a JSON object")
    return data


def text(value) -> str:
    """A scalar of a decoded answer as text (``1`` and ``"1"`` alike); anything else is ``""``."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return ""
    return value if isinstance(value, str) else str(value)


def code_of(data: dict) -> str:
    return text(data.get("code"))


# -- V1 (MD5, mapi.php / api.php) -----------------------------------------------------------


def v1_sign(cfg: Config, fields: dict) -> dict:
    signed = dict(fields)
    signed["sign"] = protocol.md5_sign(signed, cfg.key, cfg.sign_mode)
    signed["sign_type"] = "MD5"
    return signed


def v1_mapi(cfg: Config, fields: dict) -> dict:
    """``POST mapi.php``: create the trade server-side (uncertain answers
    are harmless here: a second create with the same fields returns the
    same trade)."""
    return decode(_call("POST", cfg.url("mapi.php"), data=v1_sign(cfg, fields)))


def v1_order(cfg: Config, out_trade_no: str) -> dict:
    """``GET api.php?act=order``: the trade's state. The key rides in the query string (the protocol's choice)."""
    params = {"act": "order", "pid": cfg.pid, "key": cfg.key, "out_trade_no": out_trade_no}
    return decode(_call("GET", cfg.url("api.php"), params=params))


def v1_refund(cfg: Config, out_trade_no: str, money: str) -> dict:
    """``POST api.php?act=refund``. There is no merchant refund number: the
    caller must have checked with :func:`v1_order` that it is not done yet."""
    fields = {"pid": cfg.pid, "key": cfg.key, "out_trade_no": out_trade_no, "money": money}
    return decode(_call("POST", cfg.url("api.php"), params={"act": "refund"}, data=fields))


# -- V2 (RSA, api/*) ------------------------------------------------------------------------


def v2_sign(cfg: Config, fields: dict, now: float | None = None) -> dict:
    signed = {**fields, "pid": cfg.pid, "timestamp": str(int(now if now is not None else time.time()))}
    signed["sign"] = protocol.rsa_sign(signed, cfg.merchant_key)
    signed["sign_type"] = "RSA"
    return signed


def v2_verified(cfg: Config, data: dict, now: float | None = None) -> dict:
    """A successful V2 answer whose platform signature and timestamp verify;
    an error answer (unsigned by design) is returned as it is, to be read
    as a refusal only."""
    if code_of(data) != V2_OK:
        return data
    fields = protocol.signed_fields_of(data)
    if fields.get("sign_type") != "RSA" or not protocol.rsa_verify(fields, fields.get("sign"), cfg.platform_key):
        raise GatewayError("epay's answer does not verify with the platform public key")
    if not protocol.fresh(fields.get("timestamp"), now if now is not None else time.time()):
        raise GatewayError("epay's answer has a timestamp more than 300 s off: check the server clocks")
    return data


def v2_call(cfg: Config, path: str, fields: dict) -> dict:
    """``POST api/<path>`` signed; the answer verified (see :func:`v2_verified`)."""
    return v2_verified(cfg, decode(_call("POST", cfg.url("api/" + path), data=v2_sign(cfg, fields))))
