"""The risk log (written although the request is refused), its admin page
and pruning; the blacklist test page; the purchase limits page; who may
open them; and the shop with the plugin disabled."""
from __future__ import annotations

import datetime as dt

import pytest
import webtest
from antifraud_helpers import fresh_window, place, risk_check, rows, setup_shop, sign_up
from sqlalchemy import select

from kameng.db import utcnow
from kameng.orders.models import Order
from kameng.testing import app_request, run_jobs, set_plugin
from kameng_antifraud import risklog
from kameng_antifraud.models import ProductLimit, RiskEvent

ADMIN_PAGES = ["/-/antifraud/log", "/-/antifraud/test", "/-/antifraud/limits"]


def test_refusals_are_logged_although_rolled_back(af_testapp, af_registry):
    setup_shop(af_registry, orders_per_ip_per_minute=1, blacklist="*@bad.test")
    fresh_window()
    assert place(af_testapp, ip="203.0.113.7", contact="alice@example.com").status_int == 201
    assert place(af_testapp, ip="203.0.113.7", contact="alice@example.com").status_int == 429
    assert place(af_testapp, ip="203.0.113.8", contact="mallory@bad.test").status_int == 403
    assert risk_check(af_registry, "login", ip="192.0.2.1", email="x@example.com") is None
    assert len(rows(af_registry, Order)) == 1  # the refused orders were rolled back
    limited, blocked = sorted(rows(af_registry, RiskEvent), key=lambda e: e.id)
    assert (limited.action, limited.verdict, limited.code, limited.rule, limited.ip) == (
        "order", "deny", "rate_limited", "orders_per_ip_per_minute", "203.0.113.7")
    assert limited.contact == "a***e@example.com"  # masked
    assert limited.contact_hash == risklog.contact_hash(af_registry, "ALICE@example.com")
    assert (blocked.code, blocked.rule, blocked.detail) == ("blocked", "blacklist", "line 1 (domain)")
    assert blocked.contact == "m***y@bad.test"


def test_a_flood_of_refusals_is_a_few_rows(af_testapp, af_registry):
    setup_shop(af_registry, blacklist="192.0.2.0/24")
    fresh_window()
    for _ in range(risklog.ROWS_PER_IP_PER_MINUTE + 5):
        assert place(af_testapp, ip="192.0.2.50").status_int == 403
    assert len(rows(af_registry, RiskEvent)) == risklog.ROWS_PER_IP_PER_MINUTE


def test_masking():
    assert risklog.mask("alice@example.com") == "a***e@example.com"
    assert risklog.mask("al@example.com") == "a***@example.com"
    assert risklog.mask("13800138000") == "138****8000"
    assert risklog.mask("+8613800138000") == "+86*******8000"
    assert risklog.mask("") == ""


def test_log_page_filters(af_admin, af_testapp, af_registry):
    setup_shop(af_registry, blacklist="*@bad.test\n192.0.2.0/24")
    for ip, contact in (("203.0.113.7", "mallory@bad.test"), ("192.0.2.9", "ok@example.com")):
        assert place(af_testapp, ip=ip, contact=contact).status_int == 403
    risk_check(af_registry, "register", ip="192.0.2.10", email="eve@bad.test")
    page = af_admin.get("/-/antifraud/log")
    assert page.text.count('id="risk-') == 3
    assert "m***y@bad.test" in page.text and "mallory@bad.test" not in page.text
    page = af_admin.get("/-/antifraud/log", params={"contact": "Mallory@Bad.test"})
    assert page.text.count('id="risk-') == 1 and "m***y@bad.test" in page.text
    page = af_admin.get("/-/antifraud/log", params={"action": "register"})
    assert page.text.count('id="risk-') == 1 and "e***e@bad.test" in page.text
    page = af_admin.get("/-/antifraud/log", params={"ip": "192.0.2.*"})
    assert page.text.count('id="risk-') == 2
    page = af_admin.get("/-/antifraud/log", params={"ip": "192.0.2.9", "rule": "blacklist", "verdict": "deny"})
    assert page.text.count('id="risk-') == 1
    today = utcnow().date()
    page = af_admin.get("/-/antifraud/log", params={"from": (today + dt.timedelta(days=1)).isoformat()})
    assert 'id="no-risk-rows"' in page.text
    page = af_admin.get("/-/antifraud/log", params={"from": today.isoformat(), "to": today.isoformat(),
                                                     "page": "x", "ip": "a\x00b"})
    assert 'id="no-risk-rows"' in page.text
    assert ("kept in this process's memory" in page.text) == (af_registry["kameng.engine"].dialect.name == "sqlite")
    assert ("kept in the database" in page.text) != (af_registry["kameng.engine"].dialect.name == "sqlite")


