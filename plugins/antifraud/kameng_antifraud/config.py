"""The plugin's settings (``PLUGIN.settings``), checked as a whole, and read
per request into a :class:`Config`."""
from __future__ import annotations

import re
from dataclasses import dataclass

from kameng.i18n import _
from kameng.types import SettingError, SettingField

from kameng_antifraud import blacklist

PLUGIN_ID = "antifraud"
#: the actions a captcha can be asked for
CAPTCHA_ACTIONS = ("order", "login", "register", "lookup", "password_reset", "coupon")
_ACTIONS_PATTERN = r"[A-Za-z_,\s]*"

#: limit setting → (window seconds, default); ``0`` turns a limit off
LIMITS = {
    "orders_per_ip_per_minute": (60, 10),
    "orders_per_contact_per_hour": (3600, 20),
    "orders_per_account_per_hour": (3600, 30),
    "lookups_per_ip_per_minute": (60, 20),
    "logins_per_ip_per_minute": (60, 10),
    "registrations_per_ip_per_hour": (3600, 5),
    "password_resets_per_ip_per_hour": (3600, 5),
    "coupon_attempts_per_ip_per_minute": (60, 10),
}
CAPS = {"max_unpaid_per_contact": 3, "max_unpaid_per_ip": 10}


def _limit(name, label, help_text):
    return SettingField(name, label, type="int", default=LIMITS[name][1], min_value=0, max_value=1_000_000,
                        help=help_text)


SETTINGS = (
    _limit("orders_per_ip_per_minute", _("Orders per IP address per minute"),
           _("Orders one address may place within a minute; the next one is refused (429) until the minute "
             "ends. 0 turns this off.")),
    _limit("orders_per_contact_per_hour", _("Orders per contact per hour"),
           _("Orders for one email address or phone number within an hour. 0 turns this off.")),
    _limit("orders_per_account_per_hour", _("Orders per account per hour"),
           _("Orders one signed-in account may place within an hour. 0 turns this off.")),
    SettingField("max_unpaid_per_contact", _("Unpaid orders per contact"), type="int",
                 default=CAPS["max_unpaid_per_contact"], min_value=0, max_value=1000,
                 help=_("How many unpaid orders one contact (or account) may hold at once: stock cannot be held "
                        "hostage by orders nobody pays. 0 turns this off.")),
    SettingField("max_unpaid_per_ip", _("Unpaid orders per IP address"), type="int",
                 default=CAPS["max_unpaid_per_ip"], min_value=0, max_value=1000,
                 help=_("How many unpaid orders one IP address may hold at once. 0 turns this off.")),
    _limit("lookups_per_ip_per_minute", _("Order lookups per IP address per minute"),
           _("Guest order lookups (contact or order number with the query password) per address and minute. "
             "0 turns this off.")),
    _limit("logins_per_ip_per_minute", _("Sign-in attempts per IP address per minute"),
           _("0 turns this off.")),
    _limit("registrations_per_ip_per_hour", _("Registrations per IP address per hour"),
           _("New accounts per address and hour. 0 turns this off.")),
    _limit("password_resets_per_ip_per_hour", _("Password reset requests per IP address per hour"),
           _("0 turns this off.")),
    _limit("coupon_attempts_per_ip_per_minute", _("Coupon attempts per IP address per minute"),
           _("Orders naming a coupon code, per address and minute: stops code guessing. 0 turns this off.")),
    SettingField("blacklist", _("Blacklist"), type="text", max_length=200_000,
                 help=_("One entry a line: an email address, *@domain (every address at that domain), "
                        "*@*.domain (its subdomains), a phone number, an IP address or a network "
                        "(203.0.113.0/24, 2001:db8::/32). # starts a comment. Matching orders and sign-ups are "
                        "refused; a blacklisted IP address or network is refused everything.")),
    SettingField("watchlist", _("Watchlist"), type="text", max_length=200_000,
                 help=_("Entries written like the blacklist's. Matching orders are accepted but held for review "
                        "after payment: the keys are delivered once an admin releases the order.")),
    SettingField("captcha", _("Captcha for"), pattern=_ACTIONS_PATTERN, max_length=200,
                 help=_("Actions that need the picture captcha, separated by commas or spaces: order, login, "
                        "register, lookup, password_reset, coupon. Empty: none.")),
    SettingField("redis_url", _("Redis URL"), max_length=500,
                 help=_("redis://host:6379/0 (or rediss://, unix://). When set, counters and captchas live in "
                        "Redis and hold across every process; otherwise in the database. Empty: the shop's "
                        "kameng.redis_url, if the operator set one.")),
    SettingField("redis_password", _("Redis password"), secret=True, max_length=500,
                 help=_("Only if your Redis asks for one; stored encrypted.")),
    SettingField("redis_prefix", _("Redis key prefix"), default="kameng:antifraud:", max_length=100,
                 pattern=r"[A-Za-z0-9_:.\-]{1,100}",
                 help=_("Put in front of every key, so that several shops can share one Redis.")),
    SettingField("log_retention_days", _("Keep the risk log for (days)"), type="int", default=90, min_value=1,
                 max_value=3650),
)


