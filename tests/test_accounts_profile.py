"""A buyer's profile (display name, phone, password; the email read-only),
the ``account.top`` slot, and the order history's filters."""
import kameng_accountstest as plug
import pytest
from accounts_helpers import (EXTRA_PLUGINS, NEW_PASSWORD, NO_LIMITS, PASSWORD, browser, enable_plugin, load_user,
                              make_user, sign_in, signed_in_email, text_of)
from orders_helpers import enable_sandbox, make_sku
from sqlalchemy import update

from kameng import accounts
from kameng.orders.checkout import OrderRequest, create_order
from kameng.orders.models import Order
from kameng.testing import app_request


@pytest.fixture(scope="module")
def aapp(make_app):
    return make_app(extra_plugins=EXTRA_PLUGINS, **NO_LIMITS, **{"kameng.login.max_failures": "3"})


@pytest.fixture
def buyer(aapp):
    """A signed-in buyer: ``(browser, user id)``."""
    enable_plugin(aapp.registry)
    uid = make_user(aapp.registry, "profile@example.com", phone="13800138000")
    web = browser(aapp)
    assert sign_in(web, "profile@example.com").status_int == 302
    yield web, uid
    plug.reset()


def save(web, **fields):
    form = web.get("/account/profile").forms["profile-form"]
    for name, value in fields.items():
        form[name] = value
    return form.submit(expect_errors=True)


def change(web, current=PASSWORD, new=NEW_PASSWORD, again=None):
    form = web.get("/account/profile").forms["password-form"]
    form["current_password"], form["new_password"] = current, new
    form["new_password2"] = again if again is not None else new
    return form.submit(expect_errors=True)


def test_the_profile_page_shows_the_account(aapp, buyer):
    web, _uid = buyer
    page = web.get("/account/profile")
    email = page.html.select_one("#profile-email")
    assert email["value"] == "profile@example.com" and email.has_attr("readonly") and not email.get("name")
    assert page.forms["profile-form"]["phone"].value == "13800138000"
    assert page.html.select_one(".account-tabs a.active").get_text(strip=True) == "Profile"
    assert browser(aapp).get("/account/profile").status_int == 302  # a visitor is sent to sign in


def test_saving_the_name_and_the_phone(aapp, buyer):
    web, uid = buyer
    resp = save(web, display_name="  Li\u202e Lei\x07  the\tbuyer ", phone="+86 139-0013-9000")
    assert resp.status_int == 303 and "profile is saved" in resp.follow().text
    user = load_user(aapp.registry, uid)
    assert (user["display_name"], user["phone"]) == ("Li Lei the buyer", "+8613900139000")
    assert user["email"] == "profile@example.com"
    assert sign_in(browser(aapp), "+8613900139000").status_int == 302  # the new phone signs in
    assert sign_in(browser(aapp), "13800138000").status_int == 400  # the old one no longer
    # the email cannot be changed by posting it
    csrf = web.get("/account/profile").forms["profile-form"]["csrf_token"].value
    web.post("/account/profile", {"csrf_token": csrf, "form": "profile", "email": "other@example.com",
                                  "display_name": "x" * 300, "phone": ""}, status=303)
    user = load_user(aapp.registry, uid)
    assert (user["email"], user["phone"], len(user["display_name"])) == ("profile@example.com", None, 100)


def test_a_phone_of_another_account_or_a_bad_one_is_refused(aapp, buyer):
    web, uid = buyer
    make_user(aapp.registry, "other@example.com", phone="13700137000")
    resp = save(web, display_name="New name", phone="137 0013 7000")
    assert resp.status_int == 400 and "belongs to another account" in text_of(resp, "#profile-error")
    assert resp.forms["profile-form"]["phone"].value == "137 0013 7000"
    resp = save(web, phone="call me")
    assert resp.status_int == 400 and "6 to 15 digits" in text_of(resp, "#profile-error")
    user = load_user(aapp.registry, uid)
    assert (user["display_name"], user["phone"]) == ("", "13800138000")  # nothing saved
    # saving its own phone again is no clash
    assert save(web, phone="13800138000").status_int == 303


def test_changing_the_password_keeps_this_session_and_ends_the_others(aapp, buyer):
    web, uid = buyer
    other = browser(aapp)
    assert sign_in(other, "13800138000").status_int == 302
    before = load_user(aapp.registry, uid)
    resp = change(web)
    assert resp.status_int == 303 and "password is changed" in resp.follow().text
    assert load_user(aapp.registry, uid)["sv"] > before["sv"]
    assert signed_in_email(web) == "profile@example.com"  # this browser stays signed in
    assert web.get("/account").status_int == 200
    assert signed_in_email(other) is None  # the other one is out
    assert sign_in(browser(aapp), "profile@example.com", PASSWORD).status_int == 400
    assert sign_in(browser(aapp), "profile@example.com", NEW_PASSWORD).status_int == 302
    assert load_user(aapp.registry, uid)["last_login_at"] is not None


