"""The plugin's settings (API.md: ``levels``, ``rate_1``, ``rate_2``,
``rate_3``, ``min_withdrawal``, ``withdrawal_fee``) and how they are read.

Percentages are decimal strings with at most two places (``"5"``,
``"2.5"``, ``"0.75"``), kept inside as hundredths of a percent (basis
points): ``2.5`` % is 250, and a commission is
``floor(amount × bp / 10000)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from kameng.i18n import _
from kameng.money import MoneyError, digits, parse_decimal
from kameng.types import SettingError, SettingField

PLUGIN_ID = "distribution"
MAX_LEVELS = 3
FULL = 10000  # 100 % in hundredths of a percent
_PERCENT = re.compile(r"(0|[1-9][0-9]{0,2})(\.[0-9]{1,2})?")

DEFAULTS = {"levels": 1, "rate_2": "0", "rate_3": "0", "min_withdrawal": "10.00", "withdrawal_fee": "0"}

SETTINGS = (
    SettingField("levels", _("Levels"), type="int", default=DEFAULTS["levels"], min_value=1, max_value=MAX_LEVELS,
                 help=_("How many referral levels earn a commission: 1 (the buyer's referrer), 2 (also that "
                        "referrer's referrer) or 3.")),
    SettingField("rate_1", _("Level 1 rate (%)"), required=True, max_length=6,
                 help=_("Percent of the paid amount for the buyer's own referrer, e.g. 5 or 2.5.")),
    SettingField("rate_2", _("Level 2 rate (%)"), default=DEFAULTS["rate_2"], max_length=6,
                 help=_("Percent for the referrer's referrer (used when levels is 2 or 3).")),
    SettingField("rate_3", _("Level 3 rate (%)"), default=DEFAULTS["rate_3"], max_length=6,
                 help=_("Percent for the third level (used when levels is 3). The rates of the levels in use "
                        "may add up to at most 100.")),
    SettingField("min_withdrawal", _("Minimum withdrawal"), default=DEFAULTS["min_withdrawal"], max_length=16,
                 help=_("The smallest amount a referrer may ask to withdraw, e.g. 10.00.")),
    SettingField("withdrawal_fee", _("Withdrawal fee (%)"), default=DEFAULTS["withdrawal_fee"], max_length=6,
                 help=_("Percent of each withdrawal kept by the shop, rounded up to the cent (fen); 0 for none.")),
)


def parse_percent(text, name: str = "rate") -> int:
    """``"2.5"`` → 250 (hundredths of a percent); 0 to 100 only."""
    text = "" if text is None else str(text).strip()
    if not _PERCENT.fullmatch(text):
        raise SettingError(name, _("must be a percentage such as 5 or 2.5 (at most two decimal places)"))
    value = int(Decimal(text) * 100)
    if value > FULL:
        raise SettingError(name, _("must be between 0 and 100"))
    return value


def format_percent(bp: int | None) -> str:
    if bp is None:
        return ""
    whole, frac = divmod(int(bp), 100)
    return f"{whole}.{frac:02d}".rstrip("0").rstrip(".") if frac else str(whole)


def money_minor(text, currency: str, name: str) -> int:
    """A decimal money setting in the shop's currency, rounded up to its minor unit."""
    try:
        amount = parse_decimal("" if text is None else str(text).strip(), 2)
    except MoneyError:
        raise SettingError(name, _("must be an amount such as 10.00")) from None
    return int(amount.scaleb(digits(currency)).to_integral_value(ROUND_CEILING))


def _value(values: dict, name: str):
    value = values.get(name)
    return DEFAULTS.get(name) if value in (None, "") else value


def validate(values: dict) -> None:
    """Settings as a whole: each rate 0–100, the levels in use at most 100
    together, a plain minimum amount, a fee below 100 %."""
    levels = int(_value(values, "levels") or 1)
    total = 0
    for level in range(1, MAX_LEVELS + 1):
        raw = _value(values, f"rate_{level}")
        if raw is None:
            continue  # rate_1 unset: the field itself is required when enabling
        bp = parse_percent(raw, f"rate_{level}")
        if level <= levels:
            total += bp
    if total > FULL:
        raise SettingError(f"rate_{levels}", _("the rates of the levels in use add up to more than 100"))
    money_minor(_value(values, "min_withdrawal"), "CNY", "min_withdrawal")
    if parse_percent(_value(values, "withdrawal_fee"), "withdrawal_fee") >= FULL:
        raise SettingError("withdrawal_fee", _("must be less than 100"))


@dataclass(frozen=True)
class Config:
    levels: int
    rates: tuple[int, int, int]  # hundredths of a percent, levels 1..3
    min_withdrawal: int  # minor units
    fee: int  # hundredths of a percent

    def fee_of(self, amount: int) -> int:
        """The withdrawal fee, rounded up to the minor unit."""
        return -(-amount * self.fee // FULL)


def read(request) -> Config:
    values = request.plugin_settings(PLUGIN_ID)
    currency = request.shop["currency"]
    rates = []
    for level in range(1, MAX_LEVELS + 1):
        try:
            rates.append(parse_percent(_value(values, f"rate_{level}") or "0"))
        except SettingError:
            rates.append(0)
    try:
        minimum = money_minor(_value(values, "min_withdrawal"), currency, "min_withdrawal")
    except SettingError:
        minimum = 0
    try:
        fee = min(parse_percent(_value(values, "withdrawal_fee")), FULL - 1)
    except SettingError:
        fee = 0
    levels = int(_value(values, "levels") or 1)
    return Config(levels=max(1, min(MAX_LEVELS, levels)), rates=tuple(rates), min_withdrawal=minimum, fee=fee)
