"""Blacklists and the watchlist: each kind of entry, through the order API
and the other actions; the buyer never learns which entry matched."""
from __future__ import annotations

import pytest
from antifraud_helpers import error, place, risk_check, rows, setup_shop, sign_up
from sqlalchemy import select

from kameng.testing import app_request, set_plugin
from kameng.types import SettingError
from kameng_antifraud import blacklist

EMAIL_REFUSAL = ("Orders with this email address are not accepted. Contact the shop if you think this is a "
                 "mistake.")
LIST = "\n".join([
    "# known fraudsters",
    "fraud@example.com",
    "*@spam.test",
    "@also-spam.test",
    "*@*.burner.test      # every subdomain",
    "bot*@example.org",
    "+86 139-0000-1111",
    "198.51.100.66",
    "192.0.2.0/24",
    "2001:db8:bad::1",
    "2001:db8:dead::/48",
])


@pytest.mark.parametrize("contact,ip,line", [
    ("fraud@example.com", "203.0.113.5", 2),
    ("FRAUD@Example.COM", "203.0.113.5", 2),  # case does not matter
    ("anyone@spam.test", "203.0.113.5", 3),
    ("Anyone@SPAM.test", "203.0.113.5", 3),
    ("x@also-spam.test", "203.0.113.5", 4),
    ("x@mx.burner.test", "203.0.113.5", 5),
    ("x@a.b.burner.test", "203.0.113.5", 5),
    ("bot123@example.org", "203.0.113.5", 6),
    ("13900001111", "203.0.113.5", 7),
    ("+8613900001111", "203.0.113.5", 7),
    ("ok@example.com", "198.51.100.66", 8),
    ("ok@example.com", "192.0.2.200", 9),
    ("ok@example.com", "::ffff:192.0.2.7", 9),  # an IPv4-mapped IPv6 address is its IPv4 address
    ("ok@example.com", "2001:db8:bad::1", 10),
    ("ok@example.com", "2001:DB8:BAD:0:0:0:0:1", 10),
    ("ok@example.com", "2001:db8:dead:42::9", 11),
])
def test_matches(contact, ip, line):
    emails, phones = blacklist.split_contact(contact)
    entry = blacklist.match(blacklist.parse(LIST), emails=emails, phones=phones, ip=ip)
    assert entry is not None and entry.line_no == line


@pytest.mark.parametrize("contact,ip", [
    ("fraud@example.com.evil", "203.0.113.5"),
    ("notfraud@example.com", "203.0.113.5"),
    ("x@burner.test", "203.0.113.5"),  # *@*.burner.test is the subdomains only
    ("x@spam.test.org", "203.0.113.5"),
    ("x@notspam.test", "203.0.113.5"),
    ("robot@example.org", "203.0.113.5"),
    ("13900001112", "203.0.113.5"),
    ("ok@example.com", "198.51.100.67"),
    ("ok@example.com", "192.0.3.1"),
    ("ok@example.com", "2001:db8:bad::2"),
    ("ok@example.com", "2001:db8:deae::1"),
    ("ok@example.com", ""),
    ("ok@example.com", "not-an-address"),
])
def test_misses(contact, ip):
    emails, phones = blacklist.split_contact(contact)
    assert blacklist.match(blacklist.parse(LIST), emails=emails, phones=phones, ip=ip) is None


@pytest.mark.parametrize("bad", ["example.com", "a@", "@", "a@b@c", "12345", "not an entry", "300.1.1.1",
                                 "10.0.0.0/33", "2001:db8::/129", "x@.example.com"])
def test_bad_entries_are_refused_when_saved(af_registry, bad):
    with pytest.raises(SettingError) as exc:
        set_plugin(af_registry, "antifraud", blacklist=f"ok@example.com\n{bad}")
    assert exc.value.field_name == "blacklist"
    with pytest.raises(SettingError):
        set_plugin(af_registry, "antifraud", watchlist=bad)


def test_unknown_captcha_actions_are_refused(af_registry):
    with pytest.raises(SettingError) as exc:
        set_plugin(af_registry, "antifraud", captcha="order, checkout")
    assert exc.value.field_name == "captcha"
    set_plugin(af_registry, "antifraud", captcha="Order, login password_reset")  # any case, commas or spaces