def test_prune_job(af_registry):
    from kameng import jobs

    setup_shop(af_registry, log_retention_days=30)
    with app_request(af_registry) as req:
        for days in (31, 29):
            req.db.add(RiskEvent(created_at=utcnow() - dt.timedelta(days=days), action="order", verdict="deny",
                                 code="blocked", rule="blacklist", ip="", contact="", contact_hash="", detail=""))
        jobs.enqueue(req.db, "antifraud.prune", {})
    run_jobs(af_registry)
    (left,) = rows(af_registry, RiskEvent)
    assert left.created_at > utcnow() - dt.timedelta(days=30)


def test_blacklist_test_page(af_admin, af_registry):
    setup_shop(af_registry, blacklist="fraud@example.com\n*@*.burner.test\n2001:db8::/32",
               watchlist="13900001111")
    page = af_admin.get("/-/antifraud/test")
    form = page.forms["test-form"]
    form["contact"] = "x@mx.burner.test"
    result = form.submit()
    assert "would be refused" in result.text and "*@*.burner.test" in result.text
    result = af_admin.get("/-/antifraud/test", params={"contact": "+86 139 0000 1111", "ip": "2001:db8::5"})
    assert 'id="result-blacklist" class="hit"' in result.text and 'id="result-watchlist" class="hit"' in result.text
    result = af_admin.get("/-/antifraud/test", params={"contact": "fine@example.com", "ip": "203.0.113.1"})
    assert result.text.count('class="miss"') == 2
    result = af_admin.get("/-/antifraud/test", params={"contact": "nonsense", "ip": "nope"})
    assert 'id="test-ip-error"' in result.text and 'id="test-contact-error"' in result.text


def test_purchase_limits_page(af_admin, af_testapp, af_registry):
    product_id = setup_shop(af_registry)
    page = af_admin.get("/-/antifraud/limits")
    assert 'id="no-limits"' in page.text
    form = page.forms["limit-form"]
    form["product_id"] = str(product_id)
    form["max_quantity"] = "2"
    form["window_days"] = "30"
    page = form.submit().follow()
    assert f'id="limit-{product_id}"' in page.text and "every 30 days" in page.text
    (limit,) = rows(af_registry, ProductLimit)
    assert (limit.product_id, limit.max_quantity, limit.window_days) == (product_id, 2, 30)
    # saving again replaces it
    form = page.forms["limit-form"]
    form["product_id"], form["max_quantity"], form["window_days"] = str(product_id), "1", "0"
    form.submit().follow()
    (limit,) = rows(af_registry, ProductLimit)
    assert (limit.max_quantity, limit.window_days) == (1, 0)
    # it applies to orders
    assert place(af_testapp, ip="203.0.113.1", contact="fan@example.com").status_int == 201
    assert place(af_testapp, ip="203.0.113.1", contact="fan@example.com").status_int == 403
    # bad input is refused with a message
    for values in ({"product_id": "", "max_quantity": "1"}, {"product_id": str(product_id), "max_quantity": "0"},
                   {"product_id": str(product_id), "max_quantity": "x"},
                   {"product_id": "999999", "max_quantity": "1"},
                   {"product_id": str(product_id), "max_quantity": "1", "window_days": "-1"}):
        form = af_admin.get("/-/antifraud/limits").forms["limit-form"]
        token = form["csrf_token"].value
        resp = af_admin.post("/-/antifraud/limits", {"csrf_token": token, "window_days": "0", **values}, status=422)
        assert 'id="limit-error"' in resp.text
    # removing it
    page = af_admin.get("/-/antifraud/limits")
    page.forms[1].submit().follow()
    assert rows(af_registry, ProductLimit) == []
    af_admin.post(f"/-/antifraud/limits/{limit.id}/delete", {"csrf_token": token}, status=404)


def test_limit_posts_need_the_csrf_token(af_admin, af_registry):
    product_id = setup_shop(af_registry)
    af_admin.post("/-/antifraud/limits", {"product_id": str(product_id), "max_quantity": "1"}, status=400)
    assert rows(af_registry, ProductLimit) == []


