"""A merchant uploads a product picture and the shop's logo in a real
browser (no script on the page: plain multipart forms under the admin
CSP); the buyer's product page shows the picture, served from /media/.
A file that is not an image is refused with the reason on the page."""
from __future__ import annotations

import io
import re

from PIL import Image, ImageDraw

from kameng.catalog import service as catalog
from kameng.testing import ADMIN_EMAIL, app_request

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips every test, with the reason
    expect = None

from test_storefront_and_admin import sign_in  # noqa: E402


def picture(size=(480, 320), fmt="PNG") -> bytes:
    """A gradient card with a label, easy to recognise on a screenshot."""
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for x in range(w):
        draw.line([(x, 0), (x, h)], fill=(30 + 180 * x // w, 90, 220 - 150 * x // w))
    draw.rectangle([w // 6, h // 3, w * 5 // 6, h * 2 // 3], fill=(255, 255, 255))
    draw.text((w // 6 + 12, h // 2 - 6), "STEAM 50 - uploaded", fill=(20, 20, 20))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def loaded_width(page, selector) -> int:
    """The natural width of a loaded image (0 when it did not load)."""
    return page.eval_on_selector(selector, "img => img.complete ? img.naturalWidth : 0")


def test_merchant_uploads_a_product_picture_and_a_logo(page, admin, app, screenshot):
    with app_request(app.registry) as req:
        pid = catalog.save_product(req.db, {"name": "Steam 钱包充值码", "type": "card_key",
                                            "skus": [{"code": "STEAM-50", "name": "50 元", "price": "48.50"}]},
                                   "CNY").id
    sign_in(page, ADMIN_EMAIL, admin[1])
    page.wait_for_url(re.compile(r"/admin$"))

    # a file that is not an image: refused, with the reason
    page.goto(f"/admin/products/{pid}")
    page.locator("#u-file").set_input_files({"name": "logo.svg", "mimeType": "image/svg+xml",
                                             "buffer": b"<svg xmlns='http://www.w3.org/2000/svg'><script>"
                                                       b"alert(1)</script></svg>"})
    page.locator("#image-upload button[type=submit]").click()
    expect(page.locator("#media-error")).to_contain_text("PNG, JPEG, GIF or WebP")
    screenshot("admin-media-refused")

    # a picture: uploaded and added to the product
    page.goto(f"/admin/products/{pid}")
    page.locator("#u-file").set_input_files({"name": "steam.png", "mimeType": "image/png", "buffer": picture()})
    page.locator("#image-upload button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/admin/products/{pid}#product-images$"))
    expect(page.locator("#p-images")).to_have_value(re.compile(r"^/media/[0-9a-f]{64}\.png$"))
    preview = "#product-images .image-previews img"
    expect(page.locator(preview)).to_have_count(1)
    page.locator(preview).scroll_into_view_if_needed()
    page.wait_for_function("sel => { const i = document.querySelector(sel); return i && i.complete; }",
                           arg=preview)
    assert loaded_width(page, preview) == 480
    screenshot("admin-product-image-uploaded")

    # the logo, from the settings page
    page.goto("/admin/settings")
    page.locator("#l-file").set_input_files({"name": "logo.jpg", "mimeType": "image/jpeg",
                                             "buffer": picture((96, 96), "JPEG")})
    page.locator("#logo-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/settings#logo-upload$"))
    expect(page.locator("#f-logo_url")).to_have_value(re.compile(r"^/media/[0-9a-f]{64}\.jpg$"))

    # the buyer sees both
    page.goto(f"/p/{pid}")
    main_image = "img.main-image"
    expect(page.locator(main_image)).to_have_attribute("src", re.compile(r"^/media/[0-9a-f]{64}\.png$"))
    page.wait_for_function("sel => document.querySelector(sel).complete", arg=main_image)
    assert loaded_width(page, main_image) == 480
    page.wait_for_function("() => document.querySelector('img.logo').complete")
    assert loaded_width(page, "img.logo") == 96
    screenshot("storefront-product-uploaded-image")
