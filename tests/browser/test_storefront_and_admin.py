"""What a shopper and an admin see in a real browser: the storefront with a
catalog, switching language, signing in, the plugins and shop settings
pages, the lockout, and a test payment through the sandbox gateway."""
from __future__ import annotations

import pathlib
import re

import kameng
from kameng.testing import ADMIN_EMAIL, app_request, set_plugin

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips every test, with the reason
    expect = None

ZH_CATALOG = (pathlib.Path(kameng.__file__).parent / "locale" / "zh_CN" / "LC_MESSAGES" / "kameng.mo").exists()
SECRET = "x" * 32
ZH = re.compile(r"^zh[-_]CN$")  # the page says zh_CN today; zh-CN would be the correct BCP 47 tag


def chinese(english, chinese):
    """What a page in Chinese shows: the Chinese text where the zh_CN catalog
    is there, else either (a tree without compiled catalogs)."""
    if ZH_CATALOG:
        return chinese
    return re.compile(f"{re.escape(english)}|{re.escape(chinese)}")


def sign_in(page, email, password):
    page.goto("/login")
    form = page.locator("form#login-form")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()


def flash(page):
    return page.locator(".flash p")


def stat(page, label):
    """The number on the dashboard's tile with this label."""
    return page.locator(".stats .stat", has_text=label).locator("strong")


def plugin_row(page, plugin_id):
    return page.locator(f"tr#plugin-{plugin_id}")


# -- storefront ---------------------------------------------------------------------------


