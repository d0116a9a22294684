"""Referral codes and binding: a code per account, made lazily; the
referral cookie from ``?ref=`` or the landing link; the register form's
field; bound once; no account its own referrer, no loops."""
from urllib.parse import urlsplit

import pytest
import webtest
from distribution_helpers import PASSWORD, code_of, enable, hook_request, register
from sqlalchemy import func, select

from kameng import accounts
from kameng.errors import APIError
from kameng.testing import app_request, set_plugin

from kameng_distribution import members
from kameng_distribution.models import Member


def referrer_of(registry, user_id):
    with app_request(registry) as req:
        member = members.get(req.db, user_id)
        return (member.referrer_id, member.bound_via) if member is not None else (None, None)


def user_id(registry, email):
    with app_request(registry) as req:
        return accounts.find_user(req.db, email).id


def test_codes_are_short_unique_and_made_once(dreg, shop):
    ids = [register(dreg, f"c{i}@example.com") for i in range(20)]
    codes = [code_of(dreg, uid) for uid in ids]
    assert len(set(codes)) == 20
    assert all(len(c) == members.CODE_LENGTH and set(c) <= set(members.ALPHABET) for c in codes)
    assert [code_of(dreg, uid) for uid in ids] == codes  # asked again: the same
    assert members.normalize_code(f" {codes[0].lower()} ") == codes[0]
    assert members.normalize_code("abc") is None and members.normalize_code("AB-CD-EF") is None


def test_the_form_field_binds_and_an_unknown_typed_code_refuses(dreg, shop):
    alice = register(dreg, "alice@example.com")
    bob = register(dreg, "bob@example.com", code=code_of(dreg, alice).lower())
    assert referrer_of(dreg, bob) == (alice, "form")
    with pytest.raises(APIError) as exc, hook_request(dreg, post={"referral_code": "NOSUCH99"}) as req:
        user = accounts.create_user(req.db, "carol@example.com", PASSWORD)
        req.hooks.kameng_user_registered(request=req, user=user)
    assert exc.value.code == "invalid_referral_code"


def test_the_cookie_binds_and_a_stale_cookie_is_ignored(dreg, shop):
    alice = register(dreg, "alice@example.com")
    bob = register(dreg, "bob@example.com", code=code_of(dreg, alice), via="cookie")
    assert referrer_of(dreg, bob) == (alice, "cookie")
    carol = register(dreg, "carol@example.com", code="GONE2345", via="cookie")
    assert referrer_of(dreg, carol) == (None, "")
    # a typed code wins over the cookie
    dave = None
    with hook_request(dreg, post={"referral_code": code_of(dreg, carol)}, cookie=code_of(dreg, alice)) as req:
        user = accounts.create_user(req.db, "dave@example.com", PASSWORD)
        req.hooks.kameng_user_registered(request=req, user=user)
        dave = user.id
    assert referrer_of(dreg, dave) == (carol, "form")


def test_bound_once(dreg, shop):
    alice, carol = register(dreg, "alice@example.com"), register(dreg, "carol@example.com")
    bob = register(dreg, "bob@example.com", code=code_of(dreg, alice))
    with app_request(dreg) as req:
        assert members.bind(req.db, bob, members.get(req.db, carol), "form") is False
    assert referrer_of(dreg, bob) == (alice, "form")


def test_no_self_referral_and_no_loops(dreg, shop):
    a = register(dreg, "a@example.com")
    b = register(dreg, "b@example.com", code=code_of(dreg, a))
    c = register(dreg, "c@example.com", code=code_of(dreg, b))
    with app_request(dreg) as req:
        assert members.bind(req.db, a, members.get(req.db, a), "form") is False
        assert members.set_referrer(req.db, a, a) is False  # itself
        assert members.set_referrer(req.db, a, c) is False  # c is below a: a loop
        assert members.set_referrer(req.db, a, b) is False
        assert members.chain(req.db, c, 3) == [b, a]
    assert referrer_of(dreg, a) == (None, "")
    with app_request(dreg) as req:  # moving c up to a is fine
        assert members.set_referrer(req.db, c, a) is True
        assert members.chain(req.db, c, 3) == [a]


