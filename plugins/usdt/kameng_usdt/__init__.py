"""USDT-TRC20 payments through the merchant's own epusdt or BEpusdt server."""
from kameng import hookimpl, httpclient
from kameng.i18n import _
from kameng.types import PluginMeta, SettingField

from kameng_usdt.gateway import UsdtGateway


def validate(values: dict) -> None:
    """The server URL must be one kameng may call (https, not a private
    address unless the operator allowed it) and carry no query or
    credentials: the API paths are appended to it."""
    httpclient.check_url_setting("api_url", values.get("api_url"))


PLUGIN = PluginMeta(
    name=_("USDT (epusdt / BEpusdt)"),
    description=_("Accept USDT-TRC20 through your own epusdt or BEpusdt server. Prices are sent in CNY and "
                  "the server converts them to USDT. Refunds are sent back by hand."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="payment",
    settings=(
        SettingField("api_url", _("epusdt server URL"), type="url", required=True, max_length=500,
                     help=_("The address of your epusdt or BEpusdt server, e.g. https://pay.example.com "
                            "(kameng appends /api/v1/order/create-transaction).")),
        SettingField("api_token", _("API token"), required=True, secret=True, max_length=500,
                     help=_("epusdt: api_auth_token in its .env file. BEpusdt: the API token (对接令牌) "
                            "in its admin settings.")),
    ),
    validate=validate,
)


@hookimpl
def kameng_payment_gateways():
    return [UsdtGateway]
