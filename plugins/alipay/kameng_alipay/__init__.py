"""Alipay Open Platform payments (支付宝开放平台, RSA2): QR code (当面付),
PC website (电脑网站支付) and mobile website (手机网站支付)."""
from kameng import hookimpl
from kameng.httpclient import HttpError, check_url
from kameng.i18n import _
from kameng.types import PluginMeta, SettingError, SettingField

from kameng_alipay import protocol
from kameng_alipay.gateway import DEFAULT_GATEWAY_URL, AlipayGateway


def validate(values: dict) -> None:
    """Check the settings together: keys that parse, Alipay's public key
    not mistaken for the app's own, and a gateway URL the shop may call.
    Unset fields are left to the required-field check when enabling."""
    private_key = public_key = None
    if values.get("app_private_key"):
        try:
            private_key = protocol.load_private_key(values["app_private_key"])
        except protocol.ProtocolError:
            raise SettingError("app_private_key", _("is not an RSA private key of 2048 bits or more (PEM, or the "
                                                    "base64 text Alipay's key tool shows)")) from None
    if values.get("alipay_public_key"):
        try:
            public_key = protocol.load_public_key(values["alipay_public_key"])
        except protocol.ProtocolError:
            raise SettingError("alipay_public_key", _("is not an RSA public key of 2048 bits or more (PEM, or the "
                                                      "base64 text shown in Alipay's backend)")) from None
    if private_key is not None and public_key is not None and protocol.same_key(private_key, public_key):
        raise SettingError("alipay_public_key", _("is your own app public key: paste the Alipay public key "
                                                  "(支付宝公钥) shown next to it in Alipay's backend"))
    if values.get("gateway_url"):
        try:
            check_url(values["gateway_url"], resolve=False)
        except HttpError:
            raise SettingError("gateway_url", _("must be an https:// URL")) from None


PLUGIN = PluginMeta(
    name=_("Alipay"),
    description=_("Alipay Open Platform payments (RSA2): scan a QR code (当面付), pay on Alipay's website (PC) "
                  "or its mobile site (H5). Refunds and reconciliation included."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="payment",
    settings=(
        SettingField("app_id", _("App ID (APPID)"), required=True, pattern=r"[0-9]{8,32}",
                     help=_("The APPID of your app on open.alipay.com.")),
        SettingField("app_private_key", _("App private key"), type="text", required=True, secret=True,
                     help=_("The RSA2 private key of your app (应用私钥), PEM or the base64 text from Alipay's "
                            "key tool. Upload its public half to the app's interface signing settings.")),
        SettingField("alipay_public_key", _("Alipay public key"), type="text", required=True,
                     help=_("The Alipay public key (支付宝公钥) shown after you upload your app public key; "
                            "it verifies Alipay's notifies and answers.")),
        SettingField("seller_id", _("Merchant PID (seller_id)"), required=True, pattern=r"2088[0-9]{12}",
                     help=_("Your Alipay merchant account id: 16 digits starting with 2088. A notify for "
                            "another account is refused.")),
        SettingField("gateway_url", _("Gateway URL"), type="url", default=DEFAULT_GATEWAY_URL,
                     help=_("Leave the default for real payments; the sandbox uses "
                            "https://openapi-sandbox.dl.alipaydev.com/gateway.do")),
    ),
    validate=validate,
)


@hookimpl
def kameng_payment_gateways():
    return [AlipayGateway]
