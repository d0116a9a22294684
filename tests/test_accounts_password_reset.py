"""Password reset: the request page tells no one who has an account, the
link goes out as ``account.password_reset`` (built on ``kameng.base_url``),
works once, for 30 minutes, signs the account out everywhere, and neither
the token nor the link is ever logged."""
import datetime as dt
import logging
import threading
from urllib.parse import urlsplit

import kameng_accountstest as plug
import pytest
from accounts_helpers import (EXTRA_PLUGINS, NEW_PASSWORD, NO_LIMITS, PASSWORD, browser, enable_plugin, load_user,
                              make_user, sign_in, signed_in_email, text_of)
from sqlalchemy import select, update

from kameng import accounts, jobs
from kameng.db import utcnow
from kameng.testing import app_request, run_jobs


@pytest.fixture(scope="module")
def aapp(make_app):
    return make_app(extra_plugins=EXTRA_PLUGINS, **NO_LIMITS, **{"kameng.base_url": "https://shop.example.com/"})


@pytest.fixture
def areg(aapp):
    enable_plugin(aapp.registry)
    yield aapp.registry
    plug.reset()


def ask(web, identifier, **environ):
    form = web.get("/password/forgot", extra_environ=dict(environ)).forms["forgot-form"]
    form["identifier"] = identifier
    return form.submit(expect_errors=True, extra_environ=dict(environ))


def links(registry) -> list[dict]:
    """The reset links sent so far, as the notification channel received them."""
    run_jobs(registry)
    return [data for event, data in plug.NOTES if event == "account.password_reset"]


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path


def choose(web, path, password=NEW_PASSWORD, again=None):
    form = web.get(path).forms["reset-form"]
    form["password"], form["password2"] = password, again if again is not None else password
    return form.submit(expect_errors=True)


def test_forgot_follow_the_link_and_sign_in_with_the_new_password(aapp, areg, caplog):
    caplog.set_level(logging.DEBUG)
    uid = make_user(areg, "Reset.Me@example.com", phone="13800138000")
    elsewhere = browser(aapp)
    assert sign_in(elsewhere, "Reset.Me@example.com").status_int == 302
    web = browser(aapp)
    resp = ask(web, "138 0013 8000")
    assert resp.status_int == 200 and "we have sent a link" in text_of(resp, "#forgot-sent")
    [sent] = links(areg)
    assert sent["to"] == "Reset.Me@example.com" and sent["user_id"] == uid and sent["expires_minutes"] == 30
    assert sent["url"].startswith("https://shop.example.com/password/reset/")  # kameng.base_url
    token = sent["url"].rsplit("/", 1)[1]
    assert len(token) >= 43
    with app_request(areg) as req:  # only the hash is stored
        row = req.db.scalar(select(accounts.PasswordReset))
        assert row.token_hash != token and len(row.token_hash) == 64 and token not in row.token_hash
        assert dt.timedelta(minutes=29) < row.expires_at - row.created_at <= dt.timedelta(minutes=30)

    path = local(sent["url"])
    page = web.get(path)
    assert page.status_int == 200 and page.headers["Cache-Control"] == "no-store"
    assert choose(web, path, again="something-else-1").status_int == 400
    resp = choose(web, path, password="short")
    assert resp.status_int == 400 and "at least 10" in text_of(resp, "#reset-error")
    resp = choose(web, path)  # the link still works after those
    assert resp.status_int == 303 and resp.location.endswith("/login")
    assert "password is changed" in resp.follow().text

    assert signed_in_email(elsewhere) is None  # every device signed out
    assert sign_in(browser(aapp), "Reset.Me@example.com", PASSWORD).status_int == 400
    assert sign_in(browser(aapp), "13800138000", NEW_PASSWORD).status_int == 302
    # used once: the same link again is refused with a clear message
    again = web.get(path, expect_errors=True)
    assert again.status_int == 404 and "not valid" in text_of(again, "#reset-error")
    assert "reset-form" not in again.forms
    resp = web.post(path, {"csrf_token": page.forms["reset-form"]["csrf_token"].value, "password": "x" * 12,
                           "password2": "x" * 12}, expect_errors=True)
    assert resp.status_int == 404
    assert sign_in(browser(aapp), "13800138000", "x" * 12).status_int == 400
    # neither the token nor the link was logged by anyone
    assert token not in caplog.text and sent["url"] not in caplog.text
    for record in caplog.records:
        assert token not in str(record.__dict__)


def test_the_answer_is_the_same_for_an_account_that_does_not_exist(aapp, areg):
    make_user(areg, "exists@example.com", phone="13700137000")
    answers = {}
    for typed in ("exists@example.com", "nobody@example.com", "13700137000", "13700137999", "not-a-name"):
        resp = ask(browser(aapp), typed)
        answers[typed] = (resp.status_int, text_of(resp, "#forgot-sent"), text_of(resp, "#forgot-error"))
    assert len(set(answers.values())) == 1, answers
    assert len(links(areg)) == 2  # the email and the phone of the one account


def test_an_empty_form_is_refused(aapp, areg):
    resp = ask(browser(aapp), "  ")
    assert resp.status_int == 400 and text_of(resp, "#forgot-error")
    assert links(areg) == []


