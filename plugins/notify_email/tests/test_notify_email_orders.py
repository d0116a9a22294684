"""Order emails end to end: a real order paid through the sandbox, the
core's notification jobs, this plugin's send job and a real SMTP server."""
from __future__ import annotations

import re

from notify_email_helpers import (body_of, enable_email, enable_sandbox, html_of, log_rows, make_due, order_keys,
                                  paid_order, run_worker, send_jobs, sold_key_count)

from kameng import jobs
from kameng.testing import app_request, set_plugin


def test_a_delivered_order_mails_its_keys_to_the_buyer(email_app, smtp):
    registry = email_app.registry
    enable_sandbox(registry)
    enable_email(registry, smtp)
    order_no = paid_order(email_app, contact="buyer@example.com", quantity=2)
    run_worker(registry)

    msgs = smtp.inbox.messages()
    delivered = [m for m in msgs if order_no in m["Subject"] and "delivered" in m["Subject"]]
    assert len(delivered) == 1
    msg = delivered[0]
    assert msg["To"] == "buyer@example.com"
    assert msg["From"] == "Test Shop <shop@example.com>"
    assert smtp.inbox.received[-1]["to"] == ["buyer@example.com"]
    text = body_of(msg)
    keys = order_keys(registry, order_no)
    assert len(keys) == 2 and all(k in text for k in keys)
    # the link to the order page carries its access token
    assert re.search(rf"http://localhost/orders?/{order_no}\S*token=", text), text
    html = html_of(msg)
    assert all(k in html for k in keys) and 'href="http://localhost/' in html
    # "payment received" is not sent for an order delivered in the same moment
    assert not [m for m in msgs if "Payment received" in m["Subject"]]
    rows = {r.event: r for r in log_rows(registry)}
    assert rows["order.delivered"].status == "sent" and rows["order.delivered"].attempts == 1
    assert rows["order.paid"].status == "skipped"
    # neither the log row nor the job keeps a key or the link
    for row in log_rows(registry):
        assert not any(k in row.data for k in keys) and "token" not in row.data
    for job in send_jobs(registry):
        assert not any(k in job.payload for k in keys) and job.status == jobs.DONE


def test_send_keys_off_sends_the_link_not_the_keys(email_app, smtp):
    registry = email_app.registry
    enable_sandbox(registry)
    enable_email(registry, smtp, send_keys=False)
    order_no = paid_order(email_app)
    run_worker(registry)
    [msg] = [m for m in smtp.inbox.messages() if order_no in m["Subject"]]
    text, html = body_of(msg), html_of(msg)
    for key in order_keys(registry, order_no):
        assert key not in text and key not in html
    assert "KEY" not in text
    assert re.search(rf"/{order_no}\S*token=", text)
    assert "not sent by email" in text


def test_smtp_down_the_order_is_delivered_and_the_email_comes_later_once(email_app, smtp_factory):
    """SECURITY.md #49: the order does not wait for the mail server; the
    email is retried with back-off and sent once; no key is allocated again."""
    from kameng.testing import free_port

    registry = email_app.registry
    enable_sandbox(registry)
    port = free_port()  # nothing listens there yet
    enable_email(registry, host="127.0.0.1", port=port, security="none", sender="shop@example.com")
    order_no = paid_order(email_app)
    with app_request(registry) as req:
        from kameng.orders import service as orders

        assert orders.get(req.db, order_no).status == "delivered"
    keys = order_keys(registry, order_no)
    sold = sold_key_count(registry)

    run_worker(registry)
    [row] = [r for r in log_rows(registry) if r.event == "order.delivered"]
    assert row.status == "failed" and row.attempts == 1
    assert "refused" in row.error
    [job] = [j for j in send_jobs(registry) if j.payload == f'{{"id": {row.id}}}']
    assert job.status == jobs.QUEUED and job.attempts == 1 and "SendFailed" in job.last_error
    assert job.run_at > row.updated_at  # it waits for the back-off

    make_due(registry)
    run_worker(registry)  # still down: another failure, still queued
    [row] = [r for r in log_rows(registry) if r.event == "order.delivered"]
    assert row.status == "failed" and row.attempts == 2

    server = smtp_factory("none", port=port)
    make_due(registry)
    run_worker(registry)
    make_due(registry)
    run_worker(registry)  # nothing left to do: no second email
    delivered = [m for m in server.inbox.messages() if order_no in m["Subject"]]
    assert len(delivered) == 1
    assert all(k in body_of(delivered[0]) for k in keys)
    [row] = [r for r in log_rows(registry) if r.event == "order.delivered"]
    assert row.status == "sent" and row.attempts == 3 and row.error == ""
    assert order_keys(registry, order_no) == keys
    assert sold_key_count(registry) == sold


