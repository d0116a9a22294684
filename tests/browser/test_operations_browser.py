"""Issue 8's operations features in a real browser: a buyer who came
through an agent's referral link registers, sees the member level and the
referral box on the account page, edits the profile and signs in with the
phone number; an admin sets up a member level, a promotion and a coupon
through the admin pages, and the buyer sees the member price and the whole
price breakdown at checkout; the anti-fraud captcha on the sign-in form;
and the plugins' admin pages, rendered without script errors or CSP
violations (the ``page`` fixture checks that after every test).

The plugins are the bundled ones, loaded by entry point like an installed
shop loads them; a test whose plugin is not installed is skipped. Nothing
leaves the machine: the notification plugins point at closed ports on
127.0.0.1, and the live server runs no job worker."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from kameng import accounts, levels
from kameng.testing import ADMIN_EMAIL, add_card_sku, app_request, free_port, set_plugin

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips every test, with the reason
    expect = None

from test_storefront_and_admin import sign_in  # noqa: E402

PASSWORD = "a long password 1"
SANDBOX_SECRET = "operations-browser-sandbox-secret-0123456789"


def installed(registry, plugin_id: str):
    """The plugin's package, or a skip: not importable, or not loaded by the app."""
    module = pytest.importorskip(f"kameng_{plugin_id}")
    if plugin_id not in registry["kameng.plugins"].plugins:
        pytest.skip(f"the {plugin_id} plugin is importable but not installed (no kameng entry point)")
    return module


def flash(page):
    return page.locator(".flash p")


def box(page, selector: str) -> dict:
    """The element's box on the page: left, right, top, bottom, width, height."""
    return page.evaluate("sel => { const r = document.querySelector(sel).getBoundingClientRect();"
                         " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,"
                         " width: r.width, height: r.height}; }", selector)


def image_loaded(page, selector: str) -> None:
    """Waits until the picture has loaded and has a size."""
    page.wait_for_function(
        "sel => { const img = document.querySelector(sel); return img && img.complete && img.naturalWidth > 0; }",
        arg=selector)


# -- 1. the buyer's journey ----------------------------------------------------------------------


