"""The admin connects a supplier, imports its goods with a markup, and a
buyer's order of an imported option is delivered with the supplier's key —
in a real browser."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

import kameng_suptest as sup
from kameng.testing import LiveServer, app_request, free_port, set_plugin
from orders_helpers import NO_LIMITS, enable_sandbox, run_jobs

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips every test, with the reason
    expect = None


@pytest.fixture(scope="module")
def live_server_port():
    return free_port()


@pytest.fixture(scope="module")
def app(make_app, live_server_port):
    return make_app(extra_plugins=[("suptest", sup)], **NO_LIMITS, **{
        "kameng.base_url": f"http://127.0.0.1:{live_server_port}", "kameng.suppliers.delay_scale": "0"})


@pytest.fixture(scope="module")
def live_server(app, live_server_port):
    server = LiveServer(app, live_server_port).start()
    yield server
    server.stop()


def test_connect_import_and_sell_a_suppliers_goods(page, registry, admin, screenshot):
    sup.UP.reset()
    enable_sandbox(registry)
    set_plugin(registry, "suptest", enabled=True)
    page.goto("/login")
    form = page.locator("form#login-form")
    form.locator("input[name=email]").fill(admin[0])
    form.locator("input[name=password]").fill(admin[1])
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin"))

    page.goto("/admin/suppliers")
    page.locator("#f-name").fill("测试上游")
    page.locator("#f-token").fill("upstream-token")
    page.locator("#connection-form button[type=submit]").click()
    expect(page.locator("#health")).to_have_attribute("data-health", "ok")
    page.locator("a", has_text="Import goods").click()
    page.locator("input[name=goods][value=G1]").check()
    page.locator("select[name=price_mode]").select_option("markup")
    page.locator("input[name=price_value]").fill("10")
    screenshot("admin-supplier-import")
    page.locator("#import-form button[type=submit]").click()
    expect(page.locator("#bound")).to_contain_text("STEAM50")
    expect(page.locator("#sync-log")).to_contain_text("imported")
    screenshot("admin-supplier-connection")

    # a buyer orders the imported card; the supplier's key is delivered
    from kameng.catalog.models import Product

    with app_request(registry) as req:
        product_id = req.db.scalar(select(Product.id))
    buyer = page.context.browser.new_context(base_url=page.url.split("/admin")[0])
    shop = buyer.new_page()
    shop.goto(f"/p/{product_id}")
    expect(shop.locator("body")).to_contain_text("49.50")  # 45.00 + 10 %
    shop.locator("form#buy-form button.buy").click()
    shop.locator("#contact").fill("guest@example.com")
    shop.locator("#query_password").fill("pass1234")
    shop.locator("label.method", has_text="Sandbox").click()
    shop.locator("#place-order").click()
    shop.locator("#pay-success").click()
    shop.wait_for_url(re.compile(r"/orders/\d+"))
    run_jobs(registry)
    shop.reload()
    expect(shop.locator("body")).to_contain_text("UP-K")
    buyer.close()
