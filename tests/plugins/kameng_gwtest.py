"""A gateway for the tests of the core's side of the gateway contract: it
has channels, a connection test, a close call and a create call that the
test can make fail, and it counts how often each is called."""
from decimal import Decimal

from kameng import hookimpl
from kameng.payments import GatewayError, NotificationRejected, PaymentGateway
from kameng.types import Notification, PaymentAction, PluginMeta, SettingError, SettingField

#: (call, attempt_no or "") for every provider call
CALLS = []
#: set to a message to make the next provider calls fail
FAIL = {"create": None, "close": None, "test": None}
#: attempt_no → status for query_payment
ANSWERS = {}


def validate(values: dict) -> None:
    if (values.get("mode") == "strict") and not (values.get("token") or "").startswith("tok_"):
        raise SettingError("token", "must start with tok_ in strict mode")


PLUGIN = PluginMeta(name="Gateway contract test plugin", category="payment", validate=validate,
                    settings=(SettingField("token", "Token", required=True, secret=True),
                              SettingField("mode", "Mode", type="choice", choices=("loose", "strict"),
                                           default="loose")))


class ContractGateway(PaymentGateway):
    identifier = "gwtest"
    public_name = "Contract gateway"
    connection_test_supported = True
    close_supported = True

    def channels(self):
        return [("scan", "Scan"), ("wap", "Phone")]

    def create_payment(self, request, attempt):
        CALLS.append(("create", attempt.attempt_no))
        if FAIL["create"]:
            raise GatewayError(FAIL["create"])
        return PaymentAction(kind="qrcode", payload=f"gwtest://{attempt.channel}/{attempt.attempt_no}")

    def parse_notification(self, request):
        raise NotificationRejected("never notifies")

    def query_payment(self, request, attempt):
        CALLS.append(("query", attempt.attempt_no))
        if attempt.attempt_no not in ANSWERS:
            return None
        return Notification(attempt_no=attempt.attempt_no, provider_trade_no="GW" + attempt.attempt_no,
                            amount=Decimal(attempt.amount) / 100, currency=attempt.currency,
                            status=ANSWERS[attempt.attempt_no], raw={"trade_state": ANSWERS[attempt.attempt_no]})

    def close_payment(self, request, attempt):
        CALLS.append(("close", attempt.attempt_no))
        if FAIL["close"]:
            raise GatewayError(FAIL["close"])

    def test_connection(self, request):
        CALLS.append(("test", ""))
        if FAIL["test"]:
            raise GatewayError(FAIL["test"])
        return "token accepted"


@hookimpl
def kameng_payment_gateways():
    return [ContractGateway]