def test_home_shows_the_catalog_and_switches_language(page, registry, screenshot):
    from kameng.catalog.models import load_demo

    with app_request(registry) as req:
        load_demo(req.db)

    page.goto("/")
    # The tests' ini says pyramid.default_locale_name = en, and an unset shop
    # language falls back to it: a first visit without a cookie is English.
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("header.topbar nav")).to_contain_text("Sign in")
    expect(page.locator(".brand")).to_have_text("kameng")

    categories = page.locator(".catalog .category h2")
    expect(categories).to_have_text(["游戏点卡", "话费充值", "视频会员"])
    products = page.locator("article.product h3")
    expect(products).to_have_text(["Steam 钱包充值码", "腾讯 Q 币卡", "中国移动话费直充", "爱奇艺黄金会员月卡"])
    steam = page.locator("article.product", has=page.locator("h3", has_text="Steam"))
    expect(steam.locator(".skus li .sku-name")).to_have_text(["50 元", "100 元"])
    expect(steam.locator(".skus li .price")).to_have_text(["CNY 50.00", "CNY 100.00"])
    mobile = page.locator("article.product", has=page.locator("h3", has_text="中国移动"))
    expect(mobile.locator(".price").first).to_have_text("CNY 49.80")
    expect(page.locator(".catalog .price")).to_have_count(7)
    expect(page.get_by_text("CNY 50.00", exact=True)).to_be_visible()
    css = page.evaluate("() => getComputedStyle(document.querySelector('.price')).fontWeight")
    assert css == "700", "kameng.css is not applied"

    # to Chinese: back on the same page, with a cookie that remembers it
    page.locator("header .lang a", has_text="中文").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("html")).to_have_attribute("lang", ZH)
    expect(page.locator("header.topbar nav a[href$='/login']")).to_have_text(chinese("Sign in", "登录"))
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert cookies.get("_LOCALE_") == "zh_CN"
    expect(products).to_have_count(4)
    expect(page.get_by_text("CNY 50.00", exact=True)).to_be_visible()
    screenshot("storefront", docs=True)

    # the cookie holds across pages
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", ZH)

    # and back to English, from the page we are on
    page.locator("header .lang a", has_text="EN").click()
    page.wait_for_url(re.compile(r"/login$"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.goto("/")
    expect(page.locator("header.topbar nav")).to_contain_text("Sign in")
    expect(products).to_have_count(4)
    screenshot("storefront-en")


def test_empty_shop_says_so(page):
    page.goto("/")
    expect(page.locator("section.empty")).to_be_visible()
    expect(page.locator(".catalog")).to_have_count(0)


# -- admin ----------------------------------------------------------------------------------


def test_admin_signs_in_and_manages_plugins_and_shop(page, admin, screenshot):
    email, password = admin
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/login\?next="))  # admin pages ask for a sign-in first
    sign_in(page, email, password)

    # the dashboard
    page.wait_for_url(re.compile(r"/admin$"))
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".sidebar .who")).to_have_text(ADMIN_EMAIL)
    menu = page.locator(".sidebar nav")
    for label in ("Dashboard", "Plugins", "Shop settings", "Payments", "Background jobs", "Audit log"):
        expect(menu.get_by_role("link", name=label, exact=True)).to_be_visible()
    expect(menu.locator("a.active")).to_have_text("Dashboard")
    expect(stat(page, "Paid payments")).to_have_text("0")
    expect(stat(page, "Failed jobs")).to_have_text("0")
    expect(stat(page, "Enabled plugins")).to_have_text("0")
    screenshot("admin-dashboard")

    # plugins: the sandbox is installed, off, and cannot be enabled without its secret
    page.locator(".sidebar nav a", has_text="Plugins").click()
    page.wait_for_url(re.compile(r"/admin/plugins$"))
    row = plugin_row(page, "sandbox")
    expect(row).to_contain_text("Sandbox payments (test)")
    expect(row.locator(".badge")).to_have_text("Disabled")
    row.get_by_role("button", name="Enable").click()
    expect(page.locator(".flash p.error")).to_contain_text("secret")
    expect(row.locator(".badge")).to_have_text("Disabled")

    # its settings: set the secret, and it is shown masked from then on
    row.get_by_role("link", name="Settings").click()
    page.wait_for_url(re.compile(r"/admin/plugins/sandbox$"))
    form = page.locator("form#plugin-settings")
    secret = form.locator("input[name=secret]")
    expect(secret).to_have_attribute("type", "password")
    expect(secret).to_have_value("")
    secret.fill(SECRET)
    form.get_by_role("button", name="Save").click()
    expect(flash(page)).to_have_text("Settings saved.")
    expect(secret).to_have_value("********")
    assert SECRET not in page.content()

    # enable, disable, enable again with its button; the badge follows
    page.get_by_role("link", name="Back to plugins").click()
    row.get_by_role("button", name="Enable").click()
    expect(flash(page)).to_have_text("Plugin sandbox enabled.")
    expect(row.locator(".badge")).to_have_text("Enabled")
    expect(row.locator(".badge")).to_have_class(re.compile(r"\bon\b"))
    row.get_by_role("button", name="Disable").click()
    expect(flash(page)).to_have_text("Plugin sandbox disabled.")
    expect(row.locator(".badge")).to_have_text("Disabled")
    row.get_by_role("button", name="Enable").click()
    expect(row.locator(".badge")).to_have_text("Enabled")
    screenshot("admin-plugins-en")

    # the settings page keeps the mask after a save that does not touch it
    row.get_by_role("link", name="Settings").click()
    expect(page.locator("p .badge.on")).to_have_text("Enabled")
    expect(secret).to_have_value("********")
    form.get_by_role("button", name="Save").click()
    expect(flash(page)).to_have_text("Settings saved.")
    expect(secret).to_have_value("********")
    assert SECRET not in page.content()

    # the admin in Chinese, for the documentation
    page.locator(".sidebar .lang a", has_text="中文").click()
    page.wait_for_url(re.compile(r"/admin/plugins/sandbox$"))
    expect(page.locator("html")).to_have_attribute("lang", ZH)
    page.locator(".sidebar nav a[href$='/admin/plugins']").click()
    expect(plugin_row(page, "sandbox").locator(".badge.on")).to_have_text(chinese("Enabled", "已启用"))
    screenshot("admin-plugins", docs=True)
    page.locator(".sidebar .lang a", has_text="EN").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # shop settings: a new name shows in the storefront's header and the admin's
    page.locator(".sidebar nav a", has_text="Shop settings").click()
    settings = page.locator("form#shop-settings")
    expect(settings.locator("input[name=name]")).to_have_value("kameng")
    settings.locator("input[name=name]").fill("星辰卡盟")
    settings.locator("textarea[name=announcement]").fill("本店 24 小时自动发货")
    settings.get_by_role("button", name="Save").click()
    expect(flash(page)).to_have_text("Settings saved.")
    expect(settings.locator("input[name=name]")).to_have_value("星辰卡盟")
    expect(page.locator(".sidebar .brand")).to_contain_text("星辰卡盟")
    page.get_by_role("link", name="View shop").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("header .brand")).to_have_text("星辰卡盟")
    expect(page).to_have_title("星辰卡盟")
    expect(page.locator(".announcement")).to_have_text("本店 24 小时自动发货")
    # signed in as an admin, the storefront offers the way back
    expect(page.locator("header nav a", has_text="Admin")).to_be_visible()

    # and signing out from the storefront ends the session
    page.locator("header nav button", has_text="Sign out").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("header.topbar nav")).to_contain_text("Sign in")
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_a_shop_setting_error_is_shown_next_to_its_field(page, admin):
    sign_in(page, *admin)
    page.wait_for_url(re.compile(r"/admin$"))
    page.goto("/admin/settings")
    form = page.locator("form#shop-settings")
    form.locator("input[name=name]").fill("")
    form.locator("input[name=logo_url]").fill("javascript:alert(1)")
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".field .error")).to_have_count(1)
    expect(page.locator(".flash p.info")).to_have_count(0)
    page.goto("/")
    expect(page.locator("header .brand")).to_have_text("kameng")


