"""The anti-fraud wiring of the buyer's forms: ``kameng_risk_check`` is
asked before a sign-in, a registration, an order lookup, a password-reset
request and a coupon, and its deny is the answer (429 with Retry-After for
``rate_limited``); the ``form.*`` slots are drawn inside their forms and
what a plugin puts there is posted with them."""
import kameng_accountstest as plug
import pytest
from accounts_helpers import (EXTRA_PLUGINS, NO_LIMITS, PASSWORD, browser, enable_plugin, load_user, make_user,
                              register, sign_in, signed_in_email, text_of, user_count)
from orders_helpers import enable_sandbox, make_sku
from sqlalchemy import select

from kameng import jobs
from kameng.testing import app_request, run_jobs, set_plugin

QUERY_PASSWORD = "guest-pass-1"
FORM_SLOTS = {"form.login": "#login-form", "form.register": "#register-form",
              "form.password_reset": "#forgot-form", "form.lookup": "#lookup-number"}


@pytest.fixture(scope="module")
def aapp(make_app):
    return make_app(extra_plugins=EXTRA_PLUGINS, **NO_LIMITS)


@pytest.fixture
def shop(aapp):
    """The plugin and the sandbox on; RISK1 (5.00, 5 keys); a guest's order.
    Gives ``(product id, order number, access token)``."""
    registry = aapp.registry
    enable_plugin(registry)
    enable_sandbox(registry)
    product_id, _sku = make_sku(registry, "RISK1", price="5.00", keys=5)
    resp = browser(aapp).post_json("/api/v1/orders", {
        "sku": "RISK1", "quantity": 1, "contact": "guest@example.com", "query_password": QUERY_PASSWORD,
        "payment_method": "sandbox"}, status=201)
    yield product_id, resp.json["order_no"], resp.json["access_token"]
    plug.reset()


def refused(resp, status=429):
    assert resp.status_int == status, resp.text[:500]
    if status == 429:
        assert resp.headers["Retry-After"] == "30"


def checks(action):
    return [(subject, captcha) for a, subject, captcha in plug.CHECKS if a == action]


# -- sign-in ---------------------------------------------------------------------------------------


def test_a_denied_sign_in_is_refused_before_the_password_is_checked(aapp, shop):
    uid = make_user(aapp.registry, "victim@example.com", phone="13800138000")
    plug.deny("login")
    web = browser(aapp)
    resp = sign_in(web, "victim@example.com", PASSWORD)
    refused(resp)
    assert "Too many attempts" in text_of(resp, "#login-error")
    assert signed_in_email(web) is None
    refused(sign_in(browser(aapp), "138 0013 8000", "wrong-password-1"))
    assert load_user(aapp.registry, uid)["last_login_at"] is None
    with app_request(aapp.registry) as req:  # the wrong password above was never tried
        from kameng.accounts import User

        assert req.db.get(User, uid).failed_logins == 0
    subjects = [s for s, _c in checks("login")]
    assert subjects[0]["email"] == "victim@example.com" and subjects[1]["phone"] == "13800138000"
    assert all(s["ip"] for s in subjects)
    # other codes: a captcha to solve, a block
    plug.deny("login", code="captcha_required", message="Solve the puzzle first.")
    resp = sign_in(browser(aapp), "victim@example.com", PASSWORD)
    refused(resp, 400)
    assert text_of(resp, "#login-error") == "Solve the puzzle first."
    plug.deny("login", code="blocked")
    refused(sign_in(browser(aapp), "victim@example.com", PASSWORD), 403)
    plug.VERDICTS.clear()
    assert sign_in(browser(aapp), "victim@example.com", PASSWORD).status_int == 302


# -- registering -----------------------------------------------------------------------------------


def test_a_denied_registration_writes_nothing(aapp, shop):
    plug.deny("register")
    resp = register(browser(aapp), "bot@example.com", phone="13900139000")
    refused(resp)
    assert "Too many attempts" in text_of(resp, "#register-error")
    assert user_count(aapp.registry) == 0 and plug.REGISTERED == []
    [(subject, _captcha)] = checks("register")
    assert (subject["email"], subject["phone"]) == ("bot@example.com", "13900139000")


