"""Money: integer minor units (分) inside, decimal strings only at the edges."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

DIGITS = {"JPY": 0, "KRW": 0, "USDT": 2}
#: the largest amount in minor units that every supported database's INTEGER column holds
MAX_MINOR = 2 ** 31 - 1
# ASCII digits only: \d would take "1.0０" (a full-width zero), and Decimal reads it
# (fullmatch: "$" would let a trailing newline through)
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]+)?")


class MoneyError(ValueError):
    pass


def digits(currency: str) -> int:
    return DIGITS.get(currency.upper(), 2)


def parse_decimal(text, max_places: int = 2) -> Decimal:
    """A non-negative decimal written plainly (``12``, ``12.5``, ``12.50``).

    Refuses signs, exponents, spaces, hex, NaN and more places than the
    currency has (``1.001`` for CNY): a gateway or a form that sends those is
    wrong, and guessing would move money.
    """
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise MoneyError(f"not a plain decimal amount: {text!r}"[:80])
    if "." in text and len(text.split(".", 1)[1].rstrip("0")) > max_places:
        raise MoneyError(f"too many decimal places: {text!r}"[:80])
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already refused it
        raise MoneyError(f"not a decimal: {text!r}"[:80]) from None


def to_minor(amount: Decimal, currency: str) -> int:
    scaled = amount.scaleb(digits(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more places than {currency} allows")
    return int(scaled)


def parse_minor(text, currency: str) -> int:
    return to_minor(parse_decimal(text, digits(currency)), currency)


def format_minor(minor: int, currency: str) -> str:
    d = digits(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(int(minor)), 10 ** d)
    return f"{sign}{whole}.{frac:0{d}d}" if d else f"{sign}{whole}"