def test_wrong_password_five_times_locks_the_account(page, admin, screenshot):
    email, password = admin
    for attempt in range(1, 5):
        sign_in(page, email, f"wrong-password-{attempt}")
        expect(page.locator("#login-form")).to_be_visible()
        error = page.locator("section p.error")
        expect(error).to_be_visible()
        expect(error).not_to_contain_text(re.compile("locked|锁定"))
        expect(page.locator("input[name=email]")).to_have_value(email)  # kept for the next try
        expect(page.locator("input[name=password]")).to_have_value("")  # never sent back
    sign_in(page, email, "wrong-password-5")
    expect(page.locator("section p.error")).to_contain_text(re.compile("locked|锁定"))
    # now even the right password is refused
    sign_in(page, email, password)
    expect(page.locator("section p.error")).to_contain_text(re.compile("locked|锁定"))
    assert "/admin" not in page.url
    screenshot("login-locked")
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_admin_test_payment_through_the_sandbox(page, admin, registry, screenshot):
    set_plugin(registry, "sandbox", enabled=True, secret=SECRET)
    sign_in(page, *admin)
    page.wait_for_url(re.compile(r"/admin$"))
    page.locator(".sidebar nav a", has_text="Payments").click()
    page.wait_for_url(re.compile(r"/admin/payments$"))
    expect(page.locator("#attempts tbody tr")).to_have_count(0)

    form = page.locator("form#test-payment")
    expect(form.locator("select[name=gateway] option")).to_have_text([re.compile(r"Sandbox \(test payment\)")])
    form.locator("input[name=amount]").fill("12.34")
    form.get_by_role("button", name="Pay").click()

    # the sandbox's pay page, clearly marked as a test
    page.wait_for_url(re.compile(r"/pay/sandbox/pay/P\w+$"))
    attempt_no = page.url.rsplit("/", 1)[1]
    card = page.locator("#sandbox-pay")
    expect(card.locator(".test-banner")).to_be_visible()
    expect(card.locator(".test-banner")).to_contain_text(re.compile("TEST PAYMENT|测试"))
    expect(card.locator(".pay-amount")).to_have_text("CNY 12.34")
    expect(card.locator("code")).to_have_text(attempt_no)
    expect(card.locator("#pay-success")).to_be_visible()
    expect(card.locator("#pay-failure")).to_be_visible()
    screenshot("sandbox-pay")

    card.locator("#pay-success").click()
    result = page.locator("#pay-result")
    expect(result).to_be_visible()
    expect(result).to_have_text(re.compile("Payment received.|已收到"))
    expect(result).to_have_class(re.compile(r"\binfo\b"))
    expect(page.locator("#pay-success")).to_have_count(0)  # paid once: no more buttons
    screenshot("sandbox-paid")

    page.goto("/admin/payments")
    attempt_row = page.locator("#attempts tbody tr", has_text=attempt_no)
    expect(attempt_row).to_have_count(1)
    expect(attempt_row).to_contain_text("CNY 12.34")
    expect(attempt_row.locator(".badge")).to_have_class(re.compile(r"\bstatus-paid\b"))
    expect(attempt_row.locator(".badge")).to_have_text("Paid")
    expect(attempt_row).to_contain_text("SBX" + attempt_no)
    notice_row = page.locator("#notices tbody tr", has_text=attempt_no)
    expect(notice_row).to_have_count(1)
    expect(notice_row.locator(".badge")).to_have_attribute("title", "applied")
    expect(notice_row.locator(".badge")).to_have_text("Applied")
    expect(notice_row.locator(".badge")).to_have_class(re.compile(r"\bon\b"))
    screenshot("admin-payments")

    # the dashboard counts it
    page.locator(".sidebar nav a", has_text="Dashboard").click()
    expect(stat(page, "Paid payments")).to_have_text("1")
    expect(stat(page, "Enabled plugins")).to_have_text("1")

    # the same pages in Chinese, to look at
    page.locator(".sidebar .lang a", has_text="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", ZH)
    expect(page.locator("h1")).to_have_text(chinese("Dashboard", "控制台"))
    screenshot("admin-dashboard-zh")
    page.goto("/admin/payments")
    expect(page.locator("#attempts .badge")).to_have_count(1)
    screenshot("admin-payments-zh")
    page.goto(f"/pay/sandbox/pay/{attempt_no}")
    expect(page.locator("#pay-result")).to_have_text(chinese("Payment received.", "已收到付款。"))
    screenshot("sandbox-paid-zh")


