"""The Alipay gateway: creates trades, verifies notifies, queries, closes
and refunds through the Open Platform API (PROTOCOLS.md A2).

The plugin verifies and reports; the core compares amounts, currencies,
the merchant (``seller_id``) and replays. The one merchant check done here
is ``app_id``: the core compares a single setting, and a notify must name
both our app and our seller account.
"""
from __future__ import annotations

import datetime as dt
import functools
import hmac
import logging
import math
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

from sqlalchemy import select

from kameng import httpclient
from kameng.i18n import _
from kameng.money import MoneyError, format_minor, parse_decimal
from kameng.payments import GatewayError, NotificationRejected, PaymentGateway
from kameng.types import Notification, PaymentAction, RefundResult

from kameng_alipay import protocol

log = logging.getLogger(__name__)

DEFAULT_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
CURRENCY = "CNY"
SUCCESS = "10000"
#: channel code → (method, product_code); no channel is the QR code
CHANNELS = {
    "qrcode": ("alipay.trade.precreate", None),
    "page": ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
    "wap": ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
}
STATUSES = {"TRADE_SUCCESS": "paid", "TRADE_FINISHED": "paid", "WAIT_BUYER_PAY": "pending", "TRADE_CLOSED": "closed"}
#: a notify must say when it was sent: not later than our clock allows for
#: skew, nor older than Alipay's whole retry schedule (8 notifies in 25 h)
MAX_FUTURE = dt.timedelta(seconds=300)
MAX_AGE = dt.timedelta(hours=26)
#: business errors that are worth asking again with the same request number
MAX_MINUTES = 15 * 24 * 60
TRANSIENT = {"ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR", "ACQ.REFUND_FEE_ERROR_BUSY"}
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?", re.ASCII)
_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)


@functools.lru_cache(maxsize=16)
def _private_key(text: str):
    return protocol.load_private_key(text)


@functools.lru_cache(maxsize=16)
def _public_key(text: str):
    return protocol.load_public_key(text)


@dataclass(frozen=True)
class Answer:
    """A sync answer: the ``<method>_response`` object, and whether its signature verified."""

    data: dict
    verified: bool

    @property
    def code(self) -> str:
        return str(self.data.get("code", ""))

    @property
    def sub_code(self) -> str:
        return str(self.data.get("sub_code", ""))

    @property
    def ok(self) -> bool:
        return self.verified and self.code == SUCCESS

    def describe(self) -> str:
        """The error for admins and logs: Alipay's codes and a cut message, no secrets of ours."""
        parts = [c for c in (self.code, self.sub_code) if _CODE.fullmatch(c)]
        message = str(self.data.get("sub_msg") or self.data.get("msg") or "")
        message = "".join(ch for ch in message if ch.isprintable())[:120]
        text = " ".join(parts) or "no code"
        return f"{text}: {message}" if message else text


def clean_subject(subject: str) -> str:
    """Alipay refuses ``/``, ``=`` and ``&`` in a subject; keep it short."""
    text = re.sub(r"[/=&\x00-\x1f\x7f]+", " ", subject or "").strip()
    return text[:128] or "Order"