@pytest.mark.parametrize("contact,ip,message", [
    ("fraud@example.com", "203.0.113.5", EMAIL_REFUSAL),
    ("Someone@Spam.Test", "203.0.113.5", EMAIL_REFUSAL),
    ("x@mail.burner.test", "203.0.113.5", EMAIL_REFUSAL),
    ("139 0000 1111", "203.0.113.5", "Orders with this phone number are not accepted."),
    ("ok@example.com", "192.0.2.33", "Orders from your network are not accepted."),
    ("ok@example.com", "2001:db8:dead::5", "Orders from your network are not accepted."),
])
def test_blacklisted_orders_are_refused_403(af_testapp, af_registry, contact, ip, message):
    setup_shop(af_registry, blacklist=LIST)
    resp = place(af_testapp, ip=ip, contact=contact)
    assert resp.status_int == 403, resp.text
    assert error(resp)["code"] == "blocked"
    assert error(resp)["message"].startswith(message)
    assert "Contact the shop" in error(resp)["message"]
    # never which entry, nor the list's contents
    for secret in ("line", "spam.test", "burner", "192.0.2", "2001:db8", "139", "fraud@"):
        assert secret not in error(resp)["message"]


def test_other_buyers_are_served(af_testapp, af_registry):
    setup_shop(af_registry, blacklist=LIST)
    assert place(af_testapp, ip="203.0.113.5", contact="fine@example.com").status_int == 201


def test_signed_in_account_email_and_phone_count(af_testapp, af_registry):
    """An account whose own email or phone is listed cannot order with
    another contact."""
    setup_shop(af_registry, blacklist="*@bad.test\n13900002222")
    token = sign_up(af_registry, af_testapp, email="member@bad.test")
    resp = place(af_testapp, ip="203.0.113.5", contact="clean@example.com", headers={"X-CSRF-Token": token})
    assert resp.status_int == 403 and error(resp)["message"] == EMAIL_REFUSAL, resp.text


def test_register_blacklist_and_ip_for_every_action(af_registry):
    setup_shop(af_registry, blacklist=LIST)
    refused = risk_check(af_registry, "register", ip="203.0.113.5", email="new@spam.test")
    assert refused.status == 403 and refused.code == "blocked"
    assert "Accounts cannot be created with this email address" in str(refused.message)
    assert risk_check(af_registry, "register", ip="203.0.113.5", email="new@example.com") is None
    # an email address alone does not stop a sign-in or a lookup (the buyer can still see past orders)
    assert risk_check(af_registry, "login", ip="203.0.113.5", email="fraud@example.com") is None
    assert risk_check(af_registry, "lookup", ip="203.0.113.5", contact="fraud@example.com") is None
    # a listed address is refused everything
    for action in ("login", "lookup", "password_reset", "register", "coupon"):
        refused = risk_check(af_registry, action, ip="192.0.2.9", email="x@example.com")
        assert refused is not None and refused.status == 403 and refused.code == "blocked", action


def test_watchlist_holds_the_order_for_review(af_testapp, af_registry):
    from kameng.orders.models import Order
    from kameng_antifraud.models import RiskEvent

    setup_shop(af_registry, watchlist="*@watch.test")
    resp = place(af_testapp, ip="203.0.113.5", contact="someone@watch.test")
    assert resp.status_int == 201, resp.text
    with app_request(af_registry) as req:
        order = req.db.scalar(select(Order).where(Order.order_no == resp.json["order_no"]))
        assert "watchlist" in order.held
    (event,) = rows(af_registry, RiskEvent)
    assert (event.verdict, event.rule, event.action) == ("review", "watchlist", "order")
    assert place(af_testapp, ip="203.0.113.5", contact="someone@else.test").status_int == 201
    with app_request(af_registry) as req:
        assert req.db.scalar(select(Order.held).where(Order.contact == "someone@else.test")) == ""


def test_comments_and_blank_lines(af_registry):
    entries = blacklist.parse("\n# a comment\n  \nA@B.test  # note\n#x@y.test\n")
    assert [(e.line_no, e.kind, e.text) for e in entries] == [(4, "email", "A@B.test")]
