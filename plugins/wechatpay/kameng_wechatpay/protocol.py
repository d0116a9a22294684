"""WeChat Pay API v3, the pure parts: what is signed, how, and what a
transaction says. No Pyramid and no network here, so every function can be
checked against known answers (tests/test_wechatpay_kat.py).

Requests are signed by the merchant (``METHOD\\nPATH?QUERY\\nTS\\nNONCE\\nBODY\\n``,
SHA256withRSA, merchant API private key); answers and callbacks are signed by
WeChat Pay (``TS\\nNONCE\\nBODY\\n``) with a platform certificate's key or, for a
serial ``PUB_KEY_ID_…``, with the WeChat Pay public key. Callback resources
are AES-GCM encrypted with the merchant's APIv3 key.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kameng import strictjson

AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
#: WeChat Pay probes merchants with signatures that must never verify
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
#: a ``Wechatpay-Serial`` naming the WeChat Pay public key, not a certificate
PUBLIC_KEY_PREFIX = "PUB_KEY_ID_"
#: seconds a signed answer or callback may be away from our clock (wechatpay-go's FiveMinute)
MAX_SKEW = 300
#: ``out_trade_no``: at most 32 of these (WeChat Pay's rule)
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,32}")
#: ``out_refund_no``: at most 64 of these
OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")

#: ``trade_state`` → the core's status. REFUND (paid, then refunded at WeChat
#: Pay) is not a payment to deliver for; the core leaves such an attempt alone.
TRADE_STATES = {"SUCCESS": "paid", "NOTPAY": "pending", "USERPAYING": "pending", "CLOSED": "closed",
                "REVOKED": "closed", "PAYERROR": "failed", "REFUND": "closed"}
#: a refund's ``status`` → the core's refund status
REFUND_STATES = {"SUCCESS": "succeeded", "PROCESSING": "pending", "CLOSED": "failed", "ABNORMAL": "failed"}
#: the most a single WeChat Pay amount can be, in fen (a bound against nonsense, far above any real order)
MAX_FEN = 10 ** 12


def clock() -> float:
    """Now, in unix seconds (a seam for known-answer tests with fixed times)."""
    return time.time()


class ProtocolError(ValueError):
    """Something WeChat Pay sent (or we were about to send) is not what the
    protocol allows. The message names the problem, never a key or signature."""


# -- keys -------------------------------------------------------------------------------


def _pem_text(text: str, label: str) -> bytes:
    """PEM bytes; a key pasted without its ``-----BEGIN`` lines is wrapped."""
    text = (text or "").strip()
    if not text:
        raise ProtocolError("empty")
    if "-----BEGIN" not in text:
        body = re.sub(r"\s+", "", text)
        text = f"-----BEGIN {label}-----\n" + "\n".join(body[i:i + 64] for i in range(0, len(body), 64)) + \
            f"\n-----END {label}-----"
    return text.encode("ascii", "strict") if text.isascii() else b""


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """The merchant API private key (``apiclient_key.pem``, PKCS#8 or PKCS#1)."""
    data = _pem_text(pem, "PRIVATE KEY")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ProtocolError("not a PEM private key without a password") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ProtocolError("not an RSA key of at least 2048 bits")
    return key


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """The WeChat Pay public key (``pub_key.pem``)."""
    data = _pem_text(pem, "PUBLIC KEY")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ProtocolError("not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise ProtocolError("not an RSA key of at least 2048 bits")
    return key


def load_certificates(pem_bundle: str) -> dict[int, x509.Certificate]:
    """Platform certificates, several in one PEM text, by serial number."""
    data = (pem_bundle or "").strip().encode("ascii", "replace")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ProtocolError("no PEM certificate found")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ProtocolError("a certificate does not parse") from None
    out = {}
    for cert in certs:
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
            raise ProtocolError("a certificate does not hold an RSA key of at least 2048 bits")
        out[cert.serial_number] = cert
    return out


def serial_number(text: str) -> int | None:
    """A certificate serial as WeChat Pay writes it (hex, any case) as a
    number, so ``0A1B`` and ``a1b`` name one certificate; None if not hex."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9A-Fa-f]{1,64}", text):
        return None
    return int(text, 16)


def serial_text(number: int) -> str:
    return f"{number:X}"


# -- signing and verifying ---------------------------------------------------------------


def request_message(method: str, url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the merchant signs: five lines, each ending in ``\\n`` (the body's too)."""
    return f"{method}\n{url}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs in an answer or a callback: three lines."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    if len(raw) != (public_key.key_size + 7) // 8:
        return False
    try:
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def authorization(mchid: str, serial_no: str, private_key: rsa.RSAPrivateKey, method: str, url: str,
                  body: bytes, timestamp: str | None = None, nonce: str | None = None) -> str:
    """The ``Authorization`` header for one request; ``url`` is the path with
    its query string exactly as sent, ``body`` the exact bytes sent."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    signature = sign(private_key, request_message(method, url, timestamp, nonce, body))
    return (f'{AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def parse_authorization(header: str) -> dict:
    """The fields of an ``Authorization`` header (the provider's side)."""
    if not isinstance(header, str) or not header.startswith(AUTH_SCHEMA + " "):
        raise ProtocolError("not a WECHATPAY2-SHA256-RSA2048 authorization")
    out = {}
    for part in header[len(AUTH_SCHEMA) + 1:].split(","):
        m = re.fullmatch(r'\s*([a-z_]+)="([^"]*)"\s*', part)
        if m is None or m.group(1) in out:
            raise ProtocolError("malformed authorization")
        out[m.group(1)] = m.group(2)
    if set(out) != {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}:
        raise ProtocolError("authorization fields missing")
    return out


@dataclass
class PlatformKeys:
    """The keys WeChat Pay signs with, as the merchant configured them:
    platform certificates by serial, and the WeChat Pay public key under its
    id. Both at once: during the move from certificates to the public key
    WeChat Pay signs with either."""

    certificates: dict[int, rsa.RSAPublicKey] = field(default_factory=dict)
    public_key_id: str = ""
    public_key: rsa.RSAPublicKey | None = None

    def find(self, serial: str) -> rsa.RSAPublicKey | None:
        if serial.startswith(PUBLIC_KEY_PREFIX):
            if self.public_key is not None and self.public_key_id and hmac.compare_digest(
                    serial.encode(), self.public_key_id.encode()):
                return self.public_key
            return None
        number = serial_number(serial)
        return self.certificates.get(number) if number is not None else None


def _header(headers: Mapping, name: str) -> str:
    value = headers.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"header {name} is missing")
    return value


def check_signed(headers: Mapping, body: bytes, find_key: Callable[[str], rsa.RSAPublicKey | None],
                 now: float | None = None, require_type: bool = True) -> str:
    """Verify a callback (or an API answer) WeChat Pay signed: the headers are
    all there, the time is within 300 s, the signature is no probe and
    verifies over the exact ``body`` with the key its serial names. Returns
    the serial. Raises :class:`ProtocolError`.

    ``require_type``: callbacks carry ``Wechatpay-Signature-Type`` and must
    name WECHATPAY2-SHA256-RSA2048; an API answer may leave it out."""
    timestamp = _header(headers, "Wechatpay-Timestamp")
    nonce = _header(headers, "Wechatpay-Nonce")
    signature = _header(headers, "Wechatpay-Signature")
    serial = _header(headers, "Wechatpay-Serial")
    kind = headers.get("Wechatpay-Signature-Type")
    if (require_type or kind is not None) and kind != AUTH_SCHEMA:
        raise ProtocolError("Wechatpay-Signature-Type is not WECHATPAY2-SHA256-RSA2048")
    if not re.fullmatch(r"[1-9][0-9]{0,11}", timestamp):
        raise ProtocolError("malformed Wechatpay-Timestamp")
    if abs((clock() if now is None else now) - int(timestamp)) > MAX_SKEW:
        raise ProtocolError("Wechatpay-Timestamp is more than 300 s away from our clock")
    if not re.fullmatch(r"[!-~]{1,64}", nonce):
        raise ProtocolError("malformed Wechatpay-Nonce")
    if signature.startswith(SIGNTEST_PREFIX):
        raise ProtocolError("a WeChat Pay signature probe (WECHATPAY/SIGNTEST/)")
    if not re.fullmatch(r"[!-~]{1,128}", serial):
        raise ProtocolError("malformed Wechatpay-Serial")
    key = find_key(serial)
    if key is None:
        raise ProtocolError("no platform certificate or public key with this Wechatpay-Serial")
    if not verify(key, response_message(timestamp, nonce, body), signature):
        raise ProtocolError("bad signature")
    return serial


# -- JSON and the encrypted resource ------------------------------------------------------


def loads(data: bytes):
    """Strict JSON: UTF-8, no key twice (a second ``total`` must not win),
    no NaN or Infinity."""
    try:
        return strictjson.loads(data, max_bytes=1024 * 1024)
    except strictjson.StrictJSONError as exc:
        raise ProtocolError(str(exc)) from None


def dumps(value) -> bytes:
    """The exact bytes a request sends (and signs): compact, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decrypt(key: bytes, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    """AEAD_AES_256_GCM as WeChat Pay uses it: ``ciphertext`` is base64 of the
    encrypted bytes with the 16-byte tag appended; the nonce and the
    associated data are UTF-8 text. The primitive takes any AES key size
    (wechatpay-go's own vectors use 16-byte keys); the settings require 32."""
    if not all(isinstance(v, str) for v in (nonce, associated_data, ciphertext)):
        raise ProtocolError("resource fields must be text")
    try:
        raw = base64.b64decode(ciphertext.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ProtocolError("ciphertext is not base64") from None
    if len(raw) < 16 or not nonce:
        raise ProtocolError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(nonce.encode("utf-8"), raw, associated_data.encode("utf-8"))
    except InvalidTag:
        raise ProtocolError("the resource does not decrypt (wrong APIv3 key, or tampered)") from None
    except ValueError:
        raise ProtocolError("the APIv3 key or the nonce has the wrong length") from None


def encrypt(key: bytes, nonce: str, associated_data: str, plaintext: bytes) -> str:
    """The provider's side of :func:`decrypt` (for the tests' fake WeChat Pay)."""
    return base64.b64encode(AESGCM(key).encrypt(nonce.encode("utf-8"), plaintext,
                                                associated_data.encode("utf-8"))).decode("ascii")


def decrypt_resource(key: bytes, resource) -> bytes:
    """The plaintext of a callback's (or a certificate list entry's) encrypted resource."""
    if not isinstance(resource, dict):
        raise ProtocolError("resource is not an object")
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise ProtocolError("resource algorithm is not AEAD_AES_256_GCM")
    associated = resource.get("associated_data", "")
    return decrypt(key, resource.get("nonce"), "" if associated is None else associated, resource.get("ciphertext"))


# -- what a transaction says ---------------------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    out_trade_no: str
    transaction_id: str
    trade_state: str
    status: str
    amount: Decimal
    currency: str
    mchid: str
    appid: str


def _text(obj: dict, name: str, required: bool = True, limit: int = 64) -> str:
    value = obj.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise ProtocolError(f"{name} is missing or not text")
    return value


def fen_to_yuan(total) -> Decimal:
    """``amount.total`` (integer fen) as yuan, exactly: JSON integers only
    (not ``true``, not ``100.0``, not ``"100"``), never negative."""
    if type(total) is not int or not 0 <= total <= MAX_FEN:
        raise ProtocolError("amount.total is not a whole number of fen")
    return Decimal(total) / 100


def transaction(obj) -> Transaction:
    """Read a transaction (a decrypted callback resource, or a query answer).

    A paid one must say everything the core checks: trade number, amount in
    fen and currency. An unpaid one (``NOTPAY`` answers carry no
    ``transaction_id`` and only ``payer_currency``) is read leniently:
    the core does nothing with its amount."""
    if not isinstance(obj, dict):
        raise ProtocolError("the transaction is not an object")
    state = _text(obj, "trade_state", limit=32)
    status = TRADE_STATES.get(state)
    if status is None:
        raise ProtocolError("unknown trade_state")
    out_trade_no = _text(obj, "out_trade_no", limit=32)
    if not OUT_TRADE_NO.fullmatch(out_trade_no):
        raise ProtocolError("malformed out_trade_no")
    amount = obj.get("amount")
    if not isinstance(amount, dict):
        raise ProtocolError("amount is missing")
    if status == "paid":
        total = fen_to_yuan(amount.get("total"))
        currency = _text(amount, "currency", limit=8)
        trade_no = _text(obj, "transaction_id")
    else:
        total = fen_to_yuan(amount.get("total", 0))
        currency = (_text(amount, "currency", required=False, limit=8)
                    or _text(amount, "payer_currency", required=False, limit=8) or "CNY")
        trade_no = _text(obj, "transaction_id", required=False)
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ProtocolError("malformed currency")
    return Transaction(out_trade_no=out_trade_no, transaction_id=trade_no, trade_state=state, status=status,
                       amount=total, currency=currency, mchid=_text(obj, "mchid", limit=32),
                       appid=_text(obj, "appid", limit=64))
