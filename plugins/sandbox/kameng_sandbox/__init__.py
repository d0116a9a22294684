"""The sandbox payment gateway (a test gateway: it moves no money)."""
from kameng import hookimpl
from kameng.i18n import _
from kameng.types import PluginMeta, SettingField

from kameng_sandbox.gateway import SandboxGateway

PLUGIN = PluginMeta(
    name=_("Sandbox payments (test)"),
    description=_("A test gateway for demos and development: the buyer chooses success or failure. "
                  "It moves no money; disable it before you sell for real."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="payment",
    settings=(
        SettingField("secret", _("Notify signing secret"), required=True, secret=True, min_length=16,
                     help=_("HMAC-SHA256 key the notify callback is signed with.")),
    ),
)


@hookimpl
def kameng_payment_gateways():
    return [SandboxGateway]


def includeme(config):
    config.add_route("sandbox.pay", "/pay/sandbox/pay/{attempt_no}")
    config.scan("kameng_sandbox.views")
