"""Admin alerts go to ``admin_email``; account emails to the account;
anything else the core says is mailed to the shop as a generic alert,
never an ``account.*`` event."""
from __future__ import annotations

import logging

from notify_email_helpers import (body_of, enable_email, enable_sandbox, log_rows, paid_order,
                                  run_worker, send_jobs)

from kameng.notifications import emit
from kameng.testing import app_request

RESET_URL = "http://localhost/reset-password/Zm9vYmFyLXNlY3JldC1yZXNldC10b2tlbg"


def test_low_stock_alert_goes_to_every_admin_address(email_app, smtp):
    registry = email_app.registry
    enable_email(registry, smtp, admin_email="owner@example.com, ops@example.com")
    with app_request(registry) as req:
        emit(req.db, "stock.low", {"sku": "CARD5", "name": "Game card", "available": 2, "threshold": 5})
    run_worker(registry)
    msgs = smtp.inbox.messages()
    assert sorted(m["To"] for m in msgs) == ["ops@example.com", "owner@example.com"]
    for msg in msgs:
        assert msg["Subject"] == "Low stock: Game card (CARD5) has 2 left"
        assert "threshold is 5" in body_of(msg)
        assert "http://localhost/admin/products" in body_of(msg)


def test_stock_low_from_a_real_sale(email_app, smtp):
    """The core emits stock.low when a sale leaves the SKU at its threshold."""
    from sqlalchemy import update

    from kameng.catalog.models import Sku
    from kameng.testing import add_card_sku

    registry = email_app.registry
    enable_sandbox(registry)
    enable_email(registry, smtp)
    add_card_sku(registry, code="LOWSKU", price="5.00", keys=3)
    with app_request(registry) as req:
        req.db.execute(update(Sku).where(Sku.code == "LOWSKU").values(low_stock_threshold=2))
    paid_order(email_app, sku="LOWSKU", keys=None)
    run_worker(registry)
    alerts = [m for m in smtp.inbox.messages() if m["Subject"].startswith("Low stock")]
    assert len(alerts) == 1 and alerts[0]["To"] == "owner@example.com"
    assert "LOWSKU" in alerts[0]["Subject"]


def test_without_admin_email_alerts_are_skipped_and_logged(email_app, smtp):
    registry = email_app.registry
    enable_email(registry, smtp, admin_email="")
    with app_request(registry) as req:
        emit(req.db, "backup.failed", {"error": "disk full", "folder": "/srv/backups"})
    run_worker(registry)
    assert smtp.inbox.received == []
    [row] = log_rows(registry)
    assert row.status == "skipped" and "admin email" in row.error
    assert send_jobs(registry) == []


