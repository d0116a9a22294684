"""The Alipay Open Platform protocol (RSA2), as pure functions.

Requests: every parameter but ``sign`` (``sign_type`` included) sorted by
name and joined as ``k=v&k=v`` with raw values, signed SHA256withRSA with
the app's private key (PROTOCOLS.md A2, fzlee ``sign_data``).

Notifies: ``sign`` and ``sign_type`` removed, empty values skipped (the
official SDKs' ``getSignContent``), the rest sorted and joined with decoded
values, verified with *Alipay's* public key.

Sync responses: the signature covers the raw JSON text of the
``<method>_response`` member exactly as it arrived, so it is cut out of the
body by position, never re-serialised (a proxy that reorders keys must make
verification fail, SECURITY.md B3 #22).

No Pyramid here: everything is testable against known answers.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGN_TYPE = "RSA2"
GMT8 = dt.timezone(dt.timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: a base64 RSA signature: 2048 to 4096 bit keys give 344 to 684 characters
_SIGN_RE = re.compile(r"[A-Za-z0-9+/]{300,700}={0,2}", re.ASCII)
_B64_BODY = re.compile(r"[A-Za-z0-9+/=\s]+", re.ASCII)
MIN_KEY_BITS = 2048


class ProtocolError(ValueError):
    """A response or key that does not verify or parse. The message holds no secrets."""


# -- keys ---------------------------------------------------------------------------------


def _der_of(text: str) -> bytes | None:
    """The DER bytes of a key written as bare base64 (how Alipay's key tool
    and its backend show keys), or None for PEM."""
    body = text.strip()
    if body.startswith("-----BEGIN"):
        return None
    if not _B64_BODY.fullmatch(body):
        raise ProtocolError("the key is neither PEM nor base64")
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("the key is not valid base64") from None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key in PEM (PKCS#1 or PKCS#8) or bare base64 DER."""
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError("no private key")
    try:
        der = _der_of(text)
        if der is None:
            key = serialization.load_pem_private_key(text.strip().encode("ascii"), password=None)
        else:
            key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ProtocolError("the private key does not parse (PEM or base64, no password)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ProtocolError("the private key is not an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise ProtocolError("RSA2 needs a key of at least 2048 bits")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key in PEM (SubjectPublicKeyInfo or PKCS#1) or bare base64 DER."""
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError("no public key")
    try:
        der = _der_of(text)
        if der is None:
            key = serialization.load_pem_public_key(text.strip().encode("ascii"))
        else:
            key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ProtocolError("the public key does not parse (PEM or base64)") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ProtocolError("the public key is not an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise ProtocolError("RSA2 needs a key of at least 2048 bits")
    return key


def same_key(private_key: rsa.RSAPrivateKey, public_key: rsa.RSAPublicKey) -> bool:
    """Whether ``public_key`` is the public half of ``private_key`` (a
    merchant who pasted their own app public key where Alipay's belongs)."""
    return private_key.public_key().public_numbers() == public_key.public_numbers()


# -- signing ------------------------------------------------------------------------------


def _text(value) -> str:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def request_sign_content(params: dict) -> str:
    """The string a request signs: every parameter except ``sign`` sorted
    by name, ``sign_type`` included, dicts as compact JSON, raw values."""
    return "&".join(f"{k}={_text(params[k])}" for k in sorted(params) if k != "sign" and params[k] is not None)


def notify_sign_content(fields: dict) -> str:
    """The string a notify is verified over: ``sign`` and ``sign_type``
    removed, empty values skipped, the rest sorted and joined."""
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k not in ("sign", "sign_type") and fields[k] != "")


def rsa2_sign(content: str, private_key: rsa.RSAPrivateKey) -> str:
    """SHA256withRSA (PKCS#1 v1.5) over the UTF-8 bytes, base64 without newlines."""
    signature = private_key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa2_verify(content: str, sign: str, public_key: rsa.RSAPublicKey) -> bool:
    """Whether ``sign`` (base64) is a valid RSA2 signature of ``content``.
    Anything but a well-formed base64 string is False, never an exception."""
    if not isinstance(sign, str) or not _SIGN_RE.fullmatch(sign):
        return False
    try:
        raw = base64.b64decode(sign, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def timestamp(now: dt.datetime | None = None) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in GMT+8, the protocol's clock."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.astimezone(GMT8).strftime(TIME_FORMAT)


def parse_time(text: str) -> dt.datetime:
    """A protocol time (GMT+8) as an aware datetime; ProtocolError if malformed."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text, re.ASCII):
        raise ProtocolError("malformed time")
    try:
        return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=GMT8)
    except ValueError:
        raise ProtocolError("malformed time") from None


def build_request(app_id: str, method: str, biz_content: dict, private_key: rsa.RSAPrivateKey, *,
                  notify_url: str | None = None, return_url: str | None = None,
                  now: dt.datetime | None = None) -> dict:
    """The common parameters of one call, signed: ``{name: value}`` with
    ``biz_content`` as the compact JSON text that was signed."""
    params = {"app_id": app_id, "method": method, "charset": "utf-8", "sign_type": SIGN_TYPE,
              "timestamp": timestamp(now), "version": "1.0",
              "biz_content": json.dumps(biz_content, separators=(",", ":"), ensure_ascii=False)}
    if notify_url:
        params["notify_url"] = notify_url
    if return_url:
        params["return_url"] = return_url
    params["sign"] = rsa2_sign(request_sign_content(params), private_key)
    return params


# -- sync responses -----------------------------------------------------------------------

_WS = " \t\r\n"


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def top_level_members(text: str) -> dict[str, tuple[int, int, object]]:
    """``{key: (start, end, value)}`` for each member of the JSON object
    ``text``, where ``text[start:end]`` is the value's raw text. A key sent
    twice, trailing data or anything but an object is a ProtocolError."""
    decoder = json.JSONDecoder()
    out: dict[str, tuple[int, int, object]] = {}
    try:
        i = _skip_ws(text, 0)
        if text[i:i + 1] != "{":
            raise ProtocolError("the answer is not a JSON object")
        i = _skip_ws(text, i + 1)
        if text[i:i + 1] == "}":
            i += 1
        else:
            while True:
                if text[i:i + 1] != '"':
                    raise ProtocolError("the answer is not valid JSON")
                key, i = decoder.raw_decode(text, i)
                i = _skip_ws(text, i)
                if text[i:i + 1] != ":":
                    raise ProtocolError("the answer is not valid JSON")
                start = _skip_ws(text, i + 1)
                value, end = decoder.raw_decode(text, start)
                if key in out:
                    raise ProtocolError("the answer has a member twice")
                out[key] = (start, end, value)
                i = _skip_ws(text, end)
                if text[i:i + 1] == ",":
                    i = _skip_ws(text, i + 1)
                    continue
                if text[i:i + 1] == "}":
                    i += 1
                    break
                raise ProtocolError("the answer is not valid JSON")
        if _skip_ws(text, i) != len(text):
            raise ProtocolError("the answer has data after its JSON object")
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError("the answer is not valid JSON") from None
    return out


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def parse_response(text: str, method: str, public_key: rsa.RSAPublicKey) -> tuple[dict, bool]:
    """``(response object, verified)`` of a sync answer to ``method``.

    ``verified`` is True only when a ``sign`` member verifies over the raw
    text of ``<method>_response``. An answer without a signature (Alipay
    does not sign some gateway-level errors) is returned unverified: callers
    may only use it to report a failure. A signature that is present and
    wrong is a ProtocolError."""
    members = top_level_members(text)
    key = response_key(method)
    entry = members.get(key) or members.get("error_response")
    if entry is None:
        raise ProtocolError("the answer has no response object")
    start, end, value = entry
    if not isinstance(value, dict):
        raise ProtocolError("the response is not an object")
    sign = members.get("sign")
    if sign is None:
        return value, False
    if not rsa2_verify(text[start:end], sign[2], public_key):
        raise ProtocolError("the answer's signature does not verify")
    return value, True
