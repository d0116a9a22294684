"""The platform's side of epay, for the conformance kit and the plugin's tests.

:class:`EpayDriver` signs notifies the way ``creat_callback`` does: V1 with
MD5 and the merchant key (``plain`` or the clones' ``amp_key``), V2 with the
platform's RSA key and a timestamp. Its keys are public test fixtures
(``testdata/``, the fzlee/alipay SDK's test keys): nothing here is for real money.
"""
from __future__ import annotations

import time
from importlib import resources

from kameng.testing.gateways import MISSING, GatewayDriver, NotifyRequest

from kameng_epay import protocol

#: the merchant key printed in the official V1 doc (PROTOCOLS.md A1.3)
TEST_KEY = "89unJUB8HZ54Hj7x4nUj56HN4nUzUJ8i"
OTHER_KEY = "ThisIsNotTheMerchantKey000000000"
TEST_PID = "1001"
NOTIFY_PATH = "/pay/epay/notify"
#: the driver's words → epay's trade_status
STATUS_WORDS = {"paid": "TRADE_SUCCESS", "pending": "WAIT_BUYER_PAY", "failed": "TRADE_CLOSED"}


def key_pem(name: str) -> str:
    """A PEM from ``testdata/`` by role: ``merchant_private``, ``merchant_public``,
    ``platform_private`` or ``platform_public``."""
    files = {"merchant_private": "alipay-sdk-test-app_private_key.pem",
             "merchant_public": "alipay-sdk-test-app_public_key.pem",
             "platform_private": "alipay-sdk-test-ali_private_key.pem",
             "platform_public": "alipay-sdk-test-ali_public_key.pem"}
    return resources.files("kameng_epay").joinpath("testdata", files[name]).read_text("ascii")


def signed_notify(fields: dict, *, version: str = "1", key: str = TEST_KEY, sign_mode: str = "plain",
                  platform_private=None, now: float | None = None) -> dict:
    """``fields`` as the platform sends them: V1 ``sign`` then ``sign_type=MD5``;
    V2 ``timestamp``, ``sign_type=RSA`` and the platform's signature."""
    out = dict(fields)
    if version == "2":
        out["timestamp"] = out.get("timestamp") or str(int(time.time() if now is None else now))
        out["sign_type"] = "RSA"
        out["sign"] = protocol.rsa_sign(out, platform_private or protocol.load_private_key(key_pem("platform_private")))
    else:
        out["sign"] = protocol.md5_sign(out, key, sign_mode)
        out["sign_type"] = "MD5"
    return out


class EpayDriver(GatewayDriver):
    """``EpayDriver("1")``, ``EpayDriver("1", sign_mode="amp_key")`` or ``EpayDriver("2")``."""

    gateway_id = "epay"
    plugins = ()  # installed by its entry point (install.sh installs every bundled plugin)
    has_merchant_id = True
    has_currency = False
    signs_extra_fields = True
    currency = "CNY"

    def __init__(self, version: str = "1", sign_mode: str = "plain", api_url: str = "http://127.0.0.1:9/"):
        self.version = str(version)
        self.sign_mode = sign_mode
        self.api_url = api_url
        self.has_timestamp = self.version == "2"
        self.key_setting = "merchant_private_key" if self.version == "2" else "key"
        self._platform = protocol.load_private_key(key_pem("platform_private"))
        # a key that is not the platform's: the merchant's own pair
        self._wrong = protocol.load_private_key(key_pem("merchant_private"))

    def settings(self) -> dict:
        common = {"api_url": self.api_url, "pid": TEST_PID, "version": self.version, "channels": "alipay,wxpay,qqpay"}
        if self.version == "2":
            return {**common, "merchant_private_key": key_pem("merchant_private"),
                    "platform_public_key": key_pem("platform_public")}
        return {**common, "key": TEST_KEY, "sign_mode": self.sign_mode}

    def fields(self, attempt_no, amount, trade_no, status="paid", merchant_id=None, extra=None) -> dict:
        out = {"pid": TEST_PID if merchant_id is None else str(merchant_id), "trade_no": str(trade_no),
               "out_trade_no": str(attempt_no), "type": "alipay", "name": "kameng test", "money": str(amount),
               "trade_status": STATUS_WORDS.get(status, status)}
        out.update({str(k): str(v) for k, v in (extra or {}).items()})
        return out

    def sign(self, fields: dict, wrong_key: bool = False, timestamp=None) -> dict:
        if self.version == "2":
            if timestamp is not None:
                fields = {**fields, "timestamp": str(timestamp)}
            return signed_notify(fields, version="2", platform_private=self._wrong if wrong_key else self._platform)
        return signed_notify(fields, key=OTHER_KEY if wrong_key else TEST_KEY, sign_mode=self.sign_mode)

    @staticmethod
    def request(fields) -> NotifyRequest:
        pairs = fields.items() if isinstance(fields, dict) else fields
        return NotifyRequest(method="GET", path=NOTIFY_PATH, query=tuple((str(k), str(v)) for k, v in pairs))

    # -- the GatewayDriver interface ---------------------------------------------------------
    def notify(self, attempt_no, amount, *, trade_no, status="paid", merchant_id=None, currency=None,
               timestamp=None, extra=None, wrong_key=False) -> NotifyRequest:
        fields = self.fields(attempt_no, amount, trade_no, status, merchant_id, extra)
        return self.request(self.sign(fields, wrong_key=wrong_key, timestamp=timestamp))

    def amount_forms(self, minor: int) -> list:
        whole, frac = divmod(int(minor), 100)
        if frac == 0:
            return [f"{whole}.00", f"{whole}", f"{whole}.0"]
        if frac % 10 == 0:
            return [f"{whole}.{frac:02d}", f"{whole}.{frac // 10}"]
        return [f"{whole}.{frac:02d}"]

    def malformed_amounts(self) -> list:
        return ["1e2", "-1", "NaN", " 1.00", "1.00 ", "0x10", "1.001", "1,00", "+1.00", "１.00", "Infinity"]

    def with_signature(self, n: NotifyRequest, value) -> NotifyRequest:
        query = [(k, v) for k, v in n.query if k != "sign"]
        if value is MISSING:
            pass
        elif isinstance(value, (list, tuple)):
            query += [("sign", str(v)) for v in value]
        elif value is True:
            query.append(("sign", "true"))
        else:
            query.append(("sign", str(value)))
        return n.with_(query=tuple(query))

    def with_unsigned_field(self, n: NotifyRequest, name: str, value: str) -> NotifyRequest:
        return n.with_(query=n.query + ((name, value),))

    def with_duplicate(self, n: NotifyRequest) -> NotifyRequest:
        other = "0.01" if dict(n.query).get("money") != "0.01" else "999.99"
        return n.with_(query=n.query + (("money", other),))

    def empty_fields(self, attempt_no, amount, trade_no) -> list:
        out = []
        for name in ("out_trade_no", "money", "trade_status", "trade_no", "pid"):
            fields = self.fields(attempt_no, amount, trade_no)
            fields[name] = ""
            out.append((name, self.request(self.sign(fields))))
        return out

    def accepted(self, status: int, body: bytes) -> bool:
        # do_notify: any of these substrings in the body, whatever the status
        return any(word in body for word in (b"success", b"SUCCESS", b"Success"))
