"""The plugin's settings (names as in API.md) and the check of them as a whole."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from kameng import httpclient
from kameng.i18n import _
from kameng.types import SettingError, SettingField

from kameng_wechatpay import protocol

DEFAULT_API_URL = "https://api.mch.weixin.qq.com"
#: the payment channels, in the order the buyer sees them; ``native`` when none is picked
CHANNELS = ("native", "h5")
CHANNEL_LABELS = {"native": _("Scan QR code (Native)"), "h5": _("H5 mobile browser")}

FIELDS = (
    SettingField("mchid", _("Merchant ID (mchid)"), required=True, pattern=r"[0-9]{6,32}",
                 help=_("The 商户号 of your WeChat Pay merchant account (Account centre → Merchant information).")),
    SettingField("appid", _("AppID"), required=True, pattern=r"[A-Za-z0-9_\-]{4,64}",
                 help=_("The AppID bound to the merchant account (a 公众号, mini program or website app).")),
    SettingField("apiv3_key", _("APIv3 key"), required=True, secret=True, min_length=32, max_length=32,
                 help=_("The 32-character APIv3 key you set under Account centre → API security; it decrypts "
                        "notifications.")),
    SettingField("merchant_serial_no", _("Merchant certificate serial number"), required=True,
                 pattern=r"[0-9A-Fa-f]{8,64}",
                 help=_("The serial number of your merchant API certificate (API security → API certificate).")),
    SettingField("merchant_private_key", _("Merchant API private key"), type="text", required=True, secret=True,
                 help=_("The contents of apiclient_key.pem, from the certificate tool.")),
    SettingField("platform_public_key", _("WeChat Pay public key"), type="text",
                 help=_("The contents of pub_key.pem (API security → WeChat Pay public key). Set it with its ID.")),
    SettingField("platform_public_key_id", _("WeChat Pay public key ID"), pattern=r"PUB_KEY_ID_[0-9A-Za-z]{1,64}",
                 help=_("PUB_KEY_ID_… as shown beside the public key.")),
    SettingField("platform_certificates", _("Platform certificates"), type="text", max_length=60000,
                 help=_("One or more WeChat Pay platform certificates (PEM). Leave empty to download them with "
                        "the APIv3 key; merchants with a WeChat Pay public key may use both during the switch.")),
    SettingField("api_url", _("API address"), type="url", default=DEFAULT_API_URL,
                 help=_("Leave as is unless you go through a proxy.")),
    SettingField("channels", _("Payment channels"), default="native,h5", pattern=r"[a-z0-9, ]{1,64}",
                 help=_("Comma-separated: native (QR code), h5 (mobile browser; needs H5 payment enabled "
                        "for your merchant account).")),
)


def enabled_channels(settings: dict) -> list[str]:
    raw = settings.get("channels") or "native,h5"
    wanted = {c.strip() for c in str(raw).split(",") if c.strip()}
    return [c for c in CHANNELS if c in wanted]


def api_url(settings: dict) -> str:
    return (settings.get("api_url") or DEFAULT_API_URL).rstrip("/")


def validate(values: dict) -> None:
    """Every setting that is set must work; required ones are the core's to
    demand when the plugin is enabled."""
    key = values.get("apiv3_key")
    if key is not None and len(str(key).encode("utf-8")) != 32:
        raise SettingError("apiv3_key", _("must be exactly 32 bytes"))
    if values.get("merchant_private_key"):
        try:
            protocol.load_private_key(values["merchant_private_key"])
        except protocol.ProtocolError:
            raise SettingError("merchant_private_key", _("is not an RSA private key in PEM form (apiclient_key.pem)")) \
                from None
    public_key, public_key_id = values.get("platform_public_key"), values.get("platform_public_key_id")
    if public_key:
        try:
            protocol.load_public_key(public_key)
        except protocol.ProtocolError:
            raise SettingError("platform_public_key", _("is not an RSA public key in PEM form (pub_key.pem)")) from None
    if bool(public_key) != bool(public_key_id):
        name = "platform_public_key_id" if public_key else "platform_public_key"
        raise SettingError(name, _("is needed with the other half of the WeChat Pay public key"))
    if values.get("platform_certificates"):
        try:
            protocol.load_certificates(values["platform_certificates"])
        except protocol.ProtocolError:
            raise SettingError("platform_certificates", _("must be one or more PEM certificates with RSA keys")) \
                from None
    url = values.get("api_url")
    if url:
        parts = urlsplit(url)
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
            raise SettingError("api_url", _("must be a bare address such as ${url}", mapping={"url": DEFAULT_API_URL}))
        try:
            httpclient.check_url(url, resolve=False)
        except httpclient.HttpError:
            raise SettingError("api_url", _("must be an https:// address")) from None
    if values.get("channels") is not None:
        wanted = [c.strip() for c in str(values["channels"]).split(",") if c.strip()]
        if not wanted or any(c not in CHANNELS for c in wanted):
            raise SettingError("channels", _("must name native, h5 or both"))
    if values.get("merchant_serial_no") and not re.fullmatch(r"[0-9A-Fa-f]{8,64}", values["merchant_serial_no"]):
        raise SettingError("merchant_serial_no", _("has the wrong format"))
