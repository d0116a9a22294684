"""Rate limits: N requests pass within a window, the N+1th is refused with
429 ``rate_limited`` and ``Retry-After``; ``0`` turns a limit off."""
from __future__ import annotations

import pytest
from antifraud_helpers import error, fresh_window, place, retry_after, risk_check, setup_shop, sign_up

N = 3


def _refused_429(resp):
    assert resp.status_int == 429, resp.text
    assert error(resp)["code"] == "rate_limited"
    assert 1 <= error(resp)["retry_after"] <= 60
    return retry_after(resp)


def test_orders_per_ip_per_minute(af_testapp, af_registry):
    setup_shop(af_registry, orders_per_ip_per_minute=N)
    fresh_window()
    for i in range(N):
        resp = place(af_testapp, ip="203.0.113.1", contact=f"buyer{i}@example.com")
        assert resp.status_int == 201, resp.text
    resp = place(af_testapp, ip="203.0.113.1", contact="another@example.com")
    assert _refused_429(resp) <= 60
    assert "Too many orders from your address" in error(resp)["message"]
    # another address is not affected
    assert place(af_testapp, ip="203.0.113.2", contact="x@example.com").status_int == 201


def test_orders_per_ip_counts_ipv6_per_64_network(af_testapp, af_registry):
    """An IPv6 host can use every address of its /64: they count as one."""
    setup_shop(af_registry, orders_per_ip_per_minute=2)
    fresh_window()
    assert place(af_testapp, ip="2001:db8:0:1::7", contact="a@example.com").status_int == 201
    assert place(af_testapp, ip="2001:db8:0:1:ffff::8", contact="b@example.com").status_int == 201
    _refused_429(place(af_testapp, ip="2001:DB8:0:1:0:0:0:9", contact="c@example.com"))
    assert place(af_testapp, ip="2001:db8:0:2::7", contact="d@example.com").status_int == 201
    # an IPv4 address written as IPv6 is that IPv4 address
    assert place(af_testapp, ip="192.0.2.44", contact="e@example.com").status_int == 201
    assert place(af_testapp, ip="::ffff:192.0.2.44", contact="f@example.com").status_int == 201
    _refused_429(place(af_testapp, ip="192.0.2.44", contact="g@example.com"))


def test_orders_per_contact_per_hour_from_any_address(af_testapp, af_registry):
    setup_shop(af_registry, orders_per_contact_per_hour=N)
    fresh_window(3600, margin=10)
    for i in range(N):
        assert place(af_testapp, ip=f"203.0.113.{10 + i}", contact="Same@Example.com").status_int == 201
    # the same contact in another case, from yet another address
    resp = place(af_testapp, ip="203.0.113.99", contact="same@example.COM")
    assert resp.status_int == 429 and error(resp)["code"] == "rate_limited", resp.text
    assert 1 <= retry_after(resp) <= 3600
    assert "contact" in error(resp)["message"]
    assert place(af_testapp, ip="203.0.113.99", contact="other@example.com").status_int == 201


def test_orders_per_contact_counts_phone_numbers_however_written(af_testapp, af_registry):
    setup_shop(af_registry, orders_per_contact_per_hour=1)
    fresh_window(3600, margin=10)
    assert place(af_testapp, ip="203.0.113.20", contact="138 0013 8000").status_int == 201
    assert place(af_testapp, ip="203.0.113.21", contact="138-0013-8000").status_int == 429


def test_orders_per_account_per_hour(af_testapp, af_registry):
    setup_shop(af_registry, orders_per_account_per_hour=2)
    fresh_window(3600, margin=10)
    token = sign_up(af_registry, af_testapp)
    for i in range(2):
        resp = place(af_testapp, ip=f"203.0.113.{30 + i}", contact=f"c{i}@example.com",
                     headers={"X-CSRF-Token": token})
        assert resp.status_int == 201, resp.text
    resp = place(af_testapp, ip="203.0.113.40", contact="c9@example.com", headers={"X-CSRF-Token": token})
    assert resp.status_int == 429, resp.text
    assert "account" in error(resp)["message"]