def test_admins_and_disabled_accounts_get_no_link(aapp, areg):
    make_user(areg, "boss@example.com", role="admin")
    uid = make_user(areg, "gone@example.com")
    with app_request(areg) as req:
        req.db.get(accounts.User, uid).is_active = False
    first = ask(browser(aapp), "boss@example.com")
    second = ask(browser(aapp), "gone@example.com")
    assert text_of(first, "#forgot-sent") == text_of(second, "#forgot-sent") != ""
    assert links(areg) == []


def test_the_link_is_built_on_the_base_url_not_the_host_header(aapp, areg):
    make_user(areg, "host@example.com")
    web = browser(aapp)
    resp = ask(web, "host@example.com", HTTP_HOST="evil.example")
    assert resp.status_int == 200 and "evil.example" in resp.text  # the page's own links follow the Host
    [sent] = links(areg)
    assert urlsplit(sent["url"]).netloc == "shop.example.com"


def test_at_most_three_links_are_open_at_once(aapp, areg):
    make_user(areg, "flood@example.com")
    for _ in range(5):
        assert ask(browser(aapp), "flood@example.com").status_int == 200
    sent = links(areg)
    assert len(sent) == 3 and len({s["url"] for s in sent}) == 3
    # using one closes the others: the account has a new password
    web = browser(aapp)
    assert choose(web, local(sent[0]["url"])).status_int == 303
    for s in sent[1:]:
        assert web.get(local(s["url"]), expect_errors=True).status_int == 404
    # and new links can be asked for again
    ask(browser(aapp), "flood@example.com")
    assert len(links(areg)) == 4


def test_an_expired_link_is_refused(aapp, areg):
    make_user(areg, "late@example.com")
    ask(browser(aapp), "late@example.com")
    [sent] = links(areg)
    with app_request(areg) as req:
        req.db.execute(update(accounts.PasswordReset).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    web = browser(aapp)
    resp = web.get(local(sent["url"]), expect_errors=True)
    assert resp.status_int == 404 and "not valid" in text_of(resp, "#reset-error")
    assert resp.html.select_one("#new-link")["href"].endswith("/password/forgot")


@pytest.mark.parametrize("token", ["A" * 43, "short", "A" * 42 + "!", "A" * 200])
def test_made_up_links_are_refused(aapp, areg, token):
    resp = browser(aapp).get(f"/password/reset/{token}", expect_errors=True)
    assert resp.status_int == 404 and "not valid" in text_of(resp, "#reset-error")


def test_a_password_change_closes_the_open_links(aapp, areg):
    uid = make_user(areg, "change@example.com")
    ask(browser(aapp), "change@example.com")
    [sent] = links(areg)
    with app_request(areg) as req:
        req.db.get(accounts.User, uid).set_password("changed-elsewhere-1")
    assert browser(aapp).get(local(sent["url"]), expect_errors=True).status_int == 404


def test_a_reset_lifts_a_sign_in_lock(make_app):
    app = make_app(extra_plugins=EXTRA_PLUGINS, **NO_LIMITS, **{"kameng.login.max_failures": "2"})
    enable_plugin(app.registry)
    uid = make_user(app.registry, "lockme@example.com")
    for _ in range(2):
        sign_in(browser(app), "lockme@example.com", "wrong-password-1")
    assert load_user(app.registry, uid)["locked_until"] is not None
    ask(browser(app), "lockme@example.com")
    [sent] = links(app.registry)
    assert choose(browser(app), local(sent["url"])).status_int == 303
    assert sign_in(browser(app), "lockme@example.com", NEW_PASSWORD).status_int == 302
    plug.reset()


def test_two_uses_of_one_link_at_once_one_wins(aapp, areg):
    """Real threads, each with its own transaction: the conditional update
    lets exactly one of them set its password."""
    uid = make_user(areg, "race@example.com")
    with app_request(areg) as req:
        token = accounts.create_password_reset(req.db, req.db.get(accounts.User, uid))
    barrier = threading.Barrier(4)
    results, errors = [], []

    def use(n):
        try:
            barrier.wait(timeout=10)
            with app_request(areg) as req:
                user = accounts.consume_password_reset(req.db, token, f"racing-password-{n}")
                results.append(n if user is not None else None)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=use, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [n for n in results if n is not None]
    # a loser either saw the link used or lost a serialization race and rolled back
    assert len(winners) == 1 and len(results) + len(errors) == 4, (results, errors)
    assert sign_in(browser(aapp), "race@example.com", f"racing-password-{winners[0]}").status_int == 302


def test_reset_tokens_directly(aapp, areg):
    uid = make_user(areg, "unit@example.com")
    with app_request(areg) as req:
        user = req.db.get(accounts.User, uid)
        token = accounts.create_password_reset(req.db, user, ip="203.0.113.9")
        assert accounts.RESET_TOKEN.match(token)
        with pytest.raises(accounts.AccountError):  # a weak password: the link stays usable
            accounts.consume_password_reset(req.db, token, "short")
        assert accounts.password_reset_for(req.db, token) is not None
        assert accounts.consume_password_reset(req.db, token, NEW_PASSWORD).id == uid
        assert accounts.consume_password_reset(req.db, token, "another-password-1") is None
        assert accounts.password_reset_for(req.db, token) is None
        row = req.db.scalar(select(accounts.PasswordReset))
        assert row.ip == "203.0.113.9"
    with app_request(areg) as req:
        assert req.db.scalars(select(jobs.Job)).all() == []  # nothing sent by the functions themselves
