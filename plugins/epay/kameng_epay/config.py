"""The plugin's settings, read once into a checked :class:`Config`.

The admin form, the CLI and the gateway all go through :func:`load`, so a
setting that the form accepted is one the gateway can use: V1 needs the MD5
``key``; V2 needs both PEM keys, and they must not be the same key pair (the
commonest paste mistake: the merchant's own public key where the platform's
belongs).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from kameng import httpclient
from kameng.i18n import _
from kameng.types import SettingError

from kameng_epay import protocol

VERSIONS = ("1", "2")
DEFAULT_CHANNELS = "alipay,wxpay"
_CHANNEL = re.compile(r"[a-z0-9_]{1,32}")
MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class Config:
    api_url: str  # always ends with "/"
    pid: str
    version: str
    key: str = field(repr=False)  # never in a log line or a traceback
    sign_mode: str = "plain"
    merchant_key: object | None = field(default=None, repr=False)  # RSAPrivateKey (V2)
    platform_key: object | None = None  # RSAPublicKey (V2)
    channels: tuple[str, ...] = ()

    @property
    def v2(self) -> bool:
        return self.version == "2"

    def url(self, path: str) -> str:
        return self.api_url + path


def parse_channels(text) -> tuple[str, ...]:
    """``"alipay, wxpay"`` (commas, Chinese commas, spaces or new lines) →
    ``("alipay", "wxpay")``, in order, without repeats."""
    out: list[str] = []
    for part in re.split(r"[\s,，;]+", str(text or "").strip().lower()):
        if not part:
            continue
        if not _CHANNEL.fullmatch(part):
            raise SettingError("channels", _("channel codes are lowercase letters, digits and _ (like alipay, wxpay)"))
        if part not in out:
            out.append(part)
    return tuple(out)


def _text(values: dict, name: str) -> str:
    value = values.get(name)
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value).strip())


def load(values: dict, check_url: bool = False) -> Config:
    """A :class:`Config` from the stored settings; raises :class:`SettingError`
    naming the first field that is missing or wrong. ``check_url`` also
    applies the outbound URL policy (https only, no private addresses unless
    the shop allows them) to ``api_url``."""
    api_url = _text(values, "api_url")
    if not api_url:
        raise SettingError("api_url", _("is required"))
    if not re.fullmatch(r"https?://[^\s?#]+", api_url):
        raise SettingError("api_url", _("must be the epay site's address, like https://pay.example.com/"))
    if check_url:
        try:
            httpclient.check_url(api_url)
        except httpclient.HttpError as exc:
            raise SettingError("api_url", str(exc)) from None
    pid = _text(values, "pid")
    if not re.fullmatch(r"\d{1,12}", pid):
        raise SettingError("pid", _("must be the merchant id, digits only"))
    version = _text(values, "version") or "1"
    if version not in VERSIONS:
        raise SettingError("version", _("must be 1 or 2"))
    sign_mode = _text(values, "sign_mode") or "plain"
    if sign_mode not in protocol.SIGN_MODES:
        raise SettingError("sign_mode", _("must be plain or amp_key"))
    key = _text(values, "key")
    if key and (len(key) < MIN_KEY_LENGTH or not re.fullmatch(r"[\x21-\x7e]+", key)):
        raise SettingError("key", _("must be at least ${n} characters without spaces", mapping={"n": MIN_KEY_LENGTH}))
    merchant_key = platform_key = None
    if _text(values, "merchant_private_key"):
        try:
            merchant_key = protocol.load_private_key(_text(values, "merchant_private_key"))
        except protocol.BadKey:
            raise SettingError("merchant_private_key", _("is not an RSA private key (PEM or base64, 2048 bits or "
                                                         "more)")) from None
    if _text(values, "platform_public_key"):
        try:
            platform_key = protocol.load_public_key(_text(values, "platform_public_key"))
        except protocol.BadKey:
            raise SettingError("platform_public_key", _("is not an RSA public key (PEM or base64, 2048 bits or "
                                                        "more)")) from None
    if version == "1" and not key:
        raise SettingError("key", _("is required for version 1 (MD5)"))
    if version == "2":
        if merchant_key is None:
            raise SettingError("merchant_private_key", _("is required for version 2 (RSA)"))
        if platform_key is None:
            raise SettingError("platform_public_key", _("is required for version 2 (RSA)"))
        if protocol.same_public_key(merchant_key.public_key(), platform_key):
            raise SettingError("platform_public_key", _("is the public half of your merchant private key; paste "
                                                        "the platform public key (平台公钥) instead"))
    # empty (cleared by the merchant): no channel list, the buyer picks at epay's own cashier
    channels = parse_channels(values.get("channels") or "")
    return Config(api_url=api_url.rstrip("/") + "/", pid=pid, version=version, key=key, sign_mode=sign_mode,
                  merchant_key=merchant_key, platform_key=platform_key, channels=channels)


def validate(values: dict) -> None:
    """``PluginMeta.validate``: the settings as a whole, before they are stored."""
    load(values, check_url=True)
