"""The send log page, "send again", the test email, the settings' checks,
the menu, and who may see the pages."""
from __future__ import annotations

import pytest
from notify_email_helpers import (SMTP_PASSWORD, SMTP_USER, body_of, enable_email, enable_sandbox, log_rows,
                                  make_due, paid_order, run_worker, send_jobs)

from kameng.notifications import emit
from kameng.testing import app_request, free_port, login, set_plugin
from kameng.types import SettingError


def _token(app, url="/-/notify_email/log"):
    return app.get(url).forms["test-form"]["csrf_token"].value


def test_log_page_shows_masked_recipients_and_errors(email_app, email_admin, smtp):
    registry = email_app.registry
    enable_sandbox(registry)
    enable_email(registry, smtp)
    order_no = paid_order(email_app, contact="buyer.name@example.com")
    run_worker(registry)
    page = email_admin.get("/-/notify_email/log")
    assert "buyer.name@example.com" not in page.text
    assert "bu***@example.com" in page.text
    assert order_no in page.text and "Order delivered (with the keys)" in page.text
    assert "MAIL1-KEY" not in page.text and "token=" not in page.text
    sent = email_admin.get("/-/notify_email/log", params={"status": "sent"})
    assert sent.text.count('class="status-sent"') == 1
    skipped = email_admin.get("/-/notify_email/log", params={"status": "skipped"})
    assert "Delivered at once" in skipped.text
    email_admin.get("/-/notify_email/log", params={"status": "nonsense", "page": "x"})  # ignored, not a 500


def test_resend_sends_a_new_copy_with_the_keys_read_again(email_app, email_admin, smtp):
    registry = email_app.registry
    enable_sandbox(registry)
    enable_email(registry, smtp)
    order_no = paid_order(email_app)
    run_worker(registry)
    [row] = [r for r in log_rows(registry) if r.event == "order.delivered"]
    page = email_admin.get("/-/notify_email/log")
    form = [f for f in page.forms.values() if f.action.endswith(f"/log/{row.id}/resend")][0]
    resp = form.submit().follow()
    assert "Queued to be sent again" in resp.text
    run_worker(registry)
    copies = [m for m in smtp.inbox.messages() if order_no in m["Subject"]]
    assert len(copies) == 2 and body_of(copies[0]) .split("token=")[0] == body_of(copies[1]).split("token=")[0]
    rows = [r for r in log_rows(registry) if r.event == "order.delivered"]
    assert [r.status for r in rows] == ["sent", "sent"] and rows[1].resend_of == row.id


