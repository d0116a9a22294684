"""Epay (易支付, "彩虹易支付"-compatible) payments: V1 (MD5) and V2 (RSA)."""
from kameng import hookimpl
from kameng.i18n import _
from kameng.types import PluginMeta, SettingField

from kameng_epay.config import DEFAULT_CHANNELS, validate
from kameng_epay.gateway import EpayGateway

PLUGIN = PluginMeta(
    name=_("Epay (易支付)"),
    description=_("Alipay, WeChat Pay and QQ Wallet through an epay (彩虹易支付-compatible) platform. "
                  "Version 1 signs with the MD5 key, version 2 with RSA keys. Notify address: /pay/epay/notify."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="payment",
    settings=(
        SettingField("api_url", _("Epay site address"), type="url", required=True,
                     help=_("The platform's address, like https://pay.example.com/ (the interface address in "
                            "its docs, without submit.php).")),
        SettingField("pid", _("Merchant ID (pid)"), required=True, pattern=r"\d{1,12}",
                     help=_("Your merchant number in the epay backend (商户ID).")),
        SettingField("version", _("Interface version"), type="choice", choices=("1", "2"), default="1",
                     choice_labels=(_("1: MD5 key (submit.php / mapi.php)"), _("2: RSA keys (api/pay/*)")),
                     help=_("Use 2 when your platform offers the V2 (RSA) interface.")),
        SettingField("key", _("Merchant key (MD5)"), secret=True, max_length=256,
                     help=_("The merchant key (商户密钥) from the epay backend. Required for version 1; in "
                            "version 2 only needed when buyers may pick the channel on epay's cashier page.")),
        SettingField("merchant_private_key", _("Merchant private key (V2)"), type="text", secret=True,
                     max_length=8000,
                     help=_("商户私钥: PEM or the base64 text the epay backend shows. Version 2 only.")),
        SettingField("platform_public_key", _("Platform public key (V2)"), type="text", max_length=8000,
                     help=_("平台公钥: PEM or base64. Notifies and answers are checked with it. Version 2 only.")),
        SettingField("channels", _("Channels offered"), default=DEFAULT_CHANNELS, max_length=500,
                     help=_("Channel codes buyers may pick, separated by commas: alipay, wxpay, qqpay, bank… "
                            "Empty: buyers choose on epay's cashier page.")),
        SettingField("sign_mode", _("MD5 sign variant"), type="choice", choices=("plain", "amp_key"),
                     default="plain",
                     choice_labels=(_("plain: md5(string + key), 彩虹易支付"),
                                    _("amp_key: md5(string + \"&key=\" + key)")),
                     help=_("Only some epay clones use amp_key; leave plain unless signatures fail.")),
    ),
    validate=validate,
)


@hookimpl
def kameng_payment_gateways():
    return [EpayGateway]
