"""A plugin used by the order tests: price adjustments the test chooses, and a
fake gateway that never notifies but answers ``query_payment`` with what the
test put in :data:`QUERY_ANSWERS`."""
from decimal import Decimal

from kameng import hookimpl
from kameng.payments import NotificationRejected, PaymentGateway
from kameng.types import Notification, PaymentAction, PluginMeta

PLUGIN = PluginMeta(name="Order test plugin", description="used by kameng's order tests", author="kameng tests",
                    category="other")

#: what kameng_price_adjustments offers (a list of kameng.types.Adjustment)
ADJUSTMENTS = []
#: attempt_no → (status, amount as a decimal string) for FakeGateway.query_payment
QUERY_ANSWERS = {}
#: (hook, order_no) for every lifecycle hook call
CALLS = []
#: when set, kameng_order_paid holds the order for review with this reason
HOLD_ON_PAID = []


@hookimpl
def kameng_price_adjustments(request, quote):
    return list(ADJUSTMENTS)


@hookimpl
def kameng_order_paid(request, order, payment):
    CALLS.append(("paid", order.order_no))
    if HOLD_ON_PAID:
        order.held = HOLD_ON_PAID[0]


@hookimpl
def kameng_order_delivered(request, order):
    CALLS.append(("delivered", order.order_no))


class FakeGateway(PaymentGateway):
    identifier = "ordertest"
    public_name = "Fake gateway (tests)"
    is_test = True

    def create_payment(self, request, attempt):
        return PaymentAction(kind="qrcode", payload=f"fake://{attempt.attempt_no}")

    def parse_notification(self, request):
        raise NotificationRejected("this gateway never notifies")

    def query_payment(self, request, attempt):
        answer = QUERY_ANSWERS.get(attempt.attempt_no)
        if answer is None:
            return None
        status, amount = answer
        return Notification(attempt_no=attempt.attempt_no, provider_trade_no="FAKE" + attempt.attempt_no,
                            amount=Decimal(amount), currency=attempt.currency, status=status,
                            raw={"queried": "yes"})


@hookimpl
def kameng_payment_gateways():
    return [FakeGateway]