def test_password_change_errors(aapp, buyer):
    web, uid = buyer
    before = load_user(aapp.registry, uid)
    for kwargs, message in [({"current": "wrong-password-1"}, "current password is wrong"),
                            ({"new": "short"}, "at least 10"),
                            ({"again": "something-else-1"}, "differ")]:
        resp = change(web, **kwargs)
        assert resp.status_int == 400 and message in text_of(resp, "#password-error"), kwargs
    assert load_user(aapp.registry, uid)["hash"] == before["hash"]
    assert signed_in_email(web) == "profile@example.com"


def test_guessing_the_current_password_locks_like_sign_ins(aapp, buyer):
    web, uid = buyer
    before = load_user(aapp.registry, uid)["hash"]
    for _ in range(2):
        assert change(web, current="wrong-password-1").status_int == 400
    resp = change(web, current="wrong-password-1")
    assert resp.status_int == 429
    assert change(web).status_int == 429  # even the right one, for a while
    assert sign_in(browser(aapp), "profile@example.com", PASSWORD).status_int == 429
    assert load_user(aapp.registry, uid)["hash"] == before  # nothing changed


def test_the_overview_has_the_account_top_slot_and_links_the_profile(aapp, buyer):
    web, _uid = buyer
    plug.BLOCKS["account.top"] = '<p id="from-plugin">Invite friends</p>'
    page = web.get("/account")
    assert page.html.select_one(".account-page #from-plugin").get_text() == "Invite friends"
    assert page.html.select_one('a[href$="/account/profile"]') is not None


# -- the order history -----------------------------------------------------------------------------


def place_orders(registry, user_id, n) -> list[str]:
    with app_request(registry) as req:
        user = req.db.get(accounts.User, user_id)
        return [create_order(req, OrderRequest(sku="HIST1", quantity=1, contact="", query_password="",
                                               payment_method="sandbox"), user=user)[0].order_no
                for _ in range(n)]


def shown(page) -> list[str]:
    return [a.get_text(strip=True) for a in page.html.select("#order-table td a.mono")]


def test_order_history_filters_and_pages(aapp, buyer):
    web, uid = buyer
    registry = aapp.registry
    enable_sandbox(registry)
    make_sku(registry, "HIST1", price="1.00", keys=0, type_="manual", stock=None, max_quantity=5)
    numbers = place_orders(registry, uid, 24)
    delivered = numbers[:21]
    with app_request(registry) as req:
        req.db.execute(update(Order).where(Order.order_no.in_(delivered)).values(status="delivered"))
    # someone else's order never shows
    other = make_user(registry, "someone@example.com")
    theirs = place_orders(registry, other, 1)[0]

    page = web.get("/account/orders")
    assert len(shown(page)) == 20 and theirs not in shown(page)
    page = web.get("/account/orders", {"status": "pending"})
    assert sorted(shown(page)) == sorted(numbers[21:])
    assert page.forms["order-filter"]["status"].value == "pending"
    # 21 delivered: two pages, and the next page keeps the filter
    page = web.get("/account/orders", {"status": "delivered"})
    assert len(shown(page)) == 20
    nxt = page.html.select_one("a[rel=next]")["href"]
    assert "status=delivered" in nxt
    page2 = web.get(nxt)
    assert len(shown(page2)) == 1 and set(shown(page2)) | set(shown(page)) == set(delivered)
    assert "status=delivered" in page2.html.select_one("a[rel=prev]")["href"]
    # a search by (part of) the order number
    page = web.get("/account/orders", {"q": numbers[5]})
    assert shown(page) == [numbers[5]]
    page = web.get("/account/orders", {"q": f" {numbers[5][-10:]} "})
    assert numbers[5] in shown(page)
    assert shown(web.get("/account/orders", {"q": theirs})) == []
    # nonsense filters are ignored, never an error
    for params in ({"status": "nope"}, {"q": "%_'\x00"}, {"page": "-1"}, {"q": "abc", "status": "expired"}):
        assert web.get("/account/orders", params).status_int == 200
    assert shown(web.get("/account/orders", {"q": "%"})) == shown(web.get("/account/orders"))
    assert "No orders here" in web.get("/account/orders", {"status": "refunded"}).text
