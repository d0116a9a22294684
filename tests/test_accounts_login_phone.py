"""Signing in with the email (any case) or the phone number, one lockout
count for both names, and ``GET /api/v1/account``."""
import pytest
import webtest
from accounts_helpers import EXTRA_PLUGINS, NO_LIMITS, PASSWORD, browser, make_user, sign_in, signed_in_email, text_of

from kameng import accounts, wallet
from kameng.levels import MemberLevel
from kameng.testing import app_request

LOCK = {"kameng.login.max_failures": "3", "kameng.login.lockout_minutes": "15"}


@pytest.fixture(scope="module")
def aapp(make_app):
    return make_app(extra_plugins=EXTRA_PLUGINS, **NO_LIMITS, **LOCK)


@pytest.mark.parametrize("typed", ["13800138000", "138 0013 8000", "138-0013-8000", " 13800138000 "])
def test_sign_in_with_the_phone(aapp, typed):
    make_user(aapp.registry, "phone.user@example.com", phone="13800138000")
    web = browser(aapp)
    resp = sign_in(web, typed)
    assert resp.status_int == 302, text_of(resp, "#login-error")
    assert signed_in_email(web) == "phone.user@example.com"


def test_sign_in_with_the_email_in_any_case(aapp):
    make_user(aapp.registry, "Mixed.Case@example.com")
    for typed in ("Mixed.Case@example.com", "mixed.case@EXAMPLE.com", "MIXED.CASE@example.com"):
        web = browser(aapp)
        assert sign_in(web, typed).status_int == 302, typed
        assert signed_in_email(web) == "Mixed.Case@example.com"


def test_an_international_phone_is_its_own_name(aapp):
    make_user(aapp.registry, "intl@example.com", phone="+8613800138000")
    assert sign_in(browser(aapp), "+86 138 0013 8000").status_int == 302
    assert sign_in(browser(aapp), "13800138000").status_int == 400  # another number


def test_wrong_answers_tell_nothing_about_who_exists(aapp):
    make_user(aapp.registry, "exists@example.com", phone="13700137000")
    answers = []
    for typed in ("13700137000", "13700137999", "exists@example.com", "nobody@example.com", "not a name"):
        resp = sign_in(browser(aapp), typed, "wrong-password-1")
        answers.append((resp.status_int, text_of(resp, "#login-error")))
    assert answers == [(400, "Wrong email or password.")] * 5


def test_the_email_and_the_phone_share_one_lockout(aapp):
    """Three wrong passwords lock the account, however they were split
    between its two names; then even the right one is refused by both."""
    make_user(aapp.registry, "locked@example.com", phone="13600136000")
    assert sign_in(browser(aapp), "locked@example.com", "wrong-password-1").status_int == 400
    assert sign_in(browser(aapp), "136 0013 6000", "wrong-password-2").status_int == 400
    assert sign_in(browser(aapp), "LOCKED@example.com", "wrong-password-3").status_int == 429
    for typed in ("13600136000", "locked@example.com"):
        resp = sign_in(browser(aapp), typed, PASSWORD)
        assert resp.status_int == 429 and "Retry-After" in resp.headers, typed


def test_find_user_by_email_or_phone(aapp):
    uid = make_user(aapp.registry, "Find.Me@example.com", phone="+12025550123")
    with app_request(aapp.registry) as req:
        found = {typed: getattr(accounts.find_user(req.db, typed), "id", None)
                 for typed in ("Find.Me@example.com", "find.me@EXAMPLE.COM", "+1 202-555-0123", "+12025550123",
                               "12025550123", "find.me", "", "@", "+", "Find.Me@example.com\x00")}
    assert found == {"Find.Me@example.com": uid, "find.me@EXAMPLE.COM": uid, "+1 202-555-0123": uid,
                     "+12025550123": uid, "12025550123": None, "find.me": None, "": None, "@": None, "+": None,
                     "Find.Me@example.com\x00": None}


def test_the_login_page_links_the_password_reset_and_keeps_the_name(aapp):
    page = browser(aapp).get("/login")
    assert page.html.select_one("#forgot-link")["href"].endswith("/password/forgot")
    resp = sign_in(browser(aapp), "138 0000 0000", "wrong-password-1")
    assert resp.forms["login-form"]["email"].value == "138 0000 0000"
    assert resp.forms["login-form"]["password"].value == ""


# -- GET /api/v1/account --------------------------------------------------------------------------


def test_the_account_api(aapp):
    registry = aapp.registry
    uid = make_user(registry, "api.user@example.com", phone="13500135000")
    with app_request(registry) as req:
        req.db.add(MemberLevel(code="gold", name="Gold member", discount_bp=500, rank=2))
        user = req.db.get(accounts.User, uid)
        user.level, user.display_name = "gold", "Api User"
        wallet.post(req.db, uid, 12345, "CNY", "admin", note="test credit")
        token = accounts.create_token(req.db, user, "tests")
    anonymous = browser(aapp)
    resp = anonymous.get("/api/v1/account", status=401)
    assert resp.json["error"]["code"] == "unauthorized"
    expected = {"id": uid, "email": "api.user@example.com", "phone": "13500135000", "display_name": "Api User",
                "role": "buyer", "level": {"code": "gold", "name": "Gold member"}, "tier": None,
                "balance": "123.45", "currency": "CNY"}
    web = browser(aapp)
    sign_in(web, "api.user@example.com")
    resp = web.get("/api/v1/account")
    assert resp.json == expected and resp.headers["Cache-Control"] == "no-store"
    bearer = webtest.TestApp(aapp, extra_environ={"REMOTE_ADDR": "10.8.0.1"})
    assert bearer.get("/api/v1/account", headers={"Authorization": f"Bearer {token}"}).json == expected
    assert bearer.get("/api/v1/account", headers={"Authorization": "Bearer kmg_not-a-token"}, status=401)
    # the answer is the one the OpenAPI document describes
    jsonschema = pytest.importorskip("jsonschema")
    doc = anonymous.get("/api/v1/openapi.json").json["paths"]["/api/v1/account"]["get"]
    assert set(doc["responses"]) == {"200", "401"}
    jsonschema.validate(expected, doc["responses"]["200"]["content"]["application/json"]["schema"])


def test_the_account_api_without_a_level_and_for_an_agent(aapp):
    registry = aapp.registry
    uid = make_user(registry, "agent@example.com", role="agent")
    with app_request(registry) as req:
        user = req.db.get(accounts.User, uid)
        user.tier, user.level = "t1", "deleted-level"
    web = browser(aapp)
    sign_in(web, "agent@example.com")
    body = web.get("/api/v1/account").json
    assert (body["role"], body["tier"], body["phone"], body["balance"]) == ("agent", "t1", None, "0.00")
    assert body["level"] == {"code": "deleted-level", "name": "deleted-level"}
    assert set(body) == {"id", "email", "phone", "display_name", "role", "level", "tier", "balance", "currency"}
