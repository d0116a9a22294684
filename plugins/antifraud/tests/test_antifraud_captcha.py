"""The self-hosted captcha: the picture, the answer (right, wrong, used,
expired), the API headers and the storefront forms."""
from __future__ import annotations

import io
import re
import time

import pytest
from antifraud_helpers import (answer_for, captcha_headers, error, fresh_window, new_captcha, place, risk_check,
                               setup_shop, sign_up)
from PIL import Image

from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, set_plugin
from kameng_antifraud import captcha


def _form_captcha(page):
    match = re.search(r'name="captcha_id" value="([^"]+)"', page.text)
    assert match, "no captcha in the form"
    return match.group(1)


def test_picture_is_a_png_of_the_challenge(af_testapp, af_registry):
    setup_shop(af_registry, captcha="order")
    made = new_captcha(af_testapp)
    assert set(made) == {"id", "image_url", "expires_in"} and made["expires_in"] == 300
    assert captcha.ID.fullmatch(made["id"])
    resp = af_testapp.get(made["image_url"].replace("http://localhost", ""), status=200)
    assert resp.content_type == "image/png"
    assert resp.headers["Cache-Control"].startswith("no-store")
    assert resp.body.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(resp.body)) as img:
        img.verify()
    with Image.open(io.BytesIO(resp.body)) as img:
        assert img.format == "PNG" and img.size == (captcha.WIDTH, captcha.HEIGHT)
        colors = img.convert("RGB").getcolors(maxcolors=100_000)
        assert colors is not None and len(colors) > 50  # text, noise and lines, not a blank picture
    # drawn afresh each time (the noise differs), the challenge is not used up by looking
    again = af_testapp.get(made["image_url"].replace("http://localhost", ""), status=200)
    assert again.body != resp.body
    answer = answer_for(af_registry, made["id"])
    assert len(answer) == captcha.LENGTH and set(answer) <= set(captcha.ALPHABET)
    assert not set(answer) & set("0O1I2Z5S8B6G")


def test_unknown_picture_is_404(af_testapp, af_registry):
    setup_shop(af_registry)
    af_testapp.get("/-/antifraud/captcha/" + "A" * 24 + ".png", status=404)
    af_testapp.get("/-/antifraud/captcha/bad!id.png", status=404)


def test_order_needs_the_right_answer(af_testapp, af_registry):
    setup_shop(af_registry, captcha="order")
    resp = place(af_testapp)
    assert resp.status_int == 400 and error(resp)["code"] == "captcha_required", resp.text
    assert error(resp)["message"] == "Type the characters shown in the picture."

    made = new_captcha(af_testapp)
    answer = answer_for(af_registry, made["id"])
    wrong = "".join("A" if c != "A" else "C" for c in answer)
    resp = place(af_testapp, headers=captcha_headers(made["id"], wrong))
    assert resp.status_int == 400 and error(resp)["code"] == "captcha_required"
    assert "did not match" in error(resp)["message"]
    # a wrong answer used the challenge up: the right one no longer helps
    resp = place(af_testapp, headers=captcha_headers(made["id"], answer))
    assert resp.status_int == 400, resp.text
    af_testapp.get(f"/-/antifraud/captcha/{made['id']}.png", status=404)

    made = new_captcha(af_testapp)
    answer = answer_for(af_registry, made["id"])
    resp = place(af_testapp, headers=captcha_headers(made["id"], f" {answer.lower()[:2]} {answer.lower()[2:]} "))
    assert resp.status_int == 201, resp.text  # case and spaces do not matter
    # one use: the same answer again is refused
    resp = place(af_testapp, headers=captcha_headers(made["id"], answer))
    assert resp.status_int == 400 and error(resp)["code"] == "captcha_required"


def test_expired_challenge_is_refused(af_testapp, af_registry, monkeypatch):
    setup_shop(af_registry, captcha="order")
    monkeypatch.setattr(captcha, "TTL_SECONDS", 1)
    made = new_captcha(af_testapp)
    answer = answer_for(af_registry, made["id"])
    time.sleep(1.3)
    resp = place(af_testapp, headers=captcha_headers(made["id"], answer))
    assert resp.status_int == 400 and error(resp)["code"] == "captcha_required", resp.text


def test_captcha_only_for_the_chosen_actions(af_testapp, af_registry):
    setup_shop(af_registry, captcha="login")
    assert place(af_testapp).status_int == 201
    refused = risk_check(af_registry, "login", ip="203.0.113.9", email="a@example.com")
    assert refused.status == 400 and refused.code == "captcha_required"
    assert risk_check(af_registry, "lookup", ip="203.0.113.9", order_no="1") is None


def test_coupon_captcha_and_one_answer_for_coupon_and_order(af_testapp, af_registry):
    setup_shop(af_registry, captcha="coupon")
    assert place(af_testapp).status_int == 201  # no coupon, no captcha
    resp = place(af_testapp, coupon="GUESS1")
    assert resp.status_int == 400 and error(resp)["code"] == "captcha_required"
    made = new_captcha(af_testapp)
    resp = place(af_testapp, coupon="GUESS1", headers=captcha_headers(made["id"], answer_for(af_registry,
                                                                                               made["id"])))
    assert resp.status_int == 409 and error(resp)["code"] == "coupon_unavailable"  # past the captcha

    set_plugin(af_registry, "antifraud", captcha="order coupon")
    made = new_captcha(af_testapp)
    # the coupon check and the order check share the one answer (it is used once per request)
    resp = place(af_testapp, coupon="GUESS2", headers=captcha_headers(made["id"], answer_for(af_registry,
                                                                                               made["id"])))
    assert resp.status_int == 409, resp.text


