"""Registering on the storefront: an email (required) and a phone number
(optional, unique), the plugins told (``kameng_user_registered``, which may
refuse: nothing is written), ``account.registered`` emitted."""
import kameng_accountstest as plug
import pytest
from accounts_helpers import (EXTRA_PLUGINS, NO_LIMITS, PASSWORD, browser, enable_plugin, load_user, make_user,
                              register, sign_in, signed_in_email, text_of, user_count)
from sqlalchemy import select

from kameng import accounts, jobs
from kameng.testing import app_request, run_jobs


@pytest.fixture(scope="module")
def aapp(make_app):
    return make_app(extra_plugins=EXTRA_PLUGINS, **NO_LIMITS)


@pytest.fixture
def areg(aapp):
    enable_plugin(aapp.registry)
    yield aapp.registry
    plug.reset()


def test_register_with_a_phone_signs_in_and_tells_the_plugins(aapp, areg):
    web = browser(aapp)
    resp = register(web, "New.Buyer@Example.COM", phone="+86 138-0013-8000")
    assert resp.status_int == 302 and resp.location.endswith("/account"), resp.text
    assert signed_in_email(web) == "New.Buyer@example.com"  # stored as entered, the domain in lower case
    with app_request(areg) as req:
        user = accounts.find_user(req.db, "new.buyer@example.com")
        assert user.phone == "+8613800138000" and user.role == "buyer"
        user_id = user.id
    assert plug.REGISTERED == [(user_id, "New.Buyer@example.com", "+8613800138000")]
    run_jobs(areg)
    assert plug.NOTES == [("account.registered", {"user_id": user_id, "to": "New.Buyer@example.com"})]
    # the phone signs in too
    other = browser(aapp)
    assert sign_in(other, "+8613800138000").status_int == 302
    assert signed_in_email(other) == "New.Buyer@example.com"


def test_the_phone_is_optional(aapp, areg):
    web = browser(aapp)
    assert register(web, "nophone@example.com").status_int == 302
    with app_request(areg) as req:
        assert accounts.find_user(req.db, "nophone@example.com").phone is None
    # a second account without a phone: no clash on the unique column
    assert register(browser(aapp), "nophone2@example.com").status_int == 302


@pytest.mark.parametrize("phone", ["12345", "phone-me", "+1234567890123456", "++8613800138000", "1380013800x"])
def test_a_bad_phone_is_refused_and_nothing_is_written(aapp, areg, phone):
    resp = register(browser(aapp), "bad-phone@example.com", phone=phone)
    assert resp.status_int == 400
    assert "phone number of 6 to 15 digits" in text_of(resp, "#register-error")
    assert resp.forms["register-form"]["phone"].value == phone  # kept for the next try
    assert user_count(areg) == 0 and plug.REGISTERED == []


def test_a_phone_of_another_account_is_refused(aapp, areg):
    make_user(areg, "first@example.com", phone="13800138000")
    resp = register(browser(aapp), "second@example.com", phone="138 0013 8000")
    assert resp.status_int == 400
    assert "belongs to another account" in text_of(resp, "#register-error")
    assert user_count(areg) == 1 and plug.REGISTERED == []


def test_an_email_is_taken_whatever_its_case(aapp, areg):
    make_user(areg, "taken@example.com")
    resp = register(browser(aapp), "TAKEN@Example.com")
    assert resp.status_int == 400
    assert "already exists" in text_of(resp, "#register-error")
    assert user_count(areg) == 1
    with app_request(areg) as req, pytest.raises(accounts.AccountError):
        accounts.create_user(req.db, "Taken@EXAMPLE.com", PASSWORD)


def test_the_other_form_errors(aapp, areg):
    for kwargs, message in [({"email": "not-an-email"}, "valid email"),
                            ({"email": "a@example.com", "password": "short"}, "at least 10"),
                            ({"email": "a@example.com", "again": "something-else-1"}, "differ")]:
        resp = register(browser(aapp), **kwargs)
        assert resp.status_int == 400 and message in text_of(resp, "#register-error"), kwargs
    assert user_count(areg) == 0


def test_a_plugin_refusing_the_registration_writes_nothing(aapp, areg):
    plug.refuse_registration("Registrations are closed for a moment.")
    web = browser(aapp)
    resp = register(web, "refused@example.com", phone="13900139000")
    assert resp.status_int == 403
    assert "Registrations are closed" in text_of(resp, "#register-error")
    assert len(plug.REGISTERED) == 1  # the hook ran, after the row was flushed …
    assert user_count(areg) == 0  # … and the row is gone with everything else
    with app_request(areg) as req:
        assert req.db.scalars(select(jobs.Job)).all() == []
    assert signed_in_email(web) is None
    # the same email and phone register once the plugin lets them
    plug.REFUSE.clear()
    assert register(browser(aapp), "refused@example.com", phone="13900139000").status_int == 302


def test_a_signed_in_account_is_sent_to_its_page(aapp, areg):
    make_user(areg, "here@example.com")
    web = browser(aapp)
    sign_in(web, "here@example.com")
    assert web.get("/register").status_int == 302


def test_create_user_refuses_a_taken_phone_and_normalises_it(app):
    with app_request(app.registry) as req:
        user = accounts.create_user(req.db, "p1@example.com", PASSWORD, phone="+44 20-7946-0958")
        assert user.phone == "+442079460958"
        with pytest.raises(accounts.AccountError):
            accounts.create_user(req.db, "p2@example.com", PASSWORD, phone="+442079460958")
        with pytest.raises(accounts.AccountError):
            accounts.create_user(req.db, "p3@example.com", PASSWORD, phone="12")
    assert load_user(app.registry, user.id)["phone"] == "+442079460958"
