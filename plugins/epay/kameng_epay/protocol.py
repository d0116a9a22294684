"""The epay (易支付) wire protocol as pure functions: sign strings, MD5 and
RSA signatures, key loading and the strict reading of notify fields.

Nothing here knows about Pyramid or the database, so the known-answer tests
(PROTOCOLS.md A1.3 and K3) run against exactly the code the gateway uses.
The rules are the server's (``includes/lib/Payment.php::getSignContent``):
every field except ``sign``, ``sign_type`` and empty values, sorted by name,
joined as ``k=v&k=v`` with raw (not URL-encoded) values.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: fields the signature never covers
UNSIGNED = ("sign", "sign_type")
#: what PHP's ``trim`` strips: a value of only these counts as empty
_PHP_TRIM = " \t\n\r\0\x0b"
#: the V2 server refuses requests whose timestamp is further off than this (``ApiHelper::api_verify``)
MAX_SKEW = 300
#: the smallest RSA key we accept (epay generates 2048-bit keys)
MIN_RSA_BITS = 2048
SIGN_MODES = ("plain", "amp_key")

_MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{40,1400}={0,2}")


class BadKey(ValueError):
    """A key setting that does not parse (the message names no key material)."""


def is_empty(value) -> bool:
    """PHP's ``isEmpty``: ``null`` or only whitespace. Such fields are left
    out of the signed string (the A1.3 submit vector has ``param=""``)."""
    return value is None or str(value).strip(_PHP_TRIM) == ""


def sign_content(fields: dict) -> str:
    """The string both sides sign: sorted ``k=v`` pairs joined by ``&``."""
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields)
                    if k not in UNSIGNED and not is_empty(fields[k]))


# -- V1: MD5 --------------------------------------------------------------------------------


def md5_sign(fields: dict, key: str, mode: str = "plain") -> str:
    """``md5(content + KEY)``, lowercase hex. ``amp_key`` is the variant of
    some clones, ``md5(content + "&key=" + KEY)``."""
    if mode not in SIGN_MODES:
        raise ValueError("unknown sign mode")
    glue = "&key=" if mode == "amp_key" else ""
    return hashlib.md5((sign_content(fields) + glue + key).encode("utf-8")).hexdigest()


def md5_verify(fields: dict, sign, key: str, mode: str = "plain") -> bool:
    """Constant-time check of a received MD5 sign. Uppercase hex is accepted
    (normalised, as the hardened dujiaoka fork does); anything that is not 32
    hex characters fails before any comparison."""
    if not isinstance(sign, str) or not _MD5_HEX.fullmatch(sign) or not key:
        return False
    return hmac.compare_digest(md5_sign(fields, key, mode), sign.lower())


# -- V2: SHA256withRSA ----------------------------------------------------------------------


def _der(text: str) -> bytes | None:
    """The DER bytes of a key pasted without PEM armour (how the epay
    backend shows keys), or None if it is not plain base64."""
    compact = re.sub(r"\s+", "", text)
    if not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", compact):
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


@functools.lru_cache(maxsize=16)
def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or from the bare base64
    the epay backend shows. Raises :class:`BadKey`. Cached: parsing and
    checking an RSA private key takes tens of milliseconds, and every notify
    and call would pay for it again."""
    text = (text or "").strip()
    key = None
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            der = _der(text)
            if der is not None:
                key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadKey("not an RSA private key in PEM or base64 form")
    if key.key_size < MIN_RSA_BITS:
        raise BadKey(f"the RSA key is shorter than {MIN_RSA_BITS} bits")
    return key


@functools.lru_cache(maxsize=16)
def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo or PKCS#1) or bare base64."""
    text = (text or "").strip()
    key = None
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            der = _der(text)
            if der is not None:
                key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnicodeEncodeError):
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadKey("not an RSA public key in PEM or base64 form")
    if key.key_size < MIN_RSA_BITS:
        raise BadKey(f"the RSA key is shorter than {MIN_RSA_BITS} bits")
    return key


def same_public_key(a: rsa.RSAPublicKey, b: rsa.RSAPublicKey) -> bool:
    return a.public_numbers() == b.public_numbers()


def rsa_sign_content(content: str, private_key: rsa.RSAPrivateKey) -> str:
    """``openssl_sign(content, OPENSSL_ALGO_SHA256)`` then base64: PKCS#1 v1.5, deterministic."""
    return base64.b64encode(private_key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_sign(fields: dict, private_key: rsa.RSAPrivateKey) -> str:
    return rsa_sign_content(sign_content(fields), private_key)


def rsa_verify_content(content: str, sign, public_key: rsa.RSAPublicKey) -> bool:
    if not isinstance(sign, str) or not _BASE64.fullmatch(sign):
        return False
    try:
        raw = base64.b64decode(sign, validate=True)
        public_key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def rsa_verify(fields: dict, sign, public_key: rsa.RSAPublicKey) -> bool:
    return rsa_verify_content(sign_content(fields), sign, public_key)


def fresh(timestamp, now: float, skew: int = MAX_SKEW) -> bool:
    """A 10-digit-ish unix timestamp within ``skew`` seconds of ``now``."""
    if not isinstance(timestamp, str) or not re.fullmatch(r"\d{1,12}", timestamp):
        return False
    return abs(now - int(timestamp)) <= skew


# -- reading what arrived -------------------------------------------------------------------


def php_json_value(value):
    """A decoded JSON value as PHP's string conversion saw it when the
    server signed it: ``true`` → ``"1"``; ``false``, ``null``, arrays and
    objects → left out (None). Numbers must be decoded as their text
    (``json.loads(parse_int=str, parse_float=php_float)``)."""
    if value is True:
        return "1"
    if value is False or value is None or isinstance(value, (list, dict)):
        return None
    return value if isinstance(value, str) else str(value)


def php_float(text: str) -> str:
    """``json_encode`` writes the float 100.0 as ``100.0`` but PHP signed
    ``(string)100.0 == "100"``: drop the trailing zeros of a fraction."""
    if "." in text and "e" not in text.lower():
        text = text.rstrip("0").rstrip(".")
    return text


def signed_fields_of(data: dict) -> dict:
    """The fields of a decoded JSON answer as the server signed them."""
    out = {}
    for k, v in data.items():
        value = php_json_value(v)
        if value is not None:
            out[str(k)] = value
    return out


class Malformed(ValueError):
    """A request whose fields cannot be read unambiguously."""


#: more than this many fields, or longer names and values, is not an epay notify
MAX_FIELDS, MAX_NAME, MAX_VALUE = 64, 64, 4096


def collect_fields(*sources) -> dict:
    """One dict from the ``(name, value)`` pairs of each source (the query
    string, then the form body), refusing what two readers could read
    differently: a name sent twice or in both places (parameter pollution),
    a PHP array name (``sign[]``: PHP would skip it from the signed string),
    and anything that is not text (an uploaded file)."""
    fields: dict[str, str] = {}
    for pairs in sources:
        for name, value in pairs:
            if not isinstance(name, str) or not isinstance(value, str):
                raise Malformed("a field is not text")
            if not name or len(name) > MAX_NAME or "[" in name or "]" in name:
                raise Malformed("malformed field name")
            if name in fields:
                raise Malformed(f"field {name[:32]} sent more than once")
            if len(value) > MAX_VALUE:
                raise Malformed(f"field {name[:32]} is too long")
            fields[name] = value
            if len(fields) > MAX_FIELDS:
                raise Malformed("too many fields")
    return fields
