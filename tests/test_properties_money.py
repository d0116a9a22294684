"""Property tests for kameng.money: amounts are integer minor units inside,
plain decimal strings at the edges (SECURITY.md items 8 and 39).

- what ``format_minor`` writes, ``parse_minor`` reads back to the same
  integer, and it matches the pattern the OpenAPI document promises;
- "1", "1.0" and "1.00" are one amount;
- anything that is not a plain non-negative decimal with at most the
  currency's places is refused: signs, exponents, spaces, hex, NaN,
  full-width or other non-ASCII digits, too many places, non-strings
  (a float never becomes money);
- an independent reading of the grammar agrees with the parser on every
  string drawn from a wide alphabet.
"""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from fuzz_helpers import bounded
from hypothesis import assume, example, given
from hypothesis import strategies as st

from kameng import money
from kameng.admin.users import parse_signed_minor
from kameng.api.openapi import MONEY, SIGNED_MONEY

CURRENCIES = ["CNY", "USD", "USDT", "JPY", "KRW", "cny", "jpy"]
#: the largest whole part the grammar takes: 15 digits
MAX_WHOLE = 10 ** 15 - 1


def max_minor(currency: str) -> int:
    return (MAX_WHOLE + 1) * 10 ** money.digits(currency) - 1


currencies = st.sampled_from(CURRENCIES)


@st.composite
def amounts(draw):
    """``(minor, currency)`` over the whole range the grammar can write."""
    currency = draw(currencies)
    minor = draw(st.one_of(st.integers(0, 10 ** 6), st.integers(0, max_minor(currency)),
                           st.sampled_from([0, 1, 99, 100, 101, max_minor(currency)])))
    return minor, currency


# -- round trips ------------------------------------------------------------------------------------


@bounded(max_examples=400)
@given(amounts())
def test_format_then_parse_is_the_same_amount(pair):
    minor, currency = pair
    text = money.format_minor(minor, currency)
    assert re.fullmatch(MONEY["pattern"], text)  # what the API documents
    assert money.parse_minor(text, currency) == minor
    assert isinstance(money.parse_minor(text, currency), int)
    places = money.digits(currency)
    assert ("." in text) == (places > 0) and (not places or len(text.split(".")[1]) == places)


@bounded(max_examples=300)
@given(amounts(), st.booleans())
def test_signed_amounts_round_trip_for_admin_adjustments(pair, negative):
    minor, currency = pair
    assume(minor > 0 or not negative)
    value = -minor if negative else minor
    text = money.format_minor(value, currency)
    assert re.fullmatch(SIGNED_MONEY["pattern"], text)
    assert parse_signed_minor(text, currency) == value


@bounded(max_examples=300)
@given(st.integers(0, MAX_WHOLE), st.integers(0, 99), st.integers(0, 6), st.sampled_from(["CNY", "USDT"]))
@example(1, 0, 0, "CNY")
def test_trailing_zeros_do_not_change_the_amount(whole, cents, zeros, currency):
    """ "1" == "1.0" == "1.00" == "1.000…" (item 8): equal under Decimal, equal in minor units."""
    base = money.parse_minor(f"{whole}.{cents:02d}", currency)
    assert base == whole * 100 + cents
    assert money.parse_minor(f"{whole}.{cents:02d}" + "0" * zeros, currency) == base
    if cents == 0:
        assert money.parse_minor(str(whole), currency) == base
        assert money.parse_minor(f"{whole}." + "0" * (zeros + 1), currency) == base
    if cents % 10 == 0:
        assert money.parse_minor(f"{whole}.{cents // 10}", currency) == base


@bounded(max_examples=200)
@given(st.integers(0, MAX_WHOLE), st.integers(0, 9))
def test_zero_place_currencies_take_whole_amounts_only(whole, tenth):
    assert money.parse_minor(str(whole), "JPY") == whole
    assert money.parse_minor(f"{whole}.0", "JPY") == whole
    if tenth:
        with pytest.raises(money.MoneyError):
            money.parse_minor(f"{whole}.{tenth}", "JPY")


# -- refusals ---------------------------------------------------------------------------------------

SECURITY_ITEM_8 = ["1.001", "1e2", "1E2", "-1", "NaN", "nan", "Infinity", "-0", "+1", " 1.00", "1.00 ", "0x10",
                   "１", "1.0０", "١", "1,00", "1_000", ".5", "5.", "01", "00", "", " ", "1.00\n", "\t1",
                   "1.00.00", "1 000", "sNaN", "inf", "0e0", "1e-2", "1.5e1", "۱۲", "²", "𝟏"]