def test_menu_items(af_admin, af_registry):
    setup_shop(af_registry)
    page = af_admin.get("/admin")
    for path in ADMIN_PAGES:
        assert f'href="http://localhost{path}"' in page.text


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_are_for_admins(af_app, af_registry, path):
    setup_shop(af_registry)
    anonymous = webtest.TestApp(af_app, extra_environ={"REMOTE_ADDR": "203.0.113.1"})
    resp = anonymous.get(path, status="*")
    assert resp.status_int == 302 and "/login" in resp.headers["Location"]
    buyer = webtest.TestApp(af_app, extra_environ={"REMOTE_ADDR": "203.0.113.2"})
    sign_up(af_registry, buyer)
    buyer.get(path, status=403)


# -- disabled ----------------------------------------------------------------------------------------


def test_disabled_plugin_changes_nothing(af_admin, af_testapp, af_registry):
    """Disabling keeps its data, answers 404 on its pages and checks nothing:
    checkout and order pages work as without it."""
    product_id = setup_shop(af_registry, orders_per_ip_per_minute=1, max_unpaid_per_contact=1,
                            blacklist="*@bad.test", captcha="order login")
    with app_request(af_registry) as req:
        req.db.add(ProductLimit(product_id=product_id, max_quantity=1, window_days=0))
    assert place(af_testapp, ip="203.0.113.1", contact="x@bad.test").status_int == 403
    set_plugin(af_registry, "antifraud", enabled=False)
    for _ in range(3):
        resp = place(af_testapp, ip="203.0.113.1", contact="x@bad.test", quantity=2)
        assert resp.status_int == 201, resp.text
        af_testapp.get(f"/api/v1/orders/{resp.json['order_no']}", params={"token": resp.json["access_token"]},
                     status=200)
    page = af_testapp.get(f"/checkout/{product_id}", params={"sku": "AF1", "quantity": "1"})
    assert "captcha_id" not in page.text
    assert "captcha_id" not in af_testapp.get("/query").text
    for path in [*ADMIN_PAGES, "/-/antifraud/captcha/" + "A" * 24 + ".png"]:
        af_admin.get(path, status=404)
    af_testapp.post("/-/antifraud/captcha", status=404)
    assert 'href="http://localhost/-/antifraud/log"' not in af_admin.get("/admin").text
    assert risk_check(af_registry, "login", ip="192.0.2.1", email="x@bad.test") is None
    # the data stays
    assert len(rows(af_registry, ProductLimit)) == 1 and len(rows(af_registry, RiskEvent)) == 1
    set_plugin(af_registry, "antifraud", enabled=True)
    af_testapp.reset()  # the checkout page gave this browser a session: API posts would need its CSRF header
    assert place(af_testapp, ip="203.0.113.1", contact="x@bad.test").status_int == 403


def test_buyer_sees_orders_after_refusals(af_testapp, af_registry):
    """A refused order leaves no trace for the buyer; an accepted one opens."""
    setup_shop(af_registry, blacklist="*@bad.test")
    token = sign_up(af_registry, af_testapp)
    ok = place(af_testapp, contact="fine@example.com", headers={"X-CSRF-Token": token})
    assert place(af_testapp, contact="x@bad.test", headers={"X-CSRF-Token": token}).status_int == 403
    with app_request(af_registry) as req:
        assert req.db.scalar(select(Order.order_no)) == ok.json["order_no"]
    af_testapp.get(f"/orders/{ok.json['order_no']}", status=200)


def test_settings_form(af_admin, af_testapp, af_registry):
    """The core's settings form for the plugin: every field shows, a bad
    blacklist line is refused with its line number, a good list applies."""
    setup_shop(af_registry)
    page = af_admin.get("/admin/plugins/antifraud")
    form = page.forms["plugin-settings"]
    from kameng_antifraud import PLUGIN

    for field in PLUGIN.settings:
        assert field.name in form.fields, field.name
    form["blacklist"] = "ok@example.com\nnot an entry"
    resp = form.submit(expect_errors=True)
    assert resp.status_int in (400, 422) and "line 2" in resp.text
    form = af_admin.get("/admin/plugins/antifraud").forms["plugin-settings"]
    form["blacklist"] = "*@bad.test"
    form["captcha"] = "login, register"
    assert form.submit().status_int in (302, 303)
    assert place(af_testapp, contact="x@bad.test").status_int == 403