def test_referred_buyer_registers_edits_the_profile_and_signs_in_by_phone(page, registry, screenshot):
    installed(registry, "distribution")
    from kameng_distribution import members

    set_plugin(registry, "distribution", enabled=True, rate_1="10")
    with app_request(registry) as req:
        agent = accounts.create_user(req.db, "agent@example.com", PASSWORD, role="agent")
        agent_id = agent.id
        code = members.ensure(req.db, agent_id).code
        levels.create_level(req.db, {"code": "silver", "name": "Silver", "discount": "3", "min_paid": "100.00",
                                     "rank": "1"}, "CNY", "test")

    # the agent's link remembers the code in a cookie and leads to the home page
    page.goto(f"/-/distribution/r/{code}")
    page.wait_for_url(re.compile(r"/$"))
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["kameng_ref"]["value"] == code
    assert cookies["kameng_ref"]["httpOnly"]

    # registering: the referral code is already in the form
    page.locator("header nav a.nav-register").click()
    page.wait_for_url(re.compile(r"/register"))
    form = page.locator("form#register-form")
    expect(form.locator("#referral-code")).to_have_value(code)
    # the plugin's field is drawn like the form's own inputs, not as a bare browser input
    email_box, code_box = box(page, "form#register-form input[name=email]"), box(page, "#referral-code")
    assert abs(email_box["width"] - code_box["width"]) < 1 and abs(email_box["height"] - code_box["height"]) < 1, \
        (email_box, code_box)
    form.locator("input[name=email]").fill("buyer@example.com")
    form.locator("input[name=phone]").fill("138 0013 8000")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=password2]").fill(PASSWORD)
    screenshot("ops-register")
    form.locator("button[type=submit]").click()

    # the account page: the member level box and the referral box (slot account.top)
    page.wait_for_url(re.compile(r"/account$"))
    expect(flash(page)).to_have_text("Welcome! Your account is ready.")
    expect(page.locator("#account-email")).to_have_text("buyer@example.com")
    level_box = page.locator("#member-level")
    expect(level_box).to_be_visible()
    expect(level_box.locator("#level-name")).to_have_text("You have no member level yet.")
    expect(level_box.locator("#level-next")).to_contain_text("Silver")
    expect(level_box.locator("#level-next")).to_contain_text("CNY 100.00 more in paid orders")
    referral = page.locator("#distribution-link")
    expect(referral).to_be_visible()
    expect(referral).to_contain_text("CNY 0.00")
    # both come before the account's own cards
    top = page.evaluate("""() => [...document.querySelectorAll('.account-page > section, .account-page > div')]
                                  .map(e => e.id || e.className)""")
    assert top.index("member-level") < top.index("account-cards"), top
    assert top.index("distribution-link") < top.index("account-cards"), top
    screenshot("ops-account")
    with app_request(registry) as req:
        buyer = accounts.find_user(req.db, "buyer@example.com")
        assert buyer.phone == "13800138000"
        assert members.get(req.db, buyer.id).referrer_id == agent_id

    # the referral box leads to the buyer's own referrer page
    referral.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/-/distribution/$"))
    expect(page.locator("main")).to_contain_text(re.compile(r"/-/distribution/r/[A-Z0-9]{4,16}"))
    screenshot("ops-referrer")
    page.go_back()

    # the profile: a new display name
    page.locator("nav.account-tabs a", has_text="Profile").click()
    page.wait_for_url(re.compile(r"/account/profile$"))
    profile = page.locator("form#profile-form")
    expect(profile.locator("#profile-email")).to_have_value("buyer@example.com")
    expect(profile.locator("input[name=phone]")).to_have_value("13800138000")
    # "(optional)" sits on the line of the field's name, not as a second heading
    name = box(page, "form#profile-form label:has(input[name=phone]) > span:first-child")
    optional = box(page, "form#profile-form label:has(input[name=phone]) > span.optional")
    assert abs(name["top"] - optional["top"]) < name["height"], (name, optional)
    profile.locator("input[name=display_name]").fill("  小明\tthe buyer ")
    profile.locator("button[type=submit]").click()
    expect(flash(page)).to_have_text("Your profile is saved.")
    expect(profile.locator("input[name=display_name]")).to_have_value("小明 the buyer")
    screenshot("ops-profile")
    page.locator("nav.account-tabs a", has_text="Overview").click()
    expect(page.locator(".account-name")).to_have_text("小明 the buyer")

    # signed out, and back in with the phone number
    page.locator("header nav button", has_text="Sign out").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("header nav a.nav-account")).to_have_count(0)
    sign_in(page, "13800138000", PASSWORD)
    page.wait_for_url(re.compile(r"/$"))
    page.locator("header nav a.nav-account").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator("#account-email")).to_have_text("buyer@example.com")
    expect(page.locator(".account-name")).to_have_text("小明 the buyer")

    # a wrong password with the phone number is refused like one with the email
    page.locator("header nav button", has_text="Sign out").click()
    sign_in(page, "13800138000", "not the password")
    expect(page.locator("#login-error")).to_have_text("Wrong email or password.")


# -- 2. member price, promotion and coupon at checkout ---------------------------------------------