@pytest.mark.parametrize("text", SECURITY_ITEM_8)
def test_the_checklist_amounts_are_refused(text):
    with pytest.raises(money.MoneyError):
        money.parse_minor(text, "CNY")


@bounded(max_examples=200)
@given(st.one_of(st.floats(allow_nan=True), st.integers(), st.decimals(allow_nan=True), st.none(), st.booleans(),
                 st.binary(max_size=8), st.lists(st.text(max_size=3), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)))
def test_only_strings_are_parsed_never_floats(value):
    with pytest.raises(money.MoneyError):
        money.parse_decimal(value)
    with pytest.raises(money.MoneyError):
        money.parse_minor(value, "CNY")


@bounded(max_examples=300)
@given(amounts(), st.sampled_from(["-", "+", " ", "\t", "\n", "\u00a0", "\u3000", "0x", "\ufeff"]),
       st.booleans())
def test_signs_and_spaces_around_a_valid_amount_are_refused(pair, junk, before):
    minor, currency = pair
    text = money.format_minor(minor, currency)
    with pytest.raises(money.MoneyError):
        money.parse_minor(junk + text if before else text + junk, currency)


@bounded(max_examples=300)
@given(amounts(), st.data())
def test_a_non_ascii_digit_anywhere_is_refused(pair, data):
    """Full-width, Arabic-Indic, superscript…: Decimal() reads many of them; kameng must not."""
    minor, currency = pair
    text = money.format_minor(minor, currency)
    digit = data.draw(st.characters(categories=["Nd", "No"]).filter(lambda c: not ("0" <= c <= "9")))
    at = data.draw(st.integers(0, len(text) - 1))
    assume(text[at].isdigit())
    with pytest.raises(money.MoneyError):
        money.parse_minor(text[:at] + digit + text[at + 1:], currency)


@bounded(max_examples=300)
@given(st.integers(0, MAX_WHOLE), st.integers(1, 9), st.integers(0, 3), st.sampled_from(["CNY", "USDT", "JPY"]))
def test_more_places_than_the_currency_has_are_refused(whole, last, extra, currency):
    places = money.digits(currency)
    text = f"{whole}." + "0" * (places + extra) + str(last)  # a non-zero digit past the currency's places
    with pytest.raises(money.MoneyError):
        money.parse_decimal(text, places)  # what the gateways call on a notify's amount
    with pytest.raises(money.MoneyError):
        money.parse_minor(text, currency)
    with pytest.raises(money.MoneyError):
        money.to_minor(Decimal(text), currency)


@bounded(max_examples=300)
@given(st.integers(0, 10 ** 40), st.sampled_from(["e", "E"]), st.integers(-5, 5))
def test_exponents_are_refused_even_when_the_value_is_fine(mantissa, e, exponent):
    with pytest.raises(money.MoneyError):
        money.parse_minor(f"{mantissa}{e}{exponent}", "CNY")


# -- the grammar, read independently ----------------------------------------------------------------


def oracle(text: str, places: int) -> int | None:
    """Minor units of ``text`` by hand, or None where it must be refused."""
    whole, dot, frac = text.partition(".")
    if not whole or any(c not in "0123456789" for c in whole + frac):
        return None
    if (len(whole) > 1 and whole[0] == "0") or len(whole) > 15 or (dot and not frac):
        return None
    significant = frac.rstrip("0")
    if len(significant) > places:
        return None
    return int(whole) * 10 ** places + (int(significant.ljust(places, "0")) if places else 0)


@bounded(max_examples=800)
@given(st.text(alphabet=st.sampled_from(list("0123456789.-+eE xX,_") + ["０", "٣", "\n", "\u00a0"]), max_size=20),
       st.sampled_from(["CNY", "JPY"]))
@example("0", "CNY")
@example("0.00", "CNY")
@example("999999999999999.99", "CNY")
@example("1000000000000000", "CNY")
def test_the_parser_agrees_with_an_independent_reading(text, currency):
    expected = oracle(text, money.digits(currency))
    if expected is None:
        with pytest.raises(money.MoneyError):
            money.parse_minor(text, currency)
    else:
        got = money.parse_minor(text, currency)
        assert got == expected and got >= 0
