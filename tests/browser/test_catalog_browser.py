"""A merchant fills the shelf in a real browser: a category, a card-key
product, keys pasted on the stock page (preview, then import, with the
progress script loaded under the CSP), one key revealed; the buyer then
sees the product with its stock."""
from __future__ import annotations

import re

from kameng.testing import ADMIN_EMAIL

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips every test, with the reason
    expect = None

from test_storefront_and_admin import sign_in  # noqa: E402


def test_merchant_fills_the_shelf_and_the_buyer_sees_it(page, admin, screenshot):
    sign_in(page, ADMIN_EMAIL, admin[1])
    page.wait_for_url(re.compile(r"/admin$"))

    page.goto("/admin/categories")
    form = page.locator("form#new-category")
    form.locator("input[name=name]").fill("游戏点卡")
    form.locator("button[type=submit]").click()
    expect(page.locator("#categories")).to_contain_text("游戏点卡")

    page.goto("/admin/products/new")
    form = page.locator("form#product-form")
    form.locator("#p-name").fill("Steam 钱包充值码")
    form.locator("#p-type").select_option("card_key")
    form.locator("#p-category").select_option(label="游戏点卡")
    form.locator("#p-description").fill("<p>官方充值码</p><script>alert(1)</script>")
    form.locator("#s-code").fill("STEAM-50")
    form.locator("#s-name").fill("50 元")
    form.locator("#s-price").fill("48.50")
    form.locator("button[type=submit].primary").click()
    expect(page.locator("#sku-table")).to_contain_text("STEAM-50")
    expect(page.locator("#p-description")).to_have_value("<p>官方充值码</p>")  # the script is gone
    product_url = page.url

    page.locator("#sku-table a", has_text="Stock").first.click()
    page.wait_for_url(re.compile(r"/admin/skus/STEAM-50/stock$"))
    keys = "\n".join(f"NO{i:04d},SECRET-{i:04d}-ABCDEFGH" for i in range(30)) + "\nbroken line"
    page.locator("#k-keys").fill(keys)
    page.locator("#k-sep").select_option("comma")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#import-preview")).to_contain_text("30")
    expect(page.locator("#key-counts")).to_contain_text("0")
    assert "SECRET-0001-ABCDEFGH" not in page.locator("#import-preview").inner_text()
    screenshot("admin-stock-preview")

    page.locator("#k-keys").fill(keys)
    page.locator("#k-sep").select_option("comma")
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-report")).to_contain_text("30")
    assert "SECRET-0001-ABCDEFGH" not in page.content()  # masked until revealed
    screenshot("admin-stock-imported")

    page.locator("#key-table button", has_text="Reveal").first.click()
    expect(page.locator("main")).to_contain_text(re.compile(r"SECRET-\d{4}-ABCDEFGH"))

    product_id = product_url.rstrip("/").rsplit("/", 1)[-1]
    page.goto(f"/p/{product_id}")
    expect(page.locator("main")).to_contain_text("Steam 钱包充值码")
    expect(page.locator("main")).to_contain_text("48.50")
    expect(page.locator("main")).to_contain_text("30")
    assert "alert(1)" not in page.content()
    screenshot("storefront-product")