def test_resend_of_a_sent_password_reset_is_refused(email_app, email_admin, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        emit(req.db, "account.password_reset", {"to": "m@example.com", "url": "http://localhost/r/abc",
                                                "expires_minutes": 30, "user_id": 1})
    run_worker(registry)
    [row] = log_rows(registry)
    page = email_admin.get("/-/notify_email/log")
    assert f"/log/{row.id}/resend" not in page.text
    resp = email_admin.post(f"/-/notify_email/log/{row.id}/resend", {"csrf_token": _token(email_admin)}).follow()
    assert "cannot be sent again" in resp.text
    assert len(log_rows(registry)) == 1
    for missing in ("999999", "99999999999999999999999"):
        email_admin.post(f"/-/notify_email/log/{missing}/resend", {"csrf_token": _token(email_admin)}, status=404)


def test_a_failed_email_can_be_sent_again_after_the_server_is_fixed(email_app, email_admin, smtp_factory):
    registry = email_app.registry
    port = free_port()
    enable_email(registry, host="127.0.0.1", port=port, security="none", sender="shop@example.com",
                 admin_email="owner@example.com")
    with app_request(registry) as req:
        emit(req.db, "backup.failed", {"error": "disk full", "folder": "/srv"})
    run_worker(registry)
    [row] = log_rows(registry)
    assert row.status == "failed"
    page = email_admin.get("/-/notify_email/log", params={"status": "failed"})
    assert "refused" in page.text
    server = smtp_factory("none", port=port)
    form = [f for f in page.forms.values() if f.action.endswith(f"/log/{row.id}/resend")][0]
    form.submit()
    run_worker(registry)  # the new copy (the original waits for its back-off)
    assert len(server.inbox.received) == 1
    make_due(registry)
    run_worker(registry)  # the original's retry: a second email, as the admin asked for both
    assert len(server.inbox.received) == 2


def test_test_email_reports_success_and_failure(email_app, email_admin, smtp_factory):
    registry = email_app.registry
    server = smtp_factory("starttls", auth=True)
    enable_email(registry, server, username=SMTP_USER, password=SMTP_PASSWORD)
    page = email_admin.get("/-/notify_email/log")
    assert page.forms["test-form"]["to"].value == "owner@example.com"
    resp = page.forms["test-form"].submit().follow()
    assert "The test email was sent to owner@example.com" in resp.text
    [msg] = server.inbox.messages()
    assert msg["Subject"].startswith("Test email from ") and "the email settings work" in body_of(msg)
    [row] = log_rows(registry)
    assert (row.event, row.status, row.attempts) == ("test", "sent", 1)

    set_plugin(registry, "notify_email", password="wrong-password-xyz")
    form = email_admin.get("/-/notify_email/log").forms["test-form"]
    form["to"] = "other@example.com"
    resp = form.submit().follow()
    assert "could not be sent" in resp.text and "user name or password" in resp.text
    assert "wrong-password-xyz" not in resp.text
    assert len(server.inbox.received) == 1
    assert send_jobs(registry) == []  # a test email is not retried

    form = resp.forms["test-form"]
    form["to"] = "not an address\r\nBcc: x@example.com"
    assert "Enter one email address" in form.submit().follow().text


def test_settings_are_checked(email_app):
    from kameng.pluginhost import PluginError

    registry = email_app.registry
    with pytest.raises(PluginError):  # host and sender are required before it can be enabled
        set_plugin(registry, "notify_email", enabled=True)
    for bad in ({"sender": "not an address"}, {"sender": "Shop <a@example.com>, b@example.com"},
                {"sender": "a@example.com\r\nBcc: b@example.com"}, {"admin_email": "owner@example.com, nope"},
                {"host": "smtp.example.com/x"}, {"port": "70000"}, {"security": "ssl"}, {"timeout": "0"},
                {"host": "smtp.example.com", "security": "none", "username": "u", "password": "p"}):
        with pytest.raises(SettingError):
            set_plugin(registry, "notify_email", **bad)
    set_plugin(registry, "notify_email", host="127.0.0.1", security="none", username="u", password="p",
               sender="我的店 <shop@example.com>", admin_email="a@example.com; b@example.com")
    with pytest.raises(SettingError):
        set_plugin(registry, "notify_email", host="")


def test_settings_form_masks_the_password(email_app, email_admin, smtp):
    enable_email(email_app.registry, smtp, username=SMTP_USER, password=SMTP_PASSWORD)
    page = email_admin.get("/admin/plugins/notify_email")
    assert SMTP_PASSWORD not in page.text
    for name in ("host", "port", "security", "username", "password", "sender", "send_keys", "admin_email",
                 "timeout", "html"):
        assert f'name="{name}"' in page.text


def test_menu_items_and_disabled_pages(email_app, email_admin, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    home = email_admin.get("/admin")
    assert "/-/notify_email/log" in home.text and "/-/notify_email/templates" in home.text
    set_plugin(registry, "notify_email", enabled=False)
    assert "/-/notify_email/log" not in email_admin.get("/admin").text
    for url in ("/-/notify_email/log", "/-/notify_email/templates", "/-/notify_email/templates/order.paid/en"):
        email_admin.get(url, status=404)


def test_buyers_and_visitors_cannot_see_the_pages(email_app, email_testapp, smtp):
    from kameng import accounts

    registry = email_app.registry
    enable_email(registry, smtp)
    for url in ("/-/notify_email/log", "/-/notify_email/templates", "/-/notify_email/templates/order.paid/en"):
        resp = email_testapp.get(url, status=302)
        assert "/login" in resp.location
    with app_request(registry) as req:
        accounts.create_user(req.db, "buyer@example.com", "buyer-password-1")
    assert login(email_testapp, "buyer@example.com", "buyer-password-1").status_int == 302
    for url in ("/-/notify_email/log", "/-/notify_email/templates", "/-/notify_email/templates/order.paid/en"):
        email_testapp.get(url, status=403)
    page = email_testapp.get("/")
    token = next(f["csrf_token"].value for f in page.forms.values() if "csrf_token" in f.fields)
    email_testapp.post("/-/notify_email/test", {"csrf_token": token, "to": "x@example.com"}, status=403)
    email_testapp.post("/-/notify_email/templates/switch", {"csrf_token": token, "event": "stock.low",
                                                            "enabled": "0"}, status=403)
    assert smtp.inbox.received == []


def test_old_finished_emails_are_forgotten_after_90_days(email_app):
    import datetime as dt

    from kameng.db import utcnow
    from kameng_notify_email.models import Message
    from kameng_notify_email.service import cleanup_job

    registry = email_app.registry
    old = utcnow() - dt.timedelta(days=91)
    with app_request(registry) as req:
        for n, (status, at) in enumerate([("sent", old), ("failed", old), ("skipped", old), ("queued", old),
                                          ("sending", old), ("sent", utcnow())]):
            req.db.add(Message(dedupe_key=f"k{n}", event="stock.low", audience="admin", recipient="a@example.com",
                               language="en", status=status, attempts=0, error="", data="{}", secret="",
                               created_at=at, updated_at=at))
    with app_request(registry) as req:
        cleanup_job(req, {})
    assert sorted((r.status, r.created_at > old) for r in log_rows(registry)) == [
        ("queued", False), ("sending", False), ("sent", True)]
