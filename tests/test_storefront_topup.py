"""Topping the balance up from the member area: the sandbox (a redirect)
and a QR-code gateway; the balance moves only when the notify arrives."""
from __future__ import annotations

import re

import pytest
import webtest

import kameng_ordertest as plug
from kameng import wallet
from kameng.testing import app_request, set_plugin
from orders_helpers import NO_LIMITS, enable_sandbox, make_buyer

PASSWORD = "buyer-password-123"


@pytest.fixture(scope="module")
def tapp(make_app):
    return make_app(extra_plugins=[("ordertest", plug)], **NO_LIMITS)


@pytest.fixture
def member(tapp):
    enable_sandbox(tapp.registry)
    user_id, _token = make_buyer(tapp.registry, "topup-buyer@example.com")
    web = webtest.TestApp(tapp, extra_environ={"REMOTE_ADDR": "10.7.0.1"})
    form = web.get("/login").forms[0]
    form["email"], form["password"] = "topup-buyer@example.com", PASSWORD
    form.submit()
    return web, user_id


def balance(registry, user_id):
    with app_request(registry) as req:
        return wallet.balance(req.db, user_id)


def test_sandbox_topup_credits_the_balance_once_paid(tapp, member):
    web, user_id = member
    page = web.get("/account/balance")
    form = next(f for f in page.forms.values() if f.action.endswith("/account/topup"))
    form["amount"] = "50.00"
    form["gateway"] = "sandbox"
    to_gateway = form.submit(status=303)
    assert "/pay/sandbox/pay/" in to_gateway.location
    assert balance(tapp.registry, user_id) == 0  # nothing until the payment is confirmed
    sandbox = web.get(to_gateway.location)
    back = sandbox.forms["sandbox-paid"].submit(status=302).follow(status=303)
    assert back.location.endswith("/account/balance")
    assert balance(tapp.registry, user_id) == 5000
    ledger = web.get("/account/balance")
    assert "50.00" in ledger.text and "Top-up" in ledger.text


def test_qr_gateway_topup_shows_the_code(tapp, member):
    web, user_id = member
    set_plugin(tapp.registry, "ordertest", enabled=True)
    page = web.get("/account/balance")
    form = next(f for f in page.forms.values() if f.action.endswith("/account/topup"))
    form["amount"] = "20"
    form["gateway"] = "ordertest"
    pay = form.submit(status=303).follow()
    assert pay.headers["Cache-Control"].startswith("no-store")
    assert pay.html.select_one("#pay-qr svg") is not None
    assert re.search(r"CNY 20\.00", pay.text)
    # another member cannot open it
    other_id, _ = make_buyer(tapp.registry, "other-topup@example.com")
    other = webtest.TestApp(tapp, extra_environ={"REMOTE_ADDR": "10.7.0.2"})
    login = other.get("/login").forms[0]
    login["email"], login["password"] = "other-topup@example.com", PASSWORD
    login.submit()
    other.get(pay.request.path, status=404)


@pytest.mark.parametrize("amount,gateway,message", [("abc", "sandbox", "decimal"), ("0.50", "sandbox", "between"),
                                                    ("10", "nope", "not available")])
def test_bad_topups_are_refused_with_a_message(tapp, member, amount, gateway, message):
    web, user_id = member
    page = web.get("/account/balance")
    form = next(f for f in page.forms.values() if f.action.endswith("/account/topup"))
    resp = web.post("/account/topup", {"csrf_token": form["csrf_token"].value, "amount": amount,
                                        "gateway": gateway}, status=422)
    assert message in resp.html.select_one("#topup-error").text
    assert balance(tapp.registry, user_id) == 0


def test_signed_out_visitors_cannot_top_up(tapp):
    web = webtest.TestApp(tapp, extra_environ={"REMOTE_ADDR": "10.7.0.3"})
    web.get("/account/balance", status=302)


def test_the_gateway_return_url_sends_buyers_to_their_page_only(tapp):
    from orders_helpers import make_sku, order_body

    enable_sandbox(tapp.registry)
    make_sku(tapp.registry, "RET1", keys=2)
    buyer = webtest.TestApp(tapp, extra_environ={"REMOTE_ADDR": "10.7.0.4"})
    created = buyer.post_json("/api/v1/orders", order_body("RET1"), status=201).json
    attempt_no = created["payment"]["attempt_no"]
    # the API client's browser has no claim on the order: it is sent to the lookup page
    assert buyer.get(f"/pay/return/{attempt_no}", status=303).location.endswith("/query")
    # a browser that opened the order with its token goes back to it
    buyer.get(f"/orders/{created['order_no']}", {"token": created["access_token"]})
    assert buyer.get(f"/pay/return/{attempt_no}", status=303).location.endswith(f"/orders/{created['order_no']}")
    # nothing to learn from an unknown number
    assert buyer.get("/pay/return/P000", status=303).location.rstrip("/").endswith("localhost")