def test_admin_test_payment_that_fails(page, admin, registry, screenshot):
    set_plugin(registry, "sandbox", enabled=True, secret=SECRET)
    sign_in(page, *admin)
    page.wait_for_url(re.compile(r"/admin$"))
    page.goto("/admin/payments")
    page.locator("form#test-payment button[type=submit]").click()
    page.wait_for_url(re.compile(r"/pay/sandbox/pay/P\w+$"))
    expect(page.locator(".pay-amount")).to_have_text("CNY 0.01")
    page.locator("header .lang a", has_text="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", ZH)
    expect(page.locator(".test-banner")).to_contain_text(chinese("TEST PAYMENT", "测试支付"))
    screenshot("sandbox-pay-zh")
    page.locator("#pay-failure").click()
    expect(page.locator("#pay-result")).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#pay-result")).to_have_text(chinese("The payment failed.", "支付失败。"))
    page.goto("/admin/payments")
    badge = page.locator("#attempts .badge")
    expect(badge).to_have_count(1)
    expect(badge).to_have_class(re.compile(r"\bstatus-failed\b"))
    expect(badge).to_have_text(chinese("Failed", "失败"))  # the admin chose Chinese on the pay page
    expect(page.locator("#notices .badge")).to_have_attribute("title", "not_paid")


def test_test_payment_with_a_bad_amount_is_refused(page, admin, registry):
    set_plugin(registry, "sandbox", enabled=True, secret=SECRET)
    sign_in(page, *admin)
    page.wait_for_url(re.compile(r"/admin$"))
    page.goto("/admin/payments")
    page.locator("form#test-payment input[name=amount]").fill("-1")
    page.locator("form#test-payment button[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/payments$"))
    expect(page.locator(".flash p.error")).to_contain_text("positive amount")
    expect(page.locator("#attempts tbody tr")).to_have_count(0)