def parse_actions(text: str | None) -> frozenset:
    return frozenset(a for a in re.split(r"[\s,]+", (text or "").strip().lower()) if a)


def validate(values: dict) -> None:
    """``PLUGIN.validate``: what a single field cannot check."""
    unknown = sorted(parse_actions(values.get("captcha")) - set(CAPTCHA_ACTIONS))
    if unknown:
        raise SettingError("captcha", _("has unknown actions: ${names}; choose from ${known}",
                                        mapping={"names": ", ".join(unknown), "known": ", ".join(CAPTCHA_ACTIONS)}))
    blacklist.validate("blacklist", values.get("blacklist"))
    blacklist.validate("watchlist", values.get("watchlist"))
    url = (values.get("redis_url") or "").strip()
    if url:
        from redis.connection import parse_url

        from urllib.parse import urlsplit

        if not re.match(r"(redis|rediss|unix)://", url):
            raise SettingError("redis_url", _("must start with redis://, rediss:// or unix://"))
        try:
            parts = urlsplit(url)
            parse_url(url)
            has_target = bool(parts.path if parts.scheme == "unix" else parts.hostname)
        except (ValueError, TypeError):
            has_target = False
        if not has_target:
            raise SettingError("redis_url", _("is not a Redis URL"))


@dataclass(frozen=True)
class Config:
    limits: dict
    caps: dict
    captcha: frozenset
    blacklist: tuple
    watchlist: tuple
    redis_url: str
    redis_password: str
    redis_prefix: str
    log_retention_days: int


def _int(value, default: int) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default


def read(request) -> Config:
    """The settings in force for this request (read once per request)."""
    memo = request.__dict__.get("_antifraud_config")
    if memo is not None:
        return memo
    s = request.plugin_settings(PLUGIN_ID)
    cfg = Config(
        limits={name: _int(s.get(name), default) for name, (_w, default) in LIMITS.items()},
        caps={name: _int(s.get(name), default) for name, default in CAPS.items()},
        captcha=parse_actions(s.get("captcha")) & set(CAPTCHA_ACTIONS),
        blacklist=blacklist.parse_lenient(s.get("blacklist") or ""),
        watchlist=blacklist.parse_lenient(s.get("watchlist") or ""),
        # the operator's shop-wide Redis (kameng.redis_url, KAMENG_REDIS_URL) when the plugin names none
        redis_url=(s.get("redis_url") or request.registry.settings.get("kameng.redis_url") or "").strip(),
        redis_password=s.get("redis_password") or "",
        redis_prefix=s.get("redis_prefix") or "kameng:antifraud:",
        log_retention_days=_int(s.get("log_retention_days"), 90) or 90,
    )
    request.__dict__["_antifraud_config"] = cfg
    return cfg
