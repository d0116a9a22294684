"""A guest buys a card key in a real browser: from the home page to the
product, the confirm page, the sandbox's pay page, and back to the order
page with the keys (delivered with the payment); the copy button puts a
key on the clipboard. An order held for review waits on its page, which
notices by itself when the shop delivers it. Also the lookup page and a member's
account pages, on a phone-sized screen."""
from __future__ import annotations

import re

from kameng.catalog.service import save_category, save_product
from kameng.inventory import service as inventory
from sqlalchemy import select, update

from kameng.orders import service
from kameng.orders.models import Order
from kameng.testing import app_request
from orders_helpers import enable_sandbox

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips every test, with the reason
    expect = None

PHONE = {"width": 390, "height": 844}


def stock_the_shelf(registry) -> int:
    """The sandbox on; 游戏点卡 › Steam 钱包充值码 with two options, keys in the first. Gives the product id."""
    enable_sandbox(registry)
    with app_request(registry) as req:
        cat = save_category(req.db, {"name": "游戏点卡"})
        product = save_product(req.db, {
            "name": "Steam 钱包充值码", "type": "card_key", "category_id": str(cat.id),
            "description": "<p>官方充值码，自动发货。</p>",
            "instructions": "<p>登录 Steam，打开<b>兑换钱包充值码</b>，粘贴卡密即可。</p>",
            "skus": [{"code": "STEAM-50", "name": "50 元", "price": "48.50"},
                     {"code": "STEAM-100", "name": "100 元", "price": "96.00"}]}, "CNY")
        product_id = product.id
        sku_id = next(s.id for s in product.skus if s.code == "STEAM-50")
    factory = registry["kameng.session_factory"]
    inventory.import_keys(lambda: factory(bind=registry["kameng.write_engine"]), registry["kameng.keyring"], sku_id,
                          [f"NO{i:04d},STEAM-SECRET-{i:04d}-ABCD-EFGH" for i in range(3)], separator=",")
    return product_id


def test_guest_buys_a_card_key_pays_in_the_sandbox_and_copies_it(page, registry, screenshot):
    product_id = stock_the_shelf(registry)

    page.goto("/")
    expect(page.locator("header.topbar nav")).to_contain_text("Find my order")
    page.locator("article.product h3 a", has_text="Steam").click()
    page.wait_for_url(re.compile(rf"/p/{product_id}$"))
    page.locator("label.sku-option", has_text="50 元").click()
    page.locator("#quantity").fill("2")
    page.locator("form#buy-form button.buy").click()

    # the confirm page: what is bought, the breakdown, a contact and a query password
    page.wait_for_url(re.compile(rf"/checkout/{product_id}\?"))
    expect(page.locator("h1")).to_have_text("Confirm your order")
    expect(page.locator("#checkout-quantity")).to_have_text("2")
    expect(page.locator("#breakdown tr.row-total")).to_contain_text("CNY 97.00")
    expect(page.locator("label.method", has_text="Sandbox")).to_contain_text("Test payment")
    expect(page.locator("input[name=payment_method][value=sandbox]")).to_be_checked()
    page.locator("#contact").fill("guest@example.com")
    page.locator("#query_password").fill("pass1234")
    screenshot("buyer-checkout")
    page.locator("#place-order").click()

    # the sandbox's pay page, clearly a test
    page.wait_for_url(re.compile(r"/pay/sandbox/pay/P\d+$"))
    expect(page.locator(".test-banner")).to_be_visible()
    expect(page.locator(".pay-amount")).to_contain_text("97.00")
    screenshot("buyer-sandbox-pay")
    page.locator("#pay-success").click()

    # back on the order page: the keys came with the payment, no waiting
    page.wait_for_url(re.compile(r"/orders/\d{20}$"))
    expect(page.locator("#order-status")).to_have_text("Delivered")
    expect(page.locator("#order-waiting")).to_have_count(0)
    secrets = page.locator("#keys code.secret")
    expect(secrets).to_have_text(["STEAM-SECRET-0000-ABCD-EFGH", "STEAM-SECRET-0001-ABCD-EFGH"])
    expect(page.locator("#keys code.key-value").first).to_have_text("NO0000")
    expect(page.locator(".instructions")).to_contain_text("兑换钱包充值码")
    # times are shown in the reader's zone (Asia/Shanghai here), not UTC
    expect(page.locator("#events time").first).not_to_contain_text("UTC")
    screenshot("buyer-order-delivered", docs=True)

    # the copy button puts the key on the clipboard
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    button = page.locator("#key-2 .key-field", has=page.locator("code.secret")).locator("button.copy")
    expect(button).to_be_visible()
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == "STEAM-SECRET-0001-ABCD-EFGH"

    # the same page on a phone
    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("#keys")).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the order page scrolls sideways on a phone ({width}px)"
    screenshot("buyer-order-phone")