class AlipayGateway(PaymentGateway):
    identifier = "alipay"
    public_name = _("Alipay")
    merchant_id_setting = "seller_id"
    refund_supported = True
    connection_test_supported = True
    close_supported = True
    #: seconds for each call (tests shorten it)
    timeout: float = httpclient.DEFAULT_TIMEOUT

    # -- settings ------------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return (self.settings.get("gateway_url") or DEFAULT_GATEWAY_URL).strip()

    @property
    def app_id(self) -> str:
        return str(self.settings.get("app_id") or "")

    def _app_key(self):
        try:
            return _private_key(self.settings.get("app_private_key") or "")
        except protocol.ProtocolError:
            raise GatewayError("the app_private_key setting is missing or does not parse") from None

    def _alipay_key(self):
        try:
            return _public_key(self.settings.get("alipay_public_key") or "")
        except protocol.ProtocolError:
            raise GatewayError("the alipay_public_key setting is missing or does not parse") from None

    def channels(self) -> list[tuple[str, str]]:
        # the storefront shows "Alipay · <label>"
        return [("qrcode", _("Scan a QR code")), ("page", _("PC website")), ("wap", _("Mobile website"))]

    # -- calls ---------------------------------------------------------------------------

    def _url(self, params: dict) -> str:
        sep = "&" if "?" in self.gateway_url else "?"
        return self.gateway_url + sep + urlencode(params)

    def call(self, method: str, biz: dict, notify_url: str | None = None) -> Answer:
        """One API call, the way the official SDKs send it: the common
        parameters and the signature in the query string, ``biz_content``
        in a form body. Transport failures and answers that do not verify
        are :class:`GatewayError`; an unsigned answer comes back unverified."""
        if not self.app_id:
            raise GatewayError("the app_id setting is missing")
        params = protocol.build_request(self.app_id, method, biz, self._app_key(), notify_url=notify_url)
        body = {"biz_content": params.pop("biz_content")}
        public_key = self._alipay_key()
        try:
            resp = httpclient.post_form(self._url(params), body, timeout=self.timeout)
        except httpclient.HttpError as exc:
            raise GatewayError(f"{method}: {exc}", uncertain=exc.uncertain) from None
        if resp.status != 200:
            raise GatewayError(f"{method}: Alipay answered HTTP {resp.status}", uncertain=resp.status >= 500)
        try:
            data, verified = protocol.parse_response(resp.body.decode("utf-8"), method, public_key)
        except UnicodeDecodeError:
            raise GatewayError(f"{method}: the answer is not UTF-8", uncertain=True) from None
        except protocol.ProtocolError as exc:
            raise GatewayError(f"{method}: {exc}", uncertain=True) from None
        answer = Answer(data, verified)
        if not verified:
            log.warning("alipay_unsigned_answer", extra={"method": method, "code": answer.describe()[:80]})
        return answer

    def _require_verified(self, method: str, answer: Answer) -> Answer:
        if not answer.verified:
            raise GatewayError(f"{method}: Alipay refused the request ({answer.describe()}); the answer was "
                               "not signed", uncertain=True)
        return answer

    # -- paying --------------------------------------------------------------------------

    def create_payment(self, request, attempt) -> PaymentAction:
        if attempt.currency.upper() != CURRENCY:
            raise GatewayError("Alipay takes payments in CNY only")
        channel = attempt.channel or "qrcode"
        if channel not in CHANNELS:
            raise GatewayError("unknown Alipay channel")
        method, product_code = CHANNELS[channel]
        biz = {"out_trade_no": attempt.attempt_no, "total_amount": format_minor(attempt.amount, CURRENCY),
               "subject": clean_subject(attempt.subject),
               # the QR code runs out with the order: close_payment cannot close a
               # trade nobody has scanned yet (Alipay does not know it)
               "timeout_express": f"{minutes_to_pay(request, attempt)}m"}
        notify_url = request.public_url("pay.notify", gateway=self.identifier)
        if product_code is not None:
            return_url = request.public_url("pay.return", attempt_no=attempt.attempt_no)
            biz["product_code"] = product_code
            if channel == "wap":
                biz["quit_url"] = return_url
            try:
                httpclient.check_url(self.gateway_url, resolve=False)
            except httpclient.HttpError as exc:
                raise GatewayError(str(exc)) from None
            params = protocol.build_request(self.app_id, method, biz, self._app_key(), notify_url=notify_url,
                                            return_url=return_url)
            return PaymentAction(kind="redirect", url=self._url(params))
        answer = self._require_verified(method, self.call(method, biz, notify_url=notify_url))
        if not answer.ok:
            raise GatewayError(f"{method}: {answer.describe()}")
        qr = answer.data.get("qr_code")
        if answer.data.get("out_trade_no") != attempt.attempt_no or not isinstance(qr, str) \
                or not qr.startswith("https://") or len(qr) > 1024:
            raise GatewayError(f"{method}: the answer is not for this payment")
        return PaymentAction(kind="qrcode", payload=qr)

    def close_payment(self, request, attempt) -> None:
        method = "alipay.trade.close"
        answer = self._require_verified(method, self.call(method, {"out_trade_no": attempt.attempt_no}))
        # a trade nobody scanned does not exist yet: its QR code runs out with the order
        if answer.ok or answer.sub_code == "ACQ.TRADE_NOT_EXIST":
            return
        if answer.sub_code == "ACQ.TRADE_STATUS_ERROR":
            # closed already, or paid: a paid one must stay open in kameng, so
            # that its notify or the query job still applies it
            state = self.query_payment(request, attempt)
            if state is not None and state.status == "closed":
                return
            raise GatewayError(f"{method}: the trade is paid or paying; it cannot be closed")
        raise GatewayError(f"{method}: {answer.describe()}")

    # -- notifies ------------------------------------------------------------------------

    @staticmethod
    def _fields(request) -> dict:
        """The notify's fields exactly as received: each name once, in the
        query or in the body but not both, strings only."""
        fields: dict[str, str] = {}
        for source in (request.GET, request.POST):
            for key in source.keys():
                values = source.getall(key)
                if len(values) != 1 or key in fields:
                    raise NotificationRejected(f"field {key[:32]!r} sent more than once")
                if not isinstance(values[0], str) or not isinstance(key, str):
                    raise NotificationRejected(f"field {key[:32]!r} is not text")
                fields[key] = values[0]
        return fields

    def parse_notification(self, request) -> Notification:
        if request.method != "POST":
            raise NotificationRejected("Alipay notifies by POST")
        return self.verify(self._fields(request))

    def verify(self, fields: dict, now: dt.datetime | None = None) -> Notification:
        """Check a notify's fields; raise NotificationRejected on anything off."""
        try:
            public_key = self._alipay_key()
        except GatewayError:
            raise NotificationRejected("the alipay_public_key setting is missing or does not parse") from None
        if any(not isinstance(k, str) or not isinstance(v, str) for k, v in fields.items()):
            raise NotificationRejected("fields must be text")
        if fields.get("sign_type") != protocol.SIGN_TYPE:
            raise NotificationRejected("sign_type is not RSA2")
        if not fields.get("sign"):
            raise NotificationRejected("missing sign")
        if any(not _FIELD_NAME.fullmatch(k) for k in fields):
            raise NotificationRejected("malformed field name")
        if not protocol.rsa2_verify(protocol.notify_sign_content(fields), fields["sign"], public_key):
            raise NotificationRejected("bad signature")
        for name in ("app_id", "out_trade_no", "trade_no", "trade_status", "total_amount", "seller_id",
                     "notify_time"):
            if not fields.get(name):
                raise NotificationRejected(f"missing field {name}")
        if not self.app_id or not hmac.compare_digest(fields["app_id"].encode(), self.app_id.encode()):
            raise NotificationRejected("the notify is for another app_id")
        try:
            sent = protocol.parse_time(fields["notify_time"])
        except protocol.ProtocolError:
            raise NotificationRejected("malformed notify_time") from None
        now = now or dt.datetime.now(dt.timezone.utc)
        if sent - now > MAX_FUTURE or now - sent > MAX_AGE:
            raise NotificationRejected("notify_time outside the accepted window")
        status = STATUSES.get(fields["trade_status"])
        if status is None:
            raise NotificationRejected("unknown trade_status")
        amount = _amount(fields["total_amount"])
        if amount is None:
            raise NotificationRejected("malformed amount")
        return Notification(attempt_no=fields["out_trade_no"][:64], provider_trade_no=fields["trade_no"][:128],
                            amount=amount, currency=fields.get("trans_currency") or CURRENCY, status=status,
                            merchant_id=fields["seller_id"], raw=dict(fields))

    def ack(self, accepted: bool) -> tuple[int, str, str]:
        # Alipay retries until it reads exactly these 7 characters
        return (200, "success", "text/plain") if accepted else (400, "fail", "text/plain")

    # -- reconciliation --------------------------------------------------------------------

    def query_payment(self, request, attempt) -> Notification | None:
        method = "alipay.trade.query"
        answer = self._require_verified(method, self.call(method, {"out_trade_no": attempt.attempt_no}))
        if answer.sub_code == "ACQ.TRADE_NOT_EXIST":
            return None  # a QR code nobody has scanned yet
        if not answer.ok:
            raise GatewayError(f"{method}: {answer.describe()}")
        data = answer.data
        status = STATUSES.get(data.get("trade_status"))
        amount = _amount(data.get("total_amount"))
        if data.get("out_trade_no") != attempt.attempt_no or status is None or amount is None \
                or not isinstance(data.get("trade_no"), str) or not data["trade_no"]:
            raise GatewayError(f"{method}: the answer is not a usable trade of this payment")
        # the answer is signed by Alipay about a trade of our own app, asked
        # for with our key: its seller is ours unless it names another
        seller = data.get("seller_id") if isinstance(data.get("seller_id"), str) else self.settings.get("seller_id")
        raw = {k: v for k, v in data.items() if isinstance(v, (str, int, float))}
        return Notification(attempt_no=attempt.attempt_no, provider_trade_no=data["trade_no"][:128], amount=amount,
                            currency=data.get("trans_currency") or CURRENCY, status=status, merchant_id=seller,
                            raw=raw)

    def test_connection(self, request) -> str:
        method = "alipay.trade.query"
        answer = self.call(method, {"out_trade_no": "KMTEST" + secrets.token_hex(10)})
        if not answer.verified:
            hint = {"isv.invalid-app-id": " (check app_id)",
                    "isv.invalid-signature": " (check app_private_key, and that its public key is uploaded to "
                                             "the app)"}.get(answer.sub_code, "")
            raise GatewayError(f"Alipay refused the request: {answer.describe()}{hint}")
        if answer.ok or answer.sub_code == "ACQ.TRADE_NOT_EXIST":
            return _("Connected: Alipay accepted a signed query and its answer verified.")
        raise GatewayError(f"Alipay refused the query: {answer.describe()}")

    # -- refunds -------------------------------------------------------------------------

    def _refund_done(self, attempt, refund) -> bool:
        """Whether Alipay has the refund ``refund.refund_no`` done (asked
        before refunding, so a retry after a lost answer refunds nothing)."""
        method = "alipay.trade.fastpay.refund.query"
        answer = self._require_verified(method, self.call(method, {"out_trade_no": attempt.attempt_no,
                                                                   "out_request_no": refund.refund_no}))
        if answer.sub_code == "ACQ.TRADE_NOT_EXIST":
            return False
        if not answer.ok:
            raise GatewayError(f"{method}: {answer.describe()}")
        data = answer.data
        if not data.get("refund_amount"):
            return False  # no such refund request
        if data.get("out_request_no") != refund.refund_no or data.get("refund_status") not in (None, "",
                                                                                               "REFUND_SUCCESS"):
            return False
        if _amount(data.get("refund_amount")) != Decimal(format_minor(refund.amount, CURRENCY)):
            raise GatewayError(f"{method}: the refund Alipay holds has another amount")
        return True

    def refund(self, request, attempt, refund) -> RefundResult:
        trade_no = attempt.provider_trade_no or ""
        if self._refund_done(attempt, refund):
            return RefundResult(status="succeeded", provider_refund_no=trade_no)
        method = "alipay.trade.refund"
        biz = {"out_trade_no": attempt.attempt_no, "refund_amount": format_minor(refund.amount, CURRENCY),
               "out_request_no": refund.refund_no}
        if refund.reason:
            biz["refund_reason"] = clean_subject(refund.reason)[:128]
        answer = self._require_verified(method, self.call(method, biz))
        if answer.ok:
            if answer.data.get("out_trade_no") not in (None, attempt.attempt_no):
                raise GatewayError(f"{method}: the answer is for another trade", uncertain=True)
            trade_no = str(answer.data.get("trade_no") or trade_no)[:128]
            if answer.data.get("fund_change") == "Y" or self._refund_done(attempt, refund):
                return RefundResult(status="succeeded", provider_refund_no=trade_no)
            return RefundResult(status="pending", provider_refund_no=trade_no,
                                message="Alipay took the refund but has not confirmed it yet")
        if answer.code == "20000" or answer.sub_code.startswith("isp.") or answer.sub_code in TRANSIENT:
            raise GatewayError(f"{method}: {answer.describe()}", uncertain=True)
        return RefundResult(status="failed", message=answer.describe())


def minutes_to_pay(request, attempt) -> int:
    """What is left of the order's time to pay, in whole minutes (Alipay's
    ``timeout_express``: 1m to 15d); the shop's time to pay without an order."""
    from kameng.db import utcnow
    from kameng.orders.checkout import expiry_minutes
    from kameng.orders.models import Order

    expires = None
    if attempt.order_id is not None:
        expires = request.db.scalar(select(Order.expires_at).where(Order.id == attempt.order_id))
    if expires is None:
        return max(1, min(expiry_minutes(request), MAX_MINUTES))
    return max(1, min(math.ceil((expires - utcnow()).total_seconds() / 60), MAX_MINUTES))


def _amount(text) -> Decimal | None:
    """A plain yuan amount (``88.88``), ASCII digits only; None otherwise."""
    if not isinstance(text, str) or not _AMOUNT.fullmatch(text):
        return None
    try:
        return parse_decimal(text, 2)
    except MoneyError:
        return None