def test_member_level_promotion_and_coupon_in_the_price(page, admin, registry, screenshot):
    installed(registry, "coupons")
    installed(registry, "sandbox")
    set_plugin(registry, "sandbox", enabled=True, secret=SANDBOX_SECRET)
    set_plugin(registry, "coupons", enabled=True)
    sku_id = add_card_sku(registry, code="CARD100", price="100.00", keys=3, name="游戏点卡 100 元")
    from kameng.catalog.models import Sku

    with app_request(registry) as req:
        product_id = req.db.scalar(select(Sku.product_id).where(Sku.id == sku_id))
        buyer_id = accounts.create_user(req.db, "buyer@example.com", PASSWORD, role="buyer").id

    sign_in(page, ADMIN_EMAIL, admin[1])
    page.wait_for_url(re.compile(r"/admin$"))

    # a member level with 5 % off, from the levels page
    page.goto("/admin/levels")
    new_level = page.locator("form#new-level")
    new_level.locator("#l-code").fill("gold")
    new_level.locator("#l-name").fill("Gold")
    new_level.locator("#l-discount").fill("5")
    new_level.locator("#l-rank").fill("2")
    new_level.locator("button[type=submit]").click()
    row = page.locator("#levels tr#level-gold")
    expect(row).to_contain_text("Gold")
    expect(row.locator("td.num").first).to_have_text("5 %")

    # given to the buyer by hand on the account's page
    page.goto(f"/admin/users/{buyer_id}")
    membership = page.locator("form#membership-form")
    membership.locator("select[name=level]").select_option("gold")
    membership.locator("button[type=submit]").click()
    expect(page.locator("#level-now")).to_contain_text("Gold")
    expect(page.locator("#level-now")).to_contain_text("(fixed by hand)")

    # a promotion: 5.00 off from 80.00
    page.goto("/-/coupons/promotions/new")
    promo = page.locator("form#promotion-form")
    promo.locator("#p-name").fill("Spend 80 save 5")
    promo.locator("input[name=threshold_0]").fill("80.00")
    promo.locator("input[name=tier_value_0]").fill("5.00")
    promo.locator("select[name=tier_kind_0]").select_option("amount")
    promo.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/-/coupons/promotions$"))
    expect(flash(page)).to_have_text("Promotion Spend 80 save 5 saved.")

    # a coupon: 10.00 off from 50.00
    page.goto("/-/coupons/")
    page.locator("#new-coupon").click()
    page.wait_for_url(re.compile(r"/-/coupons/new$"))
    coupon = page.locator("form#coupon-form")
    coupon.locator("#c-code").fill("SAVE10")
    coupon.locator("#c-kind").select_option("fixed")
    coupon.locator("#c-value").fill("10.00")
    coupon.locator("#c-min-amount").fill("50.00")
    coupon.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/-/coupons/\d+$"))
    expect(flash(page)).to_have_text("Coupon SAVE10 created.")
    expect(page.locator("#coupon-status")).to_have_text("Active")

    # the buyer, in the same browser once the admin's cookies are gone
    page.context.clear_cookies()
    sign_in(page, "buyer@example.com", PASSWORD)
    page.wait_for_url(re.compile(r"/$"))
    page.goto(f"/p/{product_id}")
    option = page.locator("label.sku-option", has_text="CARD100 option")
    expect(option.locator(".price.list-price")).to_have_text("CNY 100.00")
    expect(option.locator(".your-price .your-label")).to_have_text("Your price (Gold member)")
    expect(option.locator(".your-price strong.price")).to_have_text("CNY 95.00")
    offers = page.locator("#coupons-offers")
    expect(offers.locator(".coupons-promotion")).to_contain_text("Spend 80 save 5")
    # the struck-through list price and the member price do not overlap
    boxes = page.evaluate("""() => {
        const o = document.querySelector('label.sku-option');
        const r = s => o.querySelector(s).getBoundingClientRect();
        const a = r('.list-price'), b = r('.your-price');
        return {a: [a.left, a.right, a.top, a.bottom], b: [b.left, b.right, b.top, b.bottom]};
    }""")
    a, b = boxes["a"], boxes["b"]
    assert a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2], boxes
    page.locator("form#buy-form #coupon").fill("save10")
    # the coupon input is a one-line input like the quantity's, not stretched by its label
    quantity, coupon_input = box(page, "#quantity"), box(page, "form#buy-form #coupon")
    assert coupon_input["height"] < quantity["height"] * 1.3, (quantity, coupon_input)
    screenshot("ops-product-member-price")
    page.locator("form#buy-form button.buy").click()

    # the breakdown: list price, member price, promotion, coupon, total
    page.wait_for_url(re.compile(rf"/checkout/{product_id}\?"))
    breakdown = page.locator("#breakdown")
    expect(breakdown.locator("tr.row-base td")).to_have_text("CNY 100.00")
    expect(breakdown.locator("tr.row-special th")).to_contain_text("Member price (Gold)")
    expect(breakdown.locator("tr.row-special td")).to_have_text("CNY -5.00")
    expect(breakdown.locator("tr.row-subtotal td")).to_have_text("CNY 95.00")
    adjustments = breakdown.locator("tr.row-adjustment")
    expect(adjustments).to_have_count(2)
    expect(adjustments.nth(0).locator("th")).to_contain_text("Spend 80 save 5")
    expect(adjustments.nth(0).locator("td")).to_have_text("CNY -5.00")
    expect(adjustments.nth(1).locator("th")).to_contain_text("Coupon")
    expect(adjustments.nth(1).locator("th .detail")).to_have_text(re.compile("SAVE10", re.I))
    expect(adjustments.nth(1).locator("td")).to_have_text("CNY -10.00")
    expect(breakdown.locator("tr.row-total td")).to_have_text("CNY 80.00")
    expect(page.locator("#checkout-total")).to_have_text("CNY 80.00")
    expect(page.locator("form#coupon-form #coupon")).to_have_value(re.compile("SAVE10", re.I))
    expect(page.locator("form#coupon-form .error")).to_have_count(0)
    screenshot("ops-checkout-breakdown")

    # paid in the sandbox: the order keeps the price it was shown
    page.locator("label.method", has_text="Sandbox").locator("input").check()
    page.locator("#place-order").click()
    page.wait_for_url(re.compile(r"/pay/sandbox/pay/P\d+$"))
    expect(page.locator(".pay-amount")).to_have_text("CNY 80.00")
    page.locator("#pay-success").click()
    page.wait_for_url(re.compile(r"/orders/\d{20}$"))
    expect(page.locator("#order-status")).to_have_text("Delivered")
    expect(page.locator("#breakdown tr.row-total td")).to_have_text("CNY 80.00")

    # the admin's coupon list counts the use
    page.context.clear_cookies()
    sign_in(page, ADMIN_EMAIL, admin[1])
    page.wait_for_url(re.compile(r"/admin$"))
    page.goto("/-/coupons/")
    coupon_row = page.locator("#coupons tbody tr", has_text="SAVE10")
    expect(coupon_row.locator("td.uses")).to_contain_text("1 / ∞")
    expect(coupon_row.locator(".badge")).to_have_text("Active")
    screenshot("ops-coupons-admin")


