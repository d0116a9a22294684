"""A second gateway for the conformance kit ("kit_other"): attempts that
belong to it, and notifies it signs, must never pay through the gateway
under test. HMAC-SHA256 over ``attempt_no|amount|trade_no``; test use only."""
from __future__ import annotations

import hashlib
import hmac

from kameng import hookimpl
from kameng.money import MoneyError, parse_decimal
from kameng.payments import NotificationRejected, PaymentGateway
from kameng.types import Notification, PaymentAction, PluginMeta, SettingField

PLUGIN_ID = "kit_other"
SECRET = "kit-other-secret-0123456789abcdef"

PLUGIN = PluginMeta(name="Conformance kit: another gateway (tests only)", category="payment",
                    settings=(SettingField("secret", "Secret", required=True, secret=True),))


def sign(attempt_no: str, amount: str, trade_no: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{attempt_no}|{amount}|{trade_no}".encode(), hashlib.sha256).hexdigest()


class OtherGateway(PaymentGateway):
    identifier = PLUGIN_ID
    public_name = "Kit other"
    is_test = True

    def create_payment(self, request, attempt) -> PaymentAction:
        return PaymentAction(kind="qrcode", payload=f"kit-other:{attempt.attempt_no}")

    def parse_notification(self, request) -> Notification:
        fields = {k: request.POST.getall(k) for k in request.POST.keys()}
        if set(fields) != {"attempt_no", "amount", "trade_no", "sign"} or any(len(v) != 1 for v in fields.values()):
            raise NotificationRejected("unexpected fields")
        f = {k: v[0] for k, v in fields.items()}
        if not hmac.compare_digest(sign(f["attempt_no"], f["amount"], f["trade_no"], self.settings["secret"]),
                                   f["sign"]):
            raise NotificationRejected("bad signature")
        try:
            amount = parse_decimal(f["amount"], 2)
        except MoneyError:
            raise NotificationRejected("malformed amount") from None
        return Notification(attempt_no=f["attempt_no"], provider_trade_no=f["trade_no"], amount=amount,
                            currency=request.shop["currency"], status="paid", raw=f)


@hookimpl
def kameng_payment_gateways():
    return [OtherGateway]
