"""WeChat Pay's side of the protocol, for tests: test keys, signed and
encrypted callbacks, and the conformance kit's driver.

The platform key is wechatpay-go's public test key pair (certificate serial
``D7CE59D1F522D701``, in ``testdata/``); the merchant key, the WeChat Pay
"public key" and a stranger's key are generated once per process, so a test
that mixes up whose key signs what fails.
"""
from __future__ import annotations

import functools
import json
import os
import secrets
import time
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kameng.testing.gateways import MISSING, GatewayDriver, NotifyRequest

from kameng_wechatpay import protocol

MCHID = "1230000109"
APPID = "wxd678efh567hg6787"
APIV3_KEY = "ThisIsA32ByteAPIv3KeyForTests!!!"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD6E6E1D1C"
PLATFORM_SERIAL = "D7CE59D1F522D701"
PUBLIC_KEY_ID = "PUB_KEY_ID_0112300001092025010100000000000001"
NOTIFY_PATH = "/pay/wechatpay/notify"


def _data(name: str) -> bytes:
    return resources.files("kameng_wechatpay").joinpath("testdata", name).read_bytes()


@functools.cache
def platform_key() -> rsa.RSAPrivateKey:
    """The private key of the test platform certificate (wechatpay-go's)."""
    return serialization.load_pem_private_key(_data("wechatpay-go-test-private-key.pem"), password=None)


def platform_certificate_pem() -> str:
    return _data("wechatpay-go-test-platform-cert.pem").decode("ascii")