# -- 3. the captcha on the sign-in form ------------------------------------------------------------


def test_login_captcha_loads_and_a_wrong_answer_is_refused(page, registry, screenshot):
    installed(registry, "antifraud")
    from kameng_antifraud import backends

    set_plugin(registry, "antifraud", enabled=True, captcha="login")
    with app_request(registry) as req:
        accounts.create_user(req.db, "buyer@example.com", PASSWORD, role="buyer")

    page.goto("/login")
    form = page.locator("form#login-form")
    field = form.locator(".captcha-field")
    expect(field.locator("img.captcha-image")).to_be_visible()
    image_loaded(page, "form#login-form img.captcha-image")
    size = page.evaluate("() => { const i = document.querySelector('form#login-form img.captcha-image');"
                         " return [i.naturalWidth, i.naturalHeight]; }")
    assert size == [200, 70], size
    # the captcha comes before the submit button
    assert page.evaluate("""() => {
        const f = document.querySelector('form#login-form');
        return f.querySelector('.captcha-field').compareDocumentPosition(f.querySelector('button[type=submit]'))
               & Node.DOCUMENT_POSITION_FOLLOWING; }""")
    first_id = form.locator("input[name=captcha_id]").input_value()
    form.locator("input[name=email]").fill("buyer@example.com")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=captcha_answer]").fill("WRONG")
    screenshot("ops-login-captcha")
    form.locator("button[type=submit]").click()

    # refused, with a new picture to try again
    expect(page.locator("#login-error")).to_contain_text("did not match the picture")
    expect(page.locator("header nav a.nav-account")).to_have_count(0)
    expect(form.locator("input[name=email]")).to_have_value("buyer@example.com")
    image_loaded(page, "form#login-form img.captcha-image")
    second_id = form.locator("input[name=captcha_id]").input_value()
    assert second_id != first_id
    screenshot("ops-login-captcha-wrong")

    # the right answer (read from the shop's store, as the picture shows it) signs in
    answer = backends.local_store(registry["kameng.write_engine"]).peek(second_id)
    assert answer and len(answer) == 5
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=captcha_answer]").fill(answer.lower())
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("header nav a.nav-account")).to_be_visible()


# -- 4. the admin pages of the new features and the plugins -----------------------------------------