# -- order lookup ----------------------------------------------------------------------------------


def test_a_denied_lookup_is_refused_on_the_page_and_the_api(aapp, shop):
    _pid, order_no, token = shop
    plug.deny("lookup")
    web = browser(aapp)
    form = web.get("/query").forms["lookup-number"]
    form["order_no"], form["query_password"] = order_no, QUERY_PASSWORD
    resp = form.submit(expect_errors=True)
    refused(resp)
    assert "Too many attempts" in text_of(resp, "#lookup-error")
    form = resp.forms["lookup-contact"]
    form["contact"], form["query_password"] = "guest@example.com", QUERY_PASSWORD
    refused(form.submit(expect_errors=True))
    resp = web.get(f"/api/v1/orders/{order_no}", {"query_password": QUERY_PASSWORD}, expect_errors=True)
    refused(resp)
    assert resp.json["error"]["code"] == "rate_limited"
    assert [s.get("order_no") or s.get("contact") for s, _c in checks("lookup")] == [
        order_no, "guest@example.com", order_no]
    # the access token is no lookup: the buyer's page keeps polling
    assert web.get(f"/api/v1/orders/{order_no}", {"token": token}).status_int == 200
    plug.VERDICTS.clear()
    assert web.get(f"/api/v1/orders/{order_no}", {"query_password": QUERY_PASSWORD}).status_int == 200


# -- password reset ----------------------------------------------------------------------------------


def test_a_denied_password_reset_sends_nothing(aapp, shop):
    make_user(aapp.registry, "forgetful@example.com")
    plug.deny("password_reset")
    form = browser(aapp).get("/password/forgot").forms["forgot-form"]
    form["identifier"] = "forgetful@example.com"
    resp = form.submit(expect_errors=True)
    refused(resp)
    assert "Too many attempts" in text_of(resp, "#forgot-error") and not text_of(resp, "#forgot-sent")
    run_jobs(aapp.registry)
    assert plug.NOTES == []
    with app_request(aapp.registry) as req:
        from kameng.accounts import PasswordReset

        assert req.db.scalars(select(PasswordReset)).all() == []
    assert checks("password_reset")[0][0]["email"] == "forgetful@example.com"


# -- coupons --------------------------------------------------------------------------------------


def test_a_denied_coupon_is_refused_on_the_checkout_page_and_the_api(aapp, shop):
    product_id, _no, _token = shop
    plug.deny("coupon")
    web = browser(aapp)
    assert web.get(f"/checkout/{product_id}", {"sku": "RISK1", "quantity": "1"}).status_int == 200  # no coupon
    resp = web.get(f"/checkout/{product_id}", {"sku": "RISK1", "quantity": "1", "coupon": "GUESS1"},
                   expect_errors=True)
    refused(resp)
    assert "Too many attempts" in text_of(resp, "#checkout-error")
    plug.VERDICTS.clear()
    form = web.get(f"/checkout/{product_id}", {"sku": "RISK1", "quantity": "1", "coupon": "GUESS2"}) \
        .forms["checkout-form"]
    form["contact"], form["query_password"] = "buyer@example.com", "pass-1234"
    plug.deny("coupon")
    refused(form.submit(expect_errors=True))
    resp = browser(aapp).post_json("/api/v1/orders", {
        "sku": "RISK1", "quantity": 1, "contact": "buyer@example.com", "query_password": "pass-1234",
        "payment_method": "sandbox", "coupon": "GUESS3"}, expect_errors=True)
    refused(resp)
    assert resp.json["error"]["code"] == "rate_limited"
    coupons = [s["coupon"] for s, _c in checks("coupon")]
    assert coupons[0] == "GUESS1" and coupons[-1] == "GUESS3" and "GUESS2" in coupons
    with app_request(aapp.registry) as req:
        from kameng.orders.models import Order

        assert len(req.db.scalars(select(Order)).all()) == 1  # the fixture's guest order alone


