"""CSRF, login lockout, roles, tokens, sessions, passwords."""
import datetime as dt

import pytest

from kameng import accounts, passwords
from kameng.testing import ADMIN_PASSWORD, app_request, login


def test_login_post_without_csrf_token_is_rejected(testapp, admin):
    resp = testapp.post("/login", {"email": admin[0], "password": admin[1]}, status=400)
    assert "The form has expired" in resp.text
    assert "kameng_session" not in {c.name for c in testapp.cookiejar if c.value and "uid" in c.value}
    testapp.get("/admin", status=302)  # still signed out


def test_admin_action_without_csrf_token_is_rejected(admin_app, registry):
    admin_app.post("/admin/plugins/sandbox/toggle", {"enabled": "1"}, status=400)
    admin_app.post("/admin/plugins/sandbox/toggle", {"enabled": "1", "csrf_token": "forged"}, status=400)
    with app_request(registry) as req:
        assert "sandbox" not in req.enabled_plugins


def test_cross_origin_post_is_rejected_even_with_token(admin_app):
    page = admin_app.get("/admin/settings")
    form = page.forms["shop-settings"]
    fields = dict(form.submit_fields())
    resp = admin_app.post("/admin/settings", fields, headers={"Origin": "https://evil.example"},
                          extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"}, status=400)
    assert "did not come from this site" in resp.text


def test_lockout_after_repeated_failures(testapp, admin, registry):
    for _ in range(4):
        assert "Wrong email or password." in login(testapp, admin[0], "wrong-password").text
    resp = login(testapp, admin[0], "wrong-password")
    assert resp.status_int == 429 and "locked" in resp.text
    # even the right password is refused while locked
    resp = login(testapp, admin[0], admin[1])
    assert resp.status_int == 429 and "locked" in resp.text
    testapp.get("/admin", status=302)
    with app_request(registry) as req:
        user = accounts.find_user(req.db, admin[0])
        assert user.locked_until > dt.datetime.now(dt.timezone.utc)
        user.locked_until = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    assert login(testapp, admin[0], admin[1]).status_int == 302


def test_unknown_account_gets_the_same_answer(testapp):
    resp = login(testapp, "nobody@example.com", "whatever-password")
    assert resp.status_int == 400 and "Wrong email or password." in resp.text


def test_login_redirect_never_leaves_the_site(testapp, admin):
    page = testapp.get("/login?next=//evil.example/x")
    form = page.forms["login-form"]
    form["email"], form["password"] = admin
    assert form.submit().location == "http://localhost/admin"
    testapp.reset()
    page = testapp.get("/login?next=/admin/plugins")
    form = page.forms["login-form"]
    form["email"], form["password"] = admin
    assert form.submit().location == "http://localhost/admin/plugins"


def test_session_cookie_flags(testapp, admin):
    resp = login(testapp, *admin)
    cookie = [h for k, h in resp.headerlist if k == "Set-Cookie" and h.startswith("kameng_session=")][-1]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_roles(testapp, registry):
    with app_request(registry) as req:
        accounts.create_user(req.db, "buyer@example.com", "buyer-password-1", role="buyer")
    testapp.get("/admin", status=302)  # anonymous: to the login page
    login(testapp, "buyer@example.com", "buyer-password-1")
    testapp.get("/admin", status=403)
    testapp.get("/admin/plugins", status=403)


def test_password_reset_ends_other_sessions(admin_app, registry, admin):
    admin_app.get("/admin", status=200)
    with app_request(registry) as req:
        accounts.find_user(req.db, admin[0]).set_password("a-brand-new-password")
    admin_app.get("/admin", status=302)


def test_api_tokens(testapp, registry, admin):
    with app_request(registry) as req:
        admin_user = accounts.find_user(req.db, admin[0])
        buyer = accounts.create_user(req.db, "b@example.com", "buyer-password-1")
        admin_token = accounts.create_token(req.db, admin_user, "ops")
        buyer_token = accounts.create_token(req.db, buyer, "mine")
    assert testapp.get("/api/v1/admin/plugins", status=401).json["error"]["code"] == "unauthorized"
    testapp.get("/api/v1/admin/plugins", headers={"Authorization": "Bearer kmg_wrong"}, status=401)
    assert testapp.get("/api/v1/admin/plugins", headers={"Authorization": f"Bearer {buyer_token}"},
                       status=403).json["error"]["code"] == "forbidden"
    assert testapp.get("/api/v1/admin/plugins", headers={"Authorization": f"Bearer {admin_token}"}).json["items"]
    with app_request(registry) as req:
        stored = req.db.scalars(accounts.select(accounts.ApiToken.token_hash)).all()
    assert admin_token not in stored and buyer_token not in stored


def test_api_with_session_cookie_needs_csrf_header(admin_app):
    admin_app.patch_json("/api/v1/admin/plugins/sandbox", {"enabled": False}, status=400)
    token = admin_app.get("/admin").html.find("input", {"name": "csrf_token"})["value"]
    admin_app.patch_json("/api/v1/admin/plugins/sandbox", {"enabled": False}, headers={"X-CSRF-Token": token})


def test_password_hashes_are_argon2id():
    encoded = passwords.hash_password("correct horse battery")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password("correct horse battery", encoded)
    assert not passwords.verify_password("correct horse batterY", encoded)
    assert not passwords.verify_password("x", "")
    assert not passwords.verify_password("x", "$argon2id$v=19$m=99999999,t=2,p=1$AAAA$AAAA")
    assert passwords.hash_password("same") != passwords.hash_password("same")  # salted


def test_argon2id_known_answer():
    """RFC 9106 style check with an independent reference value: Argon2id of
    "password" / salt "somesalt", t=2, m=65536, p=1, 32 bytes, as printed by
    the reference implementation's `argon2 somesalt -id -t 2 -m 16 -p 1`."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    out = Argon2id(salt=b"somesalt", length=32, iterations=2, lanes=1, memory_cost=65536).derive(b"password")
    assert out.hex() == "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"


@pytest.mark.parametrize("password", ["", "short"])
def test_weak_passwords_refused(registry, password):
    with app_request(registry) as req, pytest.raises(accounts.AccountError):
        accounts.create_user(req.db, "x@example.com", password)


def test_admin_password_fixture_is_strong_enough():
    accounts.check_password_strength(ADMIN_PASSWORD)
