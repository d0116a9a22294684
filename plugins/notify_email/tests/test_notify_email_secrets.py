"""No secret in the logs, the send log, the jobs or the audit trail: not
the SMTP password, not a card key, not an order's access token, not a
password reset link."""
from __future__ import annotations

import logging

from notify_email_helpers import (SMTP_PASSWORD, SMTP_USER, enable_email, enable_sandbox, log_rows, make_due,
                                  order_keys, paid_order, run_worker, send_jobs)
from sqlalchemy import select

from kameng.notifications import emit
from kameng.testing import app_request, set_plugin

RESET_URL = "http://localhost/reset-password/cmVzZXQtdG9rZW4tdmFsdWUtMTIzNDU2Nzg5MA"


def test_nothing_secret_is_logged_or_stored(email_app, smtp_factory, caplog):
    from kameng.audit import AuditEntry
    from kameng.orders.checkout import access_token

    registry = email_app.registry
    caplog.set_level(logging.DEBUG)
    server = smtp_factory("starttls", auth=True)
    enable_sandbox(registry)
    # first a wrong password (a failure, with the server's answer recorded), then the right one
    enable_email(registry, server, username=SMTP_USER, password="Wr0ng-" + SMTP_PASSWORD)
    order_no = paid_order(email_app)
    with app_request(registry) as req:
        emit(req.db, "account.password_reset", {"to": "m@example.com", "url": RESET_URL, "expires_minutes": 30,
                                                "user_id": 1})
    run_worker(registry)
    assert server.inbox.received == []
    failed = [r for r in log_rows(registry) if r.status == "failed"]
    assert len(failed) == 2 and all("user name or password" in r.error for r in failed)
    set_plugin(registry, "notify_email", password=SMTP_PASSWORD)
    make_due(registry)
    run_worker(registry)
    assert len(server.inbox.received) == 2

    keys = order_keys(registry, order_no)
    with app_request(registry) as req:
        token = access_token(req, order_no)
        audit = " ".join(f"{a.action} {a.target} {a.detail}" for a in req.db.scalars(select(AuditEntry)))
    secrets = [SMTP_PASSWORD, token, RESET_URL, "cmVzZXQtdG9rZW4", *keys]
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # the test server logs all it gets
    assert any(r.msg == "notify_email_failed" for r in ours) and any(r.msg == "notify_email_sent" for r in ours)
    for record in ours:
        text = record.getMessage() + " " + str(record.__dict__)
        for secret in secrets:
            assert secret not in text, (record.name, record.msg)
    stored = [f"{r.data} {r.error} {r.secret}" for r in [*failed, *log_rows(registry)]]
    stored += [f"{j.payload} {j.last_error}" for j in send_jobs(registry)]
    stored.append(audit)
    for text in stored:
        for secret in secrets:
            assert secret not in text
    assert all(r.status == "sent" and r.error == "" for r in log_rows(registry) if r.status != "skipped")
