"""The sandbox protocol: HMAC-SHA256 over the sorted ``k=v`` fields."""
from __future__ import annotations

import hashlib
import hmac
import re
import time

from kameng.i18n import _
from kameng.money import MoneyError, parse_decimal
from kameng.payments import NotificationRejected, PaymentGateway
from kameng.types import Notification, PaymentAction, RefundResult

FIELDS = ("amount", "attempt_no", "status", "timestamp")
MAX_SKEW = 300


def sign(fields: dict, secret: str) -> str:
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_fields(attempt_no: str, amount: str, status: str, secret: str, now: float | None = None) -> dict:
    fields = {"attempt_no": attempt_no, "amount": amount, "status": status,
              "timestamp": str(int(now if now is not None else time.time()))}
    fields["sign"] = sign(fields, secret)
    return fields


class SandboxGateway(PaymentGateway):
    identifier = "sandbox"
    public_name = _("Sandbox (test payment)")
    is_test = True
    refund_supported = True

    def create_payment(self, request, attempt) -> PaymentAction:
        return PaymentAction(kind="redirect", url=request.public_url("sandbox.pay", attempt_no=attempt.attempt_no))

    def verify(self, fields: dict, currency: str, now: float | None = None) -> Notification:
        """Check a notify's fields exactly as they arrived; raise on anything off.

        The protocol carries no currency: the sandbox settles in the shop's."""
        secret = self.settings.get("secret") or ""
        if len(secret) < 16:
            raise NotificationRejected("the sandbox has no secret configured")
        unknown = set(fields) - set(FIELDS) - {"sign"}
        if unknown:
            raise NotificationRejected("unexpected fields")
        for name in (*FIELDS, "sign"):
            if not isinstance(fields.get(name), str) or not fields[name]:
                raise NotificationRejected(f"missing field {name}")
        if not re.fullmatch(r"[0-9a-f]{64}", fields["sign"]):
            raise NotificationRejected("malformed sign")
        if not hmac.compare_digest(sign(fields, secret), fields["sign"]):
            raise NotificationRejected("bad signature")
        if not re.fullmatch(r"\d{1,12}", fields["timestamp"]):
            raise NotificationRejected("malformed timestamp")
        if abs((now if now is not None else time.time()) - int(fields["timestamp"])) > MAX_SKEW:
            raise NotificationRejected("timestamp outside the 300 s window")
        if fields["status"] not in ("paid", "failed"):
            raise NotificationRejected("unknown status")
        try:
            amount = parse_decimal(fields["amount"], 2)
        except MoneyError:
            raise NotificationRejected("malformed amount") from None
        return Notification(attempt_no=fields["attempt_no"][:64], provider_trade_no="SBX" + fields["attempt_no"][:60],
                            amount=amount, currency=currency, status=fields["status"], raw=dict(fields))

    def parse_notification(self, request) -> Notification:
        if request.method != "POST":
            raise NotificationRejected("the sandbox notifies by POST")
        fields = {}
        for source in (request.GET, request.POST):
            for key in source.keys():
                values = source.getall(key)
                if len(values) != 1 or key in fields:
                    raise NotificationRejected(f"field {key[:32]} sent more than once")
                fields[key] = values[0]
        return self.verify(fields, request.shop["currency"])

    def refund(self, request, attempt, refund) -> RefundResult:
        # the sandbox moved no money, so there is none to send back: the
        # refund is recorded as done under a provider number derived from ours
        return RefundResult(status="succeeded", provider_refund_no="SBXR" + refund.refund_no)
