"""The core's password reset, end to end through this plugin and a real SMTP
server: the buyer asks on /password/forgot, the link arrives by email, it
sets a new password once, and the link is gone from the plugin's table."""
from __future__ import annotations

import re

import webtest
from notify_email_helpers import body_of, enable_email, log_rows, run_worker
from sqlalchemy import select

from kameng import accounts
from kameng.testing import app_request, login

OLD, NEW = "the old password 1", "a brand new password 2"


def test_forgotten_password_link_arrives_by_email_and_works_once(email_app, smtp):
    from kameng_notify_email.models import Message

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        accounts.create_user(req.db, "forgetful@example.com", OLD)
    web = webtest.TestApp(email_app, extra_environ={"REMOTE_ADDR": "127.0.0.7"})
    form = web.get("/password/forgot").forms["forgot-form"]
    form["identifier"] = "forgetful@example.com"
    assert "forgot-sent" in form.submit().text
    run_worker(registry)
    sent = [m for m in smtp.inbox.messages() if m["To"] == "forgetful@example.com"]
    assert len(sent) == 1
    links = re.findall(r"https?://\S+/password/reset/[A-Za-z0-9_\-]+", body_of(sent[0]))
    assert links, body_of(sent[0])
    with app_request(registry) as req:  # sent: the link is no longer kept, even encrypted
        assert [m.secret for m in req.db.scalars(select(Message).where(Message.event == "account.password_reset"))] \
            == [""]
    assert all(links[0] not in str(row.data) + row.error for row in log_rows(registry))

    path = "/" + links[0].split("/", 3)[3]
    page = web.get(path)
    page.forms["reset-form"]["password"] = page.forms["reset-form"]["password2"] = NEW
    assert page.forms["reset-form"].submit().status_int in (302, 303)
    assert login(webtest.TestApp(email_app), "forgetful@example.com", NEW).status_int == 302
    assert web.get(path, expect_errors=True).status_int == 404  # used: gone