def test_new_challenges_per_address_are_limited(af_testapp, af_registry):
    setup_shop(af_registry, captcha="order")
    fresh_window(margin=15)
    for _ in range(captcha.NEW_PER_IP_PER_MINUTE):
        new_captcha(af_testapp, ip="203.0.113.77")
    resp = af_testapp.post("/-/antifraud/captcha", extra_environ={"REMOTE_ADDR": "203.0.113.77"}, status=429)
    assert resp.json["error"]["code"] == "rate_limited" and int(resp.headers["Retry-After"]) >= 1
    new_captcha(af_testapp, ip="203.0.113.78")


def test_json_endpoint_with_a_session_needs_the_csrf_token(af_testapp, af_registry):
    setup_shop(af_registry, captcha="order")
    token = sign_up(af_registry, af_testapp)
    af_testapp.post("/-/antifraud/captcha", status=400)
    af_testapp.post("/-/antifraud/captcha", {"csrf_token": "wrong"}, status=400)
    af_testapp.post("/-/antifraud/captcha", headers={"X-CSRF-Token": token}, status=200)
    af_testapp.post("/-/antifraud/captcha", {"csrf_token": token}, status=200)


# -- the storefront forms ------------------------------------------------------------------------------


def test_checkout_form_carries_the_captcha(af_testapp, af_registry):
    product_id = setup_shop(af_registry, captcha="order")
    page = af_testapp.get(f"/checkout/{product_id}", params={"sku": "AF1", "quantity": "1"})
    assert page.headers["Cache-Control"].startswith("no-store")
    cid = _form_captcha(page)
    assert f"/-/antifraud/captcha/{cid}.png" in page.text
    form = page.forms["checkout-form"]
    form["contact"] = "buyer@example.com"
    form["query_password"] = "pass1234"
    form["payment_method"] = "sandbox"
    form["captcha_answer"] = "WRONG"
    again = form.submit(expect_errors=True)
    assert again.status_int == 400
    assert "did not match" in again.text
    new_cid = _form_captcha(again)  # a new picture with the error
    assert new_cid != cid
    form = again.forms["checkout-form"]
    form["query_password"] = "pass1234"
    form["payment_method"] = "sandbox"
    form["captcha_answer"] = answer_for(af_registry, new_cid).lower()
    done = form.submit()
    assert done.status_int == 303, done.text


def test_checkout_shows_no_captcha_when_not_asked(af_testapp, af_registry):
    product_id = setup_shop(af_registry, captcha="login")
    page = af_testapp.get(f"/checkout/{product_id}", params={"sku": "AF1", "quantity": "1"})
    assert "captcha_id" not in page.text


def test_login_form_with_captcha(af_testapp, af_registry):
    from kameng import accounts

    setup_shop(af_registry, captcha="login")
    with app_request(af_registry) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    page = af_testapp.get("/login")
    form = page.forms["login-form"]
    form["email"], form["password"] = ADMIN_EMAIL, ADMIN_PASSWORD
    resp = form.submit(expect_errors=True)
    assert resp.status_int == 400 and "Type the characters" in resp.text
    form = resp.forms["login-form"]
    form["email"], form["password"] = ADMIN_EMAIL, ADMIN_PASSWORD
    form["captcha_answer"] = answer_for(af_registry, _form_captcha(resp))
    assert form.submit().status_int == 302


@pytest.mark.parametrize("path,form_id,action", [
    ("/register", None, "register"),
    ("/password/forgot", None, "password_reset"),
    ("/query", "lookup-contact", "lookup"),
])
def test_other_forms_show_the_captcha(af_testapp, af_registry, path, form_id, action):
    setup_shop(af_registry, captcha=action)
    page = af_testapp.get(path)
    forms = [page.forms[form_id]] if form_id else [f for f in page.forms.values() if "captcha_id" in f.fields]
    assert forms and all("captcha_answer" in f.fields for f in forms)
    ids = re.findall(r'name="captcha_id" value="([^"]+)"', page.text)
    assert len(ids) == len(set(ids)) >= 1  # one challenge per form


def test_register_form_blacklist_and_captcha(af_testapp, af_registry):
    """Through the storefront's registration form: the captcha first, then
    a blacklisted address is refused with its message; a good one registers."""
    from kameng.accounts import User

    setup_shop(af_registry, captcha="register", blacklist="*@bad.test")

    def submit(page, email, answer=None):
        form = page.forms["register-form"]
        form["email"], form["password"], form["password2"] = email, "a-long-password-1", "a-long-password-1"
        form["captcha_answer"] = answer if answer is not None else answer_for(af_registry, _form_captcha(page))
        return form.submit(expect_errors=True)

    resp = submit(af_testapp.get("/register"), "new@example.com", answer="XXXXX")
    assert resp.status_int == 400 and "did not match" in resp.text
    resp = submit(resp, "eve@bad.test")
    assert resp.status_int == 403
    assert "Accounts cannot be created with this email address" in resp.text and "bad.test</" not in resp.text
    resp = submit(resp, "new@example.com")
    assert resp.status_int == 302, resp.text
    with app_request(af_registry) as req:
        assert req.db.query(User).filter(User.email == "new@example.com").count() == 1
        assert req.db.query(User).filter(User.email == "eve@bad.test").count() == 0


def test_password_reset_form_limit(af_testapp, af_registry):
    setup_shop(af_registry, password_resets_per_ip_per_hour=2)
    fresh_window(3600, margin=10)
    statuses = []
    for _ in range(3):
        form = af_testapp.get("/password/forgot", extra_environ={"REMOTE_ADDR": "203.0.113.66"}).forms["forgot-form"]
        form["identifier"] = "someone@example.com"
        statuses.append(form.submit(extra_environ={"REMOTE_ADDR": "203.0.113.66"}, expect_errors=True).status_int)
    assert statuses == [200, 200, 429]
