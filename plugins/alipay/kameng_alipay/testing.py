"""Alipay's side of the protocol for tests: the conformance kit's driver.

The keys in ``testing_keys/`` are the *public* test fixtures of the fzlee
``python-alipay-sdk`` (``tests/certs``): never use them for real money.
``ali_*`` plays Alipay, ``app_*`` plays the shop's app.
"""
from __future__ import annotations

import datetime as dt
import time
from importlib.metadata import entry_points
from importlib.resources import files

import kameng_alipay
from kameng.money import format_minor
from kameng.testing.gateways import MISSING, GatewayDriver, NotifyRequest

from kameng_alipay import protocol

APP_ID = "2016080000000000"
SELLER_ID = "2088102119685838"
NOTIFY_PATH = "/pay/alipay/notify"
UNREACHABLE_GATEWAY_URL = "http://127.0.0.1:9/gateway.do"
STATUS_WORDS = {"paid": "TRADE_SUCCESS", "pending": "WAIT_BUYER_PAY", "failed": "TRADE_CLOSED",
                "closed": "TRADE_CLOSED", "finished": "TRADE_FINISHED"}


def _installed() -> bool:
    return any(ep.name == "alipay" for ep in entry_points(group="kameng"))


def key_pem(name: str) -> str:
    """A PEM from ``testing_keys``: ``ali_private_key``, ``ali_public_key``,
    ``app_private_key`` or ``app_public_key``."""
    return files("kameng_alipay").joinpath("testing_keys", f"alipay-sdk-test-{name}.pem").read_text()


def notify_time(unix: float | None = None) -> str:
    when = dt.datetime.fromtimestamp(time.time() if unix is None else unix, dt.timezone.utc)
    return protocol.timestamp(when)


def sign_notify(fields: dict, private_pem: str) -> list[tuple[str, str]]:
    """``fields`` as Alipay posts them: signed with ``private_pem``, then
    ``sign_type`` and ``sign`` added."""
    sign = protocol.rsa2_sign(protocol.notify_sign_content(fields), protocol.load_private_key(private_pem))
    return [*fields.items(), ("sign_type", protocol.SIGN_TYPE), ("sign", sign)]


def notify_fields(attempt_no: str, amount: str, trade_no: str, trade_status: str = "TRADE_SUCCESS", *,
                  app_id: str = APP_ID, seller_id: str = SELLER_ID, sent: float | None = None) -> dict:
    """The fields of a ``trade_status_sync`` notify (as in PROTOCOLS.md K5)."""
    now = notify_time(sent)
    return {"app_id": app_id, "auth_app_id": app_id, "buyer_id": "2088102116773037", "buyer_pay_amount": amount,
            "charset": "utf-8", "gmt_create": now, "gmt_payment": now, "invoice_amount": amount,
            "notify_id": "2024" + trade_no[-30:], "notify_time": now, "notify_type": "trade_status_sync",
            "out_trade_no": attempt_no, "point_amount": "0.00", "receipt_amount": amount, "seller_id": seller_id,
            "subject": "Test card", "total_amount": amount, "trade_no": trade_no, "trade_status": trade_status,
            "version": "1.0"}


class AlipayDriver(GatewayDriver):
    gateway_id = "alipay"
    key_setting = "app_private_key"
    #: notify_time is checked, but against Alipay's 25-hour retry schedule, not 300 s
    has_timestamp = False
    has_merchant_id = True
    has_currency = False
    signs_extra_fields = True
    currency = "CNY"

    #: loaded by hand only from a checkout that is not pip-installed (else the entry point loads it)
    plugins = () if _installed() else (("alipay", kameng_alipay),)

    def settings(self) -> dict:
        return {"app_id": APP_ID, "app_private_key": key_pem("app_private_key"),
                "alipay_public_key": key_pem("ali_public_key"), "seller_id": SELLER_ID,
                # never the real Alipay: a loopback port nothing listens on (the
                # suite's reconciliation jobs would otherwise call out)
                "gateway_url": UNREACHABLE_GATEWAY_URL}

    def _request(self, form) -> NotifyRequest:
        return NotifyRequest(method="POST", path=NOTIFY_PATH, form=tuple(form),
                             content_type="application/x-www-form-urlencoded; charset=utf-8")

    def _fields(self, attempt_no, amount, trade_no, status="paid", merchant_id=None, currency=None,
                timestamp=None, extra=None) -> dict:
        fields = notify_fields(attempt_no, str(amount), trade_no, STATUS_WORDS.get(status, status),
                               seller_id=SELLER_ID if merchant_id is None else merchant_id, sent=timestamp)
        if currency is not None:
            fields["trans_currency"] = currency
        fields.update(extra or {})
        return fields

    def notify(self, attempt_no: str, amount, *, trade_no: str, status: str = "paid",
               merchant_id: str | None = None, currency: str | None = None, timestamp: int | None = None,
               extra: dict | None = None, wrong_key: bool = False) -> NotifyRequest:
        fields = self._fields(attempt_no, amount, trade_no, status, merchant_id, currency, timestamp, extra)
        key = key_pem("app_private_key" if wrong_key else "ali_private_key")
        return self._request(sign_notify(fields, key))

    def amount_forms(self, minor: int) -> list:
        text = format_minor(minor, self.currency)
        forms = [text]
        if text.endswith("0"):
            forms.append(text[:-1])
        if text.endswith(".00"):
            forms.append(text[:-3])
        return forms

    def malformed_amounts(self) -> list:
        return ["1e2", "-1", "NaN", "Infinity", " 1.00", "1.00 ", "1.00\n", "0x10", "1.001", "1,00", "+1.00",
                "01.00", "１.００", "1.", ".5"]

    def with_signature(self, n: NotifyRequest, value) -> NotifyRequest:
        form = [(k, v) for k, v in n.form if k != "sign"]
        if value is MISSING:
            pass
        elif isinstance(value, (list, tuple)):
            form += [("sign", str(v)) for v in value]
        elif value is True or value is False:
            form.append(("sign", "true" if value else "false"))
        else:
            form.append(("sign", str(value)))
        return n.with_(form=tuple(form))

    def with_unsigned_field(self, n: NotifyRequest, name: str, value: str) -> NotifyRequest:
        return n.with_(form=(*n.form, (name, value)))

    def with_duplicate(self, n: NotifyRequest) -> NotifyRequest:
        amount = dict(n.form)["total_amount"]
        return n.with_(form=(*n.form, ("total_amount", "0.01" if amount != "0.01" else "0.02")))

    def empty_fields(self, attempt_no: str, amount, trade_no: str) -> list[tuple[str, NotifyRequest]]:
        out = []
        for name in ("out_trade_no", "total_amount", "trade_status", "trade_no", "seller_id", "app_id",
                     "notify_time"):
            fields = self._fields(attempt_no, amount, trade_no)
            fields[name] = ""
            out.append((name, self._request(sign_notify(fields, key_pem("ali_private_key")))))
        return out

    def accepted(self, status: int, body: bytes) -> bool:
        return status == 200 and body == b"success"