def test_coupon_attempts_per_ip_per_minute(af_testapp, af_registry):
    """The core asks about a coupon before it prices the order: guesses are
    limited even though no plugin honours the code (409 each)."""
    setup_shop(af_registry, coupon_attempts_per_ip_per_minute=N)
    fresh_window()
    for i in range(N):
        resp = place(af_testapp, ip="203.0.113.50", coupon=f"GUESS{i}")
        assert resp.status_int == 409 and error(resp)["code"] == "coupon_unavailable", resp.text
    _refused_429(place(af_testapp, ip="203.0.113.50", coupon="GUESS9"))
    # an order without a coupon is not a coupon attempt
    assert place(af_testapp, ip="203.0.113.50").status_int == 201


@pytest.mark.parametrize("action,setting,subject", [
    ("login", "logins_per_ip_per_minute", {"email": "someone@example.com"}),
    ("lookup", "lookups_per_ip_per_minute", {"order_no": "26112600000000000001"}),
    ("register", "registrations_per_ip_per_hour", {"email": "new@example.com"}),
    ("password_reset", "password_resets_per_ip_per_hour", {"email": "someone@example.com"}),
])
def test_action_limits(af_registry, action, setting, subject):
    """The actions the core asks ``kameng_risk_check`` about (called as the
    core does, through :func:`kameng.risk.check`)."""
    setup_shop(af_registry, **{setting: N})
    fresh_window(3600 if setting.endswith("hour") else 60, margin=10)
    for _ in range(N):
        assert risk_check(af_registry, action, ip="203.0.113.60", **subject) is None
    refused = risk_check(af_registry, action, ip="203.0.113.60", **subject)
    assert refused is not None and refused.status == 429 and refused.code == "rate_limited"
    assert 1 <= refused.extra["retry_after"] <= 3600
    assert risk_check(af_registry, action, ip="203.0.113.61", **subject) is None


def test_lookup_limit_through_the_storefront(af_testapp, af_registry):
    """The order lookup page asks the plugin before it checks anything."""
    setup_shop(af_registry, lookups_per_ip_per_minute=2)
    fresh_window()
    page = af_testapp.get("/query", extra_environ={"REMOTE_ADDR": "203.0.113.70"})
    form = page.forms["lookup-contact"]
    statuses = []
    for _ in range(3):
        form["contact"] = "nobody@example.com"
        form["query_password"] = "wrong-password"
        statuses.append(form.submit(extra_environ={"REMOTE_ADDR": "203.0.113.70"}, expect_errors=True).status_int)
    assert statuses[-1] == 429, statuses
    assert 429 not in statuses[:2], statuses


def test_zero_turns_limits_off(af_testapp, af_registry):
    setup_shop(af_registry)  # every limit 0
    for i in range(12):
        assert place(af_testapp, ip="203.0.113.80", contact="same@example.com").status_int == 201, i
    for _ in range(12):
        assert risk_check(af_registry, "login", ip="203.0.113.80", email="x@example.com") is None


def test_refused_orders_write_nothing(af_testapp, af_registry):
    from kameng.orders.models import Order
    from antifraud_helpers import rows

    setup_shop(af_registry, orders_per_ip_per_minute=1)
    fresh_window()
    assert place(af_testapp, ip="203.0.113.90").status_int == 201
    assert place(af_testapp, ip="203.0.113.90").status_int == 429
    assert len(rows(af_registry, Order)) == 1


def test_defaults_apply_when_enabled_without_settings(af_testapp, af_registry):
    """Enabled with nothing configured: the defaults hold (10 orders per
    address and minute)."""
    from kameng.testing import set_plugin
    from antifraud_helpers import SANDBOX_SECRET, make_sku

    set_plugin(af_registry, "sandbox", enabled=True, secret=SANDBOX_SECRET)
    set_plugin(af_registry, "antifraud", enabled=True)
    make_sku(af_registry)
    fresh_window(margin=15)
    statuses = [place(af_testapp, ip="203.0.113.100", contact=f"d{i}@example.com").status_int for i in range(11)]
    assert statuses == [201] * 10 + [429]