def test_failed_delivery_and_supplier_alerts_link_to_the_admin_not_the_buyers_page(email_app, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    order = {"order_no": "202612010000000021", "product": "Card", "sku": "C", "sku_name": "10", "quantity": 1,
             "amount": "5.00", "currency": "CNY", "contact": "buyer@example.com", "user_id": None,
             "url": "http://localhost/orders/202612010000000021?token=BUYERSECRET", "reason": "Out of stock"}
    with app_request(registry) as req:
        emit(req.db, "order.failed", order)
        emit(req.db, "order.supplier_overdue", {**order, "out_order_no": "K202612010000000021"})
        emit(req.db, "refund.manual", {**order, "refund_no": "R77", "refund_amount": "5.00"})
    run_worker(registry)
    msgs = smtp.inbox.messages()
    assert sorted(m["Subject"] for m in msgs) == [
        "Order 202612010000000021 could not be delivered",
        "Refund R77 for order 202612010000000021 must be paid by hand",
        "Supplier overdue for order 202612010000000021"]
    for msg in msgs:
        assert msg["To"] == "owner@example.com"
        assert "BUYERSECRET" not in msg.as_string() and "token=" not in body_of(msg)
        assert "http://localhost/admin/orders/202612010000000021" in body_of(msg)


def test_unknown_events_become_a_generic_alert_without_private_fields(email_app, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        emit(req.db, "payment.something_new", {"order_no": "202612010000000022", "gateway": "epay",
                                               "url": "http://localhost/x?token=T0KEN", "api_key": "K3Y",
                                               "note": "look at it"})
    run_worker(registry)
    [msg] = smtp.inbox.messages()
    assert msg["To"] == "owner@example.com" and "payment.something_new" in msg["Subject"]
    body = body_of(msg)
    assert "gateway: epay" in body and "note: look at it" in body
    assert "T0KEN" not in body and "K3Y" not in body


def test_unknown_account_events_are_never_mailed(email_app, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        emit(req.db, "account.email_changed", {"to": "x@example.com", "url": "http://localhost/secret"})
    run_worker(registry)
    assert smtp.inbox.received == [] and log_rows(registry) == []


# -- accounts ------------------------------------------------------------------------------

def test_password_reset_goes_to_the_address_and_the_link_is_never_logged_or_kept(email_app, smtp, caplog):
    registry = email_app.registry
    enable_email(registry, smtp, username="", password="")
    caplog.set_level(logging.DEBUG)
    with app_request(registry) as req:
        emit(req.db, "account.password_reset", {"to": "member@example.com", "url": RESET_URL,
                                                "expires_minutes": 30, "user_id": 5})
    run_worker(registry)
    [msg] = smtp.inbox.messages()
    assert msg["To"] == "member@example.com" and "Reset your password" in msg["Subject"]
    body = body_of(msg)
    assert RESET_URL in body and "within 30 minutes" in body
    [row] = log_rows(registry)
    assert row.status == "sent" and row.secret == "" and "reset-password" not in row.data
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # not the test server's own log
    assert any(r.msg == "notify_email_sent" for r in ours)
    for record in ours:
        assert RESET_URL not in record.getMessage() and RESET_URL not in str(record.__dict__)
    [job] = send_jobs(registry)
    assert "reset-password" not in job.payload


def test_password_reset_link_is_encrypted_while_it_waits(email_app, smtp_factory):
    from kameng.testing import free_port

    registry = email_app.registry
    enable_email(registry, host="127.0.0.1", port=free_port(), security="none", sender="shop@example.com")
    with app_request(registry) as req:
        emit(req.db, "account.password_reset", {"to": "member@example.com", "url": RESET_URL,
                                                "expires_minutes": 30, "user_id": 5})
    run_worker(registry)
    [row] = log_rows(registry)
    assert row.status == "failed" and row.secret and RESET_URL not in row.secret and "reset" not in row.data


def test_password_reset_cannot_be_switched_off(email_app, smtp):
    from kameng_notify_email.service import set_event_enabled

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        set_event_enabled(req.db, "account.password_reset", False)
        emit(req.db, "account.password_reset", {"to": "member@example.com", "url": RESET_URL,
                                                "expires_minutes": 30, "user_id": 5})
    run_worker(registry)
    assert len(smtp.inbox.received) == 1


def test_a_bad_reset_address_is_not_mailed(email_app, smtp):
    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        emit(req.db, "account.password_reset", {"to": "member@example.com\r\nBcc: x@example.com", "url": RESET_URL,
                                                "expires_minutes": 30, "user_id": None})
    run_worker(registry)
    assert smtp.inbox.received == []
    [row] = log_rows(registry)
    assert row.status == "skipped" and row.secret == ""


def test_welcome_email_and_its_switch(email_app, smtp):
    from kameng import accounts
    from kameng_notify_email.service import set_event_enabled

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        user = accounts.create_user(req.db, "new@example.com", "new-password-1", display_name="小明")
        req.db.flush()
        emit(req.db, "account.registered", {"user_id": user.id, "email": "new@example.com",
                                            "display_name": "小明"})
    run_worker(registry)
    [msg] = smtp.inbox.messages()
    assert msg["To"] == "new@example.com" and msg["Subject"].startswith("Welcome to ")
    assert "Hello 小明" in body_of(msg) and "new@example.com" in body_of(msg)
    with app_request(registry) as req:
        set_event_enabled(req.db, "account.registered", False)
        emit(req.db, "account.registered", {"user_id": user.id})
    run_worker(registry)
    assert len(smtp.inbox.received) == 1


def test_welcome_email_finds_the_address_by_user_id(email_app, smtp):
    from kameng import accounts

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        user = accounts.create_user(req.db, "byid@example.com", "new-password-1")
        req.db.flush()
        emit(req.db, "account.registered", {"user_id": user.id})
    run_worker(registry)
    assert [m["To"] for m in smtp.inbox.messages()] == ["byid@example.com"]