def test_register_form_binds_through_the_cookie_set_by_a_ref_link(dreg, dist_app, shop):
    alice = register(dreg, "alice@example.com")
    code = code_of(dreg, alice)
    browser = webtest.TestApp(dist_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    home = browser.get(f"/?ref={code.lower()}")
    cookie = home.headers["Set-Cookie"]
    assert cookie.startswith(f"kameng_ref={code};")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=2592000" in cookie
    assert "secure" not in cookie.lower()
    page = browser.get("/register")
    field = page.forms["register-form"]["referral_code"]
    assert field.value == code  # the field shows the code the cookie holds
    form = page.forms["register-form"]
    form["email"], form["password"], form["password2"] = "bob@example.com", PASSWORD, PASSWORD
    form["referral_code"] = ""  # left empty: the cookie decides
    assert form.submit().status_int == 302
    assert referrer_of(dreg, user_id(dreg, "bob@example.com")) == (alice, "cookie")


def test_register_form_with_a_typed_code_and_a_wrong_one(dreg, web, shop):
    alice = register(dreg, "alice@example.com")
    page = web.get("/register")
    form = page.forms["register-form"]
    form["email"], form["password"], form["password2"] = "bob@example.com", PASSWORD, PASSWORD
    form["referral_code"] = "WRONG234"
    resp = form.submit(expect_errors=True)
    assert resp.status_int == 422 and "This referral code does not exist" in resp.text
    assert resp.forms["register-form"]["referral_code"].value == "WRONG234"
    with app_request(dreg) as req:
        assert accounts.find_user(req.db, "bob@example.com") is None  # nothing written
    form = resp.forms["register-form"]
    form["password"], form["password2"] = PASSWORD, PASSWORD
    form["referral_code"] = code_of(dreg, alice)
    assert form.submit().status_int == 302
    assert referrer_of(dreg, user_id(dreg, "bob@example.com")) == (alice, "form")


def test_a_ref_link_over_https_sets_a_secure_cookie_and_the_landing_link_redirects(dreg, dist_app, shop):
    code = code_of(dreg, register(dreg, "alice@example.com"))
    browser = webtest.TestApp(dist_app, extra_environ={"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "https"})
    assert "; secure" in browser.get(f"/p/{shop}?ref={code}").headers["Set-Cookie"].lower()
    landing = browser.get(f"/-/distribution/r/{code}", status=302)
    assert urlsplit(landing.headers["Location"]).path == "/"
    assert landing.headers["Set-Cookie"].startswith(f"kameng_ref={code};")


@pytest.mark.parametrize("ref", ["NOSUCH99", "<script>", "", "a" * 40, "%FF"])
def test_unknown_or_malformed_codes_set_no_cookie(dreg, web, shop, ref):
    register(dreg, "alice@example.com")
    resp = web.get(f"/?ref={ref}", expect_errors=True)
    assert "kameng_ref" not in resp.headers.get("Set-Cookie", "")
    landing = web.get(f"/-/distribution/r/{ref or 'X'}", expect_errors=True)
    assert "kameng_ref" not in landing.headers.get("Set-Cookie", "")


def test_disabled_plugin_sets_no_cookie_binds_nobody_and_its_landing_link_is_404(dreg, web, shop):
    alice = register(dreg, "alice@example.com")
    code = code_of(dreg, alice)
    set_plugin(dreg, "distribution", enabled=False)
    assert "kameng_ref" not in web.get(f"/?ref={code}").headers.get("Set-Cookie", "")
    web.get(f"/-/distribution/r/{code}", status=404)
    page = web.get("/register")
    assert "referral_code" not in page.text
    web.set_cookie("kameng_ref", code)
    form = page.forms["register-form"]
    form["email"], form["password"], form["password2"] = "bob@example.com", PASSWORD, PASSWORD
    assert form.submit().status_int == 302
    with app_request(dreg) as req:
        bob = accounts.find_user(req.db, "bob@example.com").id
        assert req.db.scalar(select(func.count()).select_from(Member).where(Member.user_id == bob)) == 0
    enable(dreg)  # enabled again: the code still works
    assert web.get(f"/?ref={code}").headers["Set-Cookie"].startswith("kameng_ref=")