@functools.cache
def _generated(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def merchant_key() -> rsa.RSAPrivateKey:
    return _generated("merchant")


def public_key_mode_key() -> rsa.RSAPrivateKey:
    """The private half of the test "WeChat Pay public key" (``PUB_KEY_ID_…``)."""
    return _generated("wechatpay-public-key")


def stranger_key() -> rsa.RSAPrivateKey:
    return _generated("stranger")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def public_pem(key) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def settings(api_url: str = "http://127.0.0.1:9", **changes) -> dict:
    """Plugin settings that trust both test platform keys (certificate and
    public key). The default ``api_url`` is a closed local port: a test that
    unexpectedly calls out fails at once and never leaves the machine."""
    return {"mchid": MCHID, "appid": APPID, "apiv3_key": APIV3_KEY, "merchant_serial_no": MERCHANT_SERIAL,
            "merchant_private_key": private_pem(merchant_key()),
            "platform_public_key": public_pem(public_key_mode_key()),
            "platform_public_key_id": PUBLIC_KEY_ID, "platform_certificates": platform_certificate_pem(),
            "api_url": api_url, "channels": "native,h5", **changes}


def signer(mode: str = "certificate") -> tuple[str, rsa.RSAPrivateKey]:
    """``(Wechatpay-Serial, private key)`` WeChat Pay signs with in ``mode``
    (``certificate`` or ``public_key``)."""
    if mode == "public_key":
        return PUBLIC_KEY_ID, public_key_mode_key()
    return PLATFORM_SERIAL, platform_key()


def signed_headers(body: bytes, mode: str = "certificate", timestamp: int | None = None, nonce: str | None = None,
                   key: rsa.RSAPrivateKey | None = None) -> dict:
    """The ``Wechatpay-*`` headers of an answer or a callback carrying ``body``."""
    serial, default_key = signer(mode)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    return {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial,
            "Wechatpay-Signature-Type": protocol.AUTH_SCHEMA,
            "Wechatpay-Signature": protocol.sign(key or default_key, protocol.response_message(ts, nonce, body))}


def transaction(out_trade_no: str, total, trade_no: str, state: str = "SUCCESS", mchid: str = MCHID,
                appid: str = APPID, currency: str = "CNY", extra: dict | None = None) -> dict:
    """A transaction as WeChat Pay describes it (callback resource, query answer)."""
    tx = {"mchid": mchid, "appid": appid, "out_trade_no": out_trade_no, "trade_type": "NATIVE",
          "trade_state": state, "trade_state_desc": state, "bank_type": "OTHERS", "attach": "",
          "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
          "amount": {"total": total, "payer_total": total, "currency": currency, "payer_currency": currency}}
    if trade_no is not None:
        tx["transaction_id"] = trade_no
    if state == "SUCCESS":
        tx["success_time"] = "2024-01-01T12:00:10+08:00"
    tx.update(extra or {})
    return tx


def callback_body(plaintext: bytes, apiv3_key: str = APIV3_KEY, event_type: str = "TRANSACTION.SUCCESS",
                  original_type: str = "transaction") -> bytes:
    """A callback body: the envelope with ``plaintext`` encrypted in it."""
    nonce = secrets.token_urlsafe(9)[:12]
    resource = {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": protocol.encrypt(apiv3_key.encode("utf-8"), nonce, "transaction", plaintext),
                "associated_data": "transaction", "nonce": nonce}
    envelope = {"id": "EV-" + secrets.token_hex(8), "create_time": "2024-01-01T12:00:11+08:00",
                "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
                "resource": resource}
    return protocol.dumps(envelope)


def callback(tx: dict | bytes, mode: str = "certificate", timestamp: int | None = None,
             key: rsa.RSAPrivateKey | None = None, apiv3_key: str = APIV3_KEY,
             event_type: str = "TRANSACTION.SUCCESS") -> tuple[bytes, dict]:
    """``(body, headers)`` of a signed callback for transaction ``tx`` (a dict, or exact plaintext bytes)."""
    plaintext = tx if isinstance(tx, bytes) else protocol.dumps(tx)
    body = callback_body(plaintext, apiv3_key, event_type)
    return body, signed_headers(body, mode, timestamp=timestamp, key=key)


def certificate_list(apiv3_key: str = APIV3_KEY) -> bytes:
    """The body of ``GET /v3/certificates``: the test platform certificate, encrypted."""
    cert = x509.load_pem_x509_certificate(platform_certificate_pem().encode("ascii"))
    nonce = secrets.token_urlsafe(9)[:12]
    entry = {"serial_no": PLATFORM_SERIAL, "effective_time": cert.not_valid_before_utc.isoformat(),
             "expire_time": cert.not_valid_after_utc.isoformat(),
             "encrypt_certificate": {"algorithm": "AEAD_AES_256_GCM", "associated_data": "certificate",
                                     "nonce": nonce, "ciphertext": protocol.encrypt(
                                         apiv3_key.encode("utf-8"), nonce, "certificate",
                                         platform_certificate_pem().encode("ascii"))}}
    return protocol.dumps({"data": [entry]})


# -- the conformance kit's driver ------------------------------------------------------------

_STATES = {"paid": "SUCCESS", "pending": "NOTPAY", "failed": "PAYERROR"}


class WechatPayDriver(GatewayDriver):
    """WeChat Pay's callbacks for :class:`kameng.testing.gateways.GatewayConformance`.

    Amounts are integer fen, as WeChat Pay writes them. The signature is a
    header, so "sent twice" is two ``Wechatpay-Signature`` headers and an
    unsigned extra field can only ride in the query string (the body is
    signed whole)."""

    gateway_id = "wechatpay"
    key_setting = "apiv3_key"
    has_timestamp = True
    has_merchant_id = True
    has_currency = True
    #: an extra field inside the signed (and encrypted) transaction still verifies
    signs_extra_fields = True
    currency = "CNY"

    def settings(self) -> dict:
        return settings()

    def _request(self, body: bytes, headers: dict) -> NotifyRequest:
        return NotifyRequest(method="POST", path=NOTIFY_PATH, body=body, content_type="application/json",
                             headers=tuple(headers.items()))

    def notify(self, attempt_no: str, amount, *, trade_no: str, status: str = "paid", merchant_id: str | None = None,
               currency: str | None = None, timestamp: int | None = None, extra: dict | None = None,
               wrong_key: bool = False) -> NotifyRequest:
        tx = transaction(attempt_no, amount, trade_no, state=_STATES.get(status, status),
                         mchid=MCHID if merchant_id is None else merchant_id,
                         currency="CNY" if currency is None else currency, extra=extra)
        body, headers = callback(tx, timestamp=timestamp, key=stranger_key() if wrong_key else None)
        return self._request(body, headers)

    def amount_forms(self, minor: int) -> list:
        return [minor]

    def malformed_amounts(self) -> list:
        return ["100", 100.0, 100.5, -100, True, None, "1.00", [100]]

    def with_signature(self, n: NotifyRequest, value) -> NotifyRequest:
        headers = [(k, v) for k, v in n.headers if k != "Wechatpay-Signature"]
        if value is MISSING:
            pass
        elif isinstance(value, (list, tuple)):
            headers += [("Wechatpay-Signature", str(v)) for v in value]
        elif value is True:
            headers.append(("Wechatpay-Signature", "true"))
        else:
            headers.append(("Wechatpay-Signature", str(value)))
        return n.with_(headers=tuple(headers))

    def with_unsigned_field(self, n: NotifyRequest, name: str, value: str) -> NotifyRequest:
        return n.with_(query=n.query + ((name, value),))

    def with_duplicate(self, n: NotifyRequest) -> NotifyRequest:
        """The transaction's ``amount.total`` twice (a JSON key repeated inside
        the encrypted resource), the second one a single fen, properly signed:
        a parser where the last key wins would see 1 fen."""
        envelope = json.loads(n.body)
        plain = json.loads(protocol.decrypt_resource(APIV3_KEY.encode(), envelope["resource"]))
        amount = plain["amount"]
        total = amount.pop("total")
        inner = json.dumps(amount, separators=(",", ":"))[1:-1]
        plain_text = protocol.dumps({k: v for k, v in plain.items() if k != "amount"})[:-1].decode()
        text = f'{plain_text},"amount":{{"total":{json.dumps(total)},{inner},"total":1}}}}'
        body, headers = callback(text.encode("utf-8"))
        return self._request(body, headers)

    def empty_fields(self, attempt_no: str, amount, trade_no: str) -> list[tuple[str, NotifyRequest]]:
        out = []
        for name in ("out_trade_no", "transaction_id", "trade_state", "mchid", "appid"):
            tx = transaction(attempt_no, amount, trade_no)
            tx[name] = ""
            out.append((name, self._request(*callback(tx))))
        for name in ("total", "currency"):
            tx = transaction(attempt_no, amount, trade_no)
            tx["amount"][name] = ""
            out.append((f"amount.{name}", self._request(*callback(tx))))
        return out

    def accepted(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300


def data_path(name: str) -> str:
    """A file of ``testdata/`` on disk (for tools that want a path)."""
    return os.fspath(resources.files("kameng_wechatpay").joinpath("testdata", name))