def test_operations_admin_pages_render_cleanly(page, admin, registry, screenshot):
    for plugin_id in ("distribution", "antifraud", "notify_email", "notify_telegram", "webhooks"):
        installed(registry, plugin_id)
    closed = free_port()  # nothing listens there: a message that tried would fail on this machine
    set_plugin(registry, "distribution", enabled=True, levels="2", rate_1="10", rate_2="3")
    set_plugin(registry, "antifraud", enabled=True)
    set_plugin(registry, "notify_email", enabled=True, host="127.0.0.1", port=closed, security="none",
               sender="Shop <shop@example.com>", admin_email="owner@example.com")
    set_plugin(registry, "notify_telegram", enabled=True, bot_token="123456789:" + "A" * 35,
               chat_id="-1001234567890", api_base=f"https://127.0.0.1:{closed}")
    set_plugin(registry, "webhooks", enabled=True)
    with app_request(registry) as req:
        levels.create_level(req.db, {"code": "vip", "name": "VIP", "discount": "2.5", "rank": "1"}, "CNY", "test")
        agent = accounts.create_user(req.db, "agent@example.com", PASSWORD, role="agent")
        agent.tier = "gold"
        applicant = accounts.create_user(req.db, "applicant@example.com", PASSWORD, role="buyer")
        applicant.agent_status = "applied"
        applicant.agent_note = "I sell game cards in my shop"

    sign_in(page, ADMIN_EMAIL, admin[1])
    page.wait_for_url(re.compile(r"/admin$"))
    menu = page.locator(".sidebar nav")
    for label in ("Member levels", "Agents", "Risk log", "Webhooks"):
        expect(menu.get_by_role("link", name=label, exact=True)).to_be_visible()

    page.goto("/admin/levels")
    expect(page.locator("h1")).to_have_text("Member levels")
    expect(page.locator("#levels tr#level-vip")).to_contain_text("2.5 %")

    page.goto("/admin/agents")
    expect(page.locator("h1")).to_have_text("Agents")
    expect(page.locator("#waiting")).to_contain_text("applicant@example.com")
    expect(page.locator("#waiting")).to_contain_text("I sell game cards in my shop")
    expect(page.locator("main")).to_contain_text("agent@example.com")
    screenshot("ops-admin-agents")

    page.goto("/-/distribution/admin/")
    expect(page.locator("h1")).to_have_text("Distribution")
    expect(page.locator("#global-rates")).to_have_text("10% / 3%")
    expect(page.locator("#distribution-stats .stat")).to_have_count(5)
    screenshot("ops-admin-distribution")

    page.goto("/-/antifraud/log")
    expect(page.locator("h1")).to_have_text("Risk log")
    expect(page.locator("#antifraud-backend")).to_be_visible()

    page.goto("/-/notify_email/templates")
    expect(page.locator("h1")).to_have_text("Email templates")
    expect(page.locator("#events tbody tr").first).to_be_visible()

    page.goto("/-/notify_telegram/")
    expect(page.locator("h1")).to_have_text("Telegram notifications")
    expect(page.locator("#telegram-chat")).to_have_text("-1001234567890")
    assert "A" * 35 not in page.content()  # the bot token is a secret

    # a webhook endpoint, made with the form (at a closed port: no worker runs here anyway)
    page.goto("/-/webhooks/")
    expect(page.locator("h1")).to_have_text("Webhooks")
    expect(page.locator("#no-endpoints")).to_be_visible()
    endpoint = page.locator("form#endpoint-form")
    endpoint.locator("#f-url").fill(f"https://127.0.0.1:{closed}/kameng-hook")
    endpoint.locator("#f-description").fill("ERP")
    endpoint.locator("#f-other_events").fill("order.paid order.delivered")
    endpoint.locator("button[type=submit]").click()
    page.goto("/-/webhooks/")
    expect(page.locator("#endpoints tbody tr")).to_have_count(1)
    expect(page.locator("#endpoints")).to_contain_text("kameng-hook")
    # the table stays in its column: the new-endpoint card does not cover its last columns
    assert box(page, "#endpoints")["right"] <= box(page, "#new-endpoint")["left"] + 1
    screenshot("ops-admin-webhooks")