def test_the_product_page_posts_a_coupon_to_the_checkout(aapp, shop):
    """The coupon typed on the product page reaches the confirm page and is
    posted with the order (a code no plugin honours is refused, never
    ignored)."""
    product_id, _no, _token = shop
    web = browser(aapp)
    form = web.get(f"/p/{product_id}").forms["buy-form"]
    form["coupon"] = "WELCOME10"
    page = form.submit()
    assert page.forms["checkout-form"]["coupon"].value == "WELCOME10"
    assert "does not apply" in page.text
    assert len(checks("coupon")) == 1  # the confirm page: one attempt
    checkout = page.forms["checkout-form"]
    checkout["contact"], checkout["query_password"] = "buyer@example.com", "pass-1234"
    resp = checkout.submit(expect_errors=True)
    assert resp.status_int == 409 and "coupon cannot be used" in text_of(resp, "#checkout-error")
    # the order refused and its page drawn again: one more attempt, not two
    assert [s["coupon"] for s, _c in checks("coupon")] == ["WELCOME10", "WELCOME10"]


# -- slots inside the forms ----------------------------------------------------------------------------


def slot_input(slot):
    return f'<input type="hidden" name="captcha" value="solved-{slot}" class="test-captcha">'


def test_the_form_slots_are_drawn_inside_their_forms_and_posted(aapp, shop):
    product_id, order_no, _token = shop
    for slot in (*FORM_SLOTS, "form.order"):
        plug.BLOCKS[slot] = slot_input(slot)
    make_user(aapp.registry, "slots@example.com")
    web = browser(aapp)
    pages = {"form.login": web.get("/login"), "form.register": web.get("/register"),
             "form.password_reset": web.get("/password/forgot"), "form.lookup": web.get("/query")}
    for slot, selector in FORM_SLOTS.items():
        [found] = pages[slot].html.select(f"{selector} input.test-captcha")
        assert found["value"] == f"solved-{slot}", slot
    assert len(pages["form.lookup"].html.select("#lookup-contact input.test-captcha")) == 1
    page = web.get(f"/checkout/{product_id}", {"sku": "RISK1", "quantity": "1"})
    [found] = page.html.select("#checkout-form input.test-captcha")
    assert found["value"] == "solved-form.order"
    # each appears once, only in its form
    assert len(pages["form.login"].html.select("input.test-captcha")) == 1

    # what the slot holds is posted with the form, for the plugin to read
    sign_in(web, "slots@example.com")
    form = browser(aapp).get("/password/forgot").forms["forgot-form"]
    form["identifier"] = "slots@example.com"
    form.submit()
    form = browser(aapp).get("/query").forms["lookup-number"]
    form["order_no"], form["query_password"] = order_no, QUERY_PASSWORD
    form.submit(expect_errors=True)
    register(browser(aapp), "slots2@example.com")
    assert checks("login")[-1][1] == "solved-form.login"
    assert checks("password_reset")[-1][1] == "solved-form.password_reset"
    assert checks("lookup")[-1][1] == "solved-form.lookup"
    assert checks("register")[-1][1] == "solved-form.register"


def test_with_the_plugin_disabled_the_forms_work_without_slots(aapp, shop):
    product_id, order_no, _token = shop
    for slot in (*FORM_SLOTS, "form.order"):
        plug.BLOCKS[slot] = slot_input(slot)
    for action in ("login", "register", "lookup", "password_reset", "coupon"):
        plug.deny(action)
    set_plugin(aapp.registry, "accountstest", enabled=False)
    make_user(aapp.registry, "plain@example.com")
    web = browser(aapp)
    for path in ("/login", "/register", "/password/forgot", "/query", f"/checkout/{product_id}?sku=RISK1"):
        assert not web.get(path).html.select("input.test-captcha"), path
    assert sign_in(web, "plain@example.com").status_int == 302
    assert register(browser(aapp), "plain2@example.com").status_int == 302
    assert web.get(f"/api/v1/orders/{order_no}", {"query_password": QUERY_PASSWORD}).status_int == 200
    assert plug.CHECKS == []
    with app_request(aapp.registry) as req:
        assert req.db.scalars(select(jobs.Job).where(jobs.Job.kind == "kameng.notify")).all() == []