def test_a_sent_row_is_never_sent_again(email_app, smtp):
    from kameng_notify_email.service import deliver_message

    registry = email_app.registry
    enable_sandbox(registry)
    enable_email(registry, smtp)
    order_no = paid_order(email_app)
    run_worker(registry)
    [row] = [r for r in log_rows(registry) if r.event == "order.delivered"]
    before = len(smtp.inbox.received)
    with app_request(registry) as req:  # the job run again (a lost lease)
        assert deliver_message(req, row.id) == ("sent", "")
    assert len(smtp.inbox.received) == before
    assert len([m for m in smtp.inbox.messages() if order_no in m["Subject"]]) == 1


def test_the_same_event_twice_is_mailed_once(email_app, smtp):
    from kameng.notifications import emit
    from kameng.orders import service as orders

    registry = email_app.registry
    enable_sandbox(registry)
    enable_email(registry, smtp)
    order_no = paid_order(email_app)
    run_worker(registry)
    with app_request(registry) as req:
        emit(req.db, "order.delivered", orders.event_data(req, orders.get(req.db, order_no)))
    run_worker(registry)
    assert len([m for m in smtp.inbox.messages() if order_no in m["Subject"]]) == 1
    assert len([r for r in log_rows(registry) if r.event == "order.delivered"]) == 1


def test_refund_and_payment_emails(email_app, smtp):
    from kameng.notifications import emit

    registry = email_app.registry
    enable_email(registry, smtp)
    data = {"order_no": "202612010000000001", "status": "paid", "product": "Game card", "sku": "G1",
            "sku_name": "100", "quantity": 1, "amount": "5.00", "currency": "CNY", "contact": "pay@example.com",
            "user_id": None, "url": "http://localhost/orders/202612010000000001?token=SECRET", "reason": None}
    with app_request(registry) as req:
        emit(req.db, "order.paid", data)
        emit(req.db, "order.refunded", {**data, "status": "refunded", "refund_no": "R1", "refund_amount": "5.00"})
    run_worker(registry)
    subjects = sorted(m["Subject"] for m in smtp.inbox.messages())
    assert subjects == ["Payment received for order 202612010000000001",
                        "Refund R1 for order 202612010000000001"]
    assert all(m["To"] == "pay@example.com" for m in smtp.inbox.messages())


def test_a_buyer_without_an_email_is_skipped_and_logged(email_app, smtp):
    from kameng.notifications import emit

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        emit(req.db, "order.delivered", {"order_no": "202612010000000002", "contact": "13800138000",
                                         "user_id": None, "url": "http://localhost/x?token=t"})
    run_worker(registry)
    assert smtp.inbox.received == []
    [row] = log_rows(registry)
    assert row.status == "skipped" and row.recipient == "" and "no email" in row.error


def test_a_signed_in_buyers_account_email_is_used_when_the_contact_is_not_one(email_app, smtp):
    from kameng import accounts
    from kameng.notifications import emit

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        user = accounts.create_user(req.db, "member@example.com", "member-password-1")
        req.db.flush()
        emit(req.db, "order.paid", {"order_no": "202612010000000003", "contact": "QQ 12345", "user_id": user.id,
                                    "amount": "1.00", "currency": "CNY"})
    run_worker(registry)
    assert [m["To"] for m in smtp.inbox.messages()] == ["member@example.com"]


def test_a_switched_off_event_is_not_mailed(email_app, smtp):
    from kameng.notifications import emit
    from kameng_notify_email.service import set_event_enabled

    registry = email_app.registry
    enable_email(registry, smtp)
    with app_request(registry) as req:
        set_event_enabled(req.db, "order.refunded", False)
        emit(req.db, "order.refunded", {"order_no": "202612010000000004", "contact": "a@example.com",
                                        "refund_no": "R9"})
    run_worker(registry)
    assert smtp.inbox.received == [] and log_rows(registry) == []


def test_disabled_the_shop_still_sells_and_the_emails_wait(email_app, smtp):
    registry = email_app.registry
    enable_sandbox(registry)
    enable_email(registry, smtp)
    set_plugin(registry, "notify_email", enabled=False)
    order_no = paid_order(email_app)
    run_worker(registry)
    assert smtp.inbox.received == []
    with app_request(registry) as req:
        from kameng.orders import service as orders

        assert orders.get(req.db, order_no).status == "delivered"
    # the buyer's order page works without the plugin
    import webtest

    from kameng.orders.checkout import access_token

    web = webtest.TestApp(email_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    with app_request(registry) as req:
        token = access_token(req, order_no)
    page = web.get(f"/orders/{order_no}", params={"token": token})
    assert page.status_int == 200
    # enabled again: what happened while it was off is not mailed afterwards
    set_plugin(registry, "notify_email", enabled=True)
    run_worker(registry)
    assert smtp.inbox.received == []