def test_lookup_and_account_pages_on_a_phone(page, registry, screenshot):
    product_id = stock_the_shelf(registry)
    page.set_viewport_size(PHONE)

    # register, then buy with the account: no query password asked
    page.goto("/register")
    form = page.locator("form#register-form")
    form.locator("input[name=email]").fill("member@example.com")
    form.locator("input[name=password]").fill("member-password-1")
    form.locator("input[name=password2]").fill("member-password-1")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator("#account-email")).to_have_text("member@example.com")
    page.goto(f"/checkout/{product_id}?sku=STEAM-50&quantity=1")
    expect(page.locator("#query_password")).to_have_count(0)
    expect(page.locator("label.method", has_text="Account balance")).to_contain_text("not enough")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot("buyer-checkout-phone")
    page.locator("#place-order").click()
    page.wait_for_url(re.compile(r"/pay/sandbox/pay/P\d+$"))
    page.locator("#pay-failure").click()
    page.wait_for_url(re.compile(r"/orders/\d{20}$"))
    expect(page.locator("#order-status")).to_have_text("Awaiting payment")
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^1[0-4]:\d\d$"))
    expect(page.locator("#events")).to_contain_text("The payment failed")
    screenshot("buyer-order-pending-phone")

    page.goto("/account/orders")
    expect(page.locator("#order-table")).to_contain_text("Awaiting payment")
    screenshot("buyer-account-orders-phone")

    # the lookup page, in Chinese
    page.goto("/language/zh_CN?next=/query")
    page.wait_for_url(re.compile(r"/query$"))
    expect(page.locator("#lookup-number")).to_be_visible()
    page.locator("#lookup-number input[name=order_no]").fill("12345678901234567890")
    page.locator("#lookup-number input[name=query_password]").fill("wrong")
    page.locator("#lookup-number button[type=submit]").click()
    expect(page.locator("#lookup-error")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot("buyer-lookup-zh-phone")


def test_a_held_order_waits_and_its_page_shows_the_keys_when_the_shop_delivers(page, registry, screenshot):
    product_id = stock_the_shelf(registry)
    page.goto(f"/checkout/{product_id}?sku=STEAM-50&quantity=1")
    page.locator("#contact").fill("held@example.com")
    page.locator("#query_password").fill("pass1234")
    page.locator("#place-order").click()
    page.wait_for_url(re.compile(r"/pay/sandbox/pay/P\d+$"))
    with app_request(registry) as req:  # what an anti-fraud rule does: hold it for a person to look at
        req.db.execute(update(Order).values(held="review"))
    page.locator("#pay-success").click()

    page.wait_for_url(re.compile(r"/orders/\d{20}$"))
    expect(page.locator("#order-status")).to_have_text("Paid")
    expect(page.locator("#order-waiting")).to_be_visible()
    screenshot("buyer-order-paid-held")
    with app_request(registry, actor="admin@example.com") as req:  # the shop releases and delivers it
        order = req.db.scalar(select(Order).with_for_update())
        order.held = ""
        service.deliver(req, order, actor="admin@example.com")
    # order.js polls the API and reloads once the status changes
    expect(page.locator("#order-status")).to_have_text("Delivered", timeout=15_000)
    expect(page.locator("#keys code.secret")).to_have_text(["STEAM-SECRET-0000-ABCD-EFGH"])
    screenshot("buyer-order-delivered-after-hold")
