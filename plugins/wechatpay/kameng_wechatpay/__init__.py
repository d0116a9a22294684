"""WeChat Pay (API v3): Native QR-code and H5 payments for kameng."""
from kameng import hookimpl
from kameng.i18n import _
from kameng.types import PluginMeta

from kameng_wechatpay.gateway import WechatPayGateway
from kameng_wechatpay.settings import FIELDS, validate

PLUGIN = PluginMeta(
    name=_("WeChat Pay"),
    description=_("WeChat Pay API v3 for merchants: QR code (Native) and mobile browser (H5) payments, "
                  "signed and verified notifications, order queries, closing and refunds."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="payment",
    settings=FIELDS,
    validate=validate,
)


@hookimpl
def kameng_payment_gateways():
    return [WechatPayGateway]
