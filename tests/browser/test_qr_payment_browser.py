"""A buyer pays by scanning: the checkout offers a gateway's channels as
separate choices, the pay page shows the provider's QR code as an SVG with
a countdown, and moves on to the order page by itself once the shop learns
the payment was made (here from the reconciliation query, as when a
notify is lost)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

import kameng_gwtest as gw
from kameng.payments.models import PaymentAttempt
from kameng.testing import LiveServer, app_request, free_port, set_plugin
from orders_helpers import NO_LIMITS, enable_sandbox, make_sku, run_jobs

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips every test, with the reason
    expect = None


@pytest.fixture(scope="module")
def live_server_port():
    return free_port()


@pytest.fixture(scope="module")
def app(make_app, live_server_port):
    return make_app(extra_plugins=[("gwtest", gw)], **NO_LIMITS, **{
        "kameng.base_url": f"http://127.0.0.1:{live_server_port}", "kameng.payments.query_delay_scale": "0"})


@pytest.fixture(scope="module")
def live_server(app, live_server_port):
    server = LiveServer(app, live_server_port).start()
    yield server
    server.stop()


def test_a_buyer_picks_a_channel_scans_the_qr_code_and_the_page_moves_on(page, registry, screenshot):
    gw.CALLS.clear()
    gw.ANSWERS.clear()
    gw.FAIL.update(create=None, close=None, test=None)
    enable_sandbox(registry)
    set_plugin(registry, "gwtest", enabled=True, token="tok_browser")
    product_id, _sku = make_sku(registry, "CARD10", price="10.00", keys=3)

    page.goto(f"/checkout/{product_id}?sku=CARD10&quantity=1")
    expect(page.locator("label.method", has_text="Contract gateway · Scan")).to_be_visible()
    expect(page.locator("label.method", has_text="Contract gateway · Phone")).to_be_visible()
    page.locator("label.method", has_text="Contract gateway · Scan").click()
    page.locator("#contact").fill("guest@example.com")
    page.locator("#query_password").fill("pass1234")
    page.locator("#place-order").click()

    page.wait_for_url(re.compile(r"/orders/\d+/pay/P\d+"))
    qr = page.locator("#pay-page svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box["width"] >= 150 and box["height"] >= 150  # big enough to scan from a screen
    screenshot("pay-by-qr-code")
    with app_request(registry) as req:
        attempt = req.db.scalar(select(PaymentAttempt))
        assert (attempt.gateway, attempt.channel) == ("gwtest", "scan")
        attempt_no = attempt.attempt_no

    # the buyer pays; the notify is lost, the shop asks the gateway and learns it
    gw.ANSWERS[attempt_no] = "paid"
    run_jobs(registry)
    page.wait_for_url(re.compile(r"/orders/\d+(\?.*)?$"), timeout=20_000)
    expect(page.locator("body")).to_contain_text("CARD10-KEY-")
    screenshot("paid-by-qr-code-delivered")
    assert gw.CALLS.count(("create", attempt_no)) == 1


def test_the_admin_sees_the_notify_address_and_tests_a_gateways_connection(page, registry, admin, screenshot):
    gw.CALLS.clear()
    gw.FAIL.update(create=None, close=None, test=None)
    set_plugin(registry, "gwtest", enabled=True, token="tok_browser_secret")
    page.goto("/login")
    form = page.locator("form#login-form")
    form.locator("input[name=email]").fill(admin[0])
    form.locator("input[name=password]").fill(admin[1])
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin"))

    page.goto("/admin/plugins/gwtest")
    expect(page.locator("#notify-url")).to_have_text(re.compile(r"^http://127\.0\.0\.1:\d+/pay/gwtest/notify$"))
    expect(page.locator("body")).not_to_contain_text("tok_browser_secret")  # secrets stay masked
    page.locator("#test-connection button").click()
    expect(page.locator("body")).to_contain_text("token accepted")
    screenshot("admin-gateway-connection-test")
    gw.FAIL["test"] = "the provider says: invalid merchant"
    page.locator("#test-connection button").click()
    expect(page.locator("body")).to_contain_text("the provider says: invalid merchant")
    assert gw.CALLS.count(("test", "")) == 2
