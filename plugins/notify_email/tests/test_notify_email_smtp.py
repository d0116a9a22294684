"""The SMTP client against real servers on 127.0.0.1: plain, STARTTLS and
implicit TLS (a self-signed certificate the shop is told to trust through
``kameng.notify_email.cafile``), AUTH PLAIN and LOGIN, and what fails."""
from __future__ import annotations

import pytest
from notify_email_helpers import SMTP_PASSWORD, SMTP_USER, body_of, enable_email, log_rows, run_worker

from kameng.notifications import emit
from kameng.testing import app_request, free_port
from kameng_notify_email import mailer

ALERT = {"sku": "LOW1", "name": "Low card", "available": 2, "threshold": 5}


def _alert(registry):
    with app_request(registry) as req:
        emit(req.db, "stock.low", ALERT)
    run_worker(registry)


@pytest.mark.parametrize("kind,mechanism", [("starttls", "PLAIN"), ("starttls", "LOGIN"), ("tls", "PLAIN"),
                                            ("tls", "LOGIN")])
def test_tls_with_auth(email_app, smtp_factory, kind, mechanism):
    registry = email_app.registry
    server = smtp_factory(kind, auth=True, mechanisms=(mechanism,))
    enable_email(registry, server, username=SMTP_USER, password=SMTP_PASSWORD)
    _alert(registry)
    [received] = server.inbox.received
    assert received["tls"] and received["authenticated"]
    assert server.inbox.logins == [(mechanism, "ok")]
    [msg] = server.inbox.messages()
    assert msg["To"] == "owner@example.com" and "Low card" in msg["Subject"]
    assert [r.status for r in log_rows(registry)] == ["sent"]


def test_plain_without_auth(email_app, smtp_factory):
    registry = email_app.registry
    server = smtp_factory("none")
    enable_email(registry, server)
    _alert(registry)
    [received] = server.inbox.received
    assert not received["tls"] and not received["authenticated"]


def test_plain_with_auth_to_this_machine(email_app, smtp_factory):
    """A relay on the same machine may take a password without TLS."""
    registry = email_app.registry
    server = smtp_factory("none", auth=True)
    enable_email(registry, server, username=SMTP_USER, password=SMTP_PASSWORD)
    _alert(registry)
    assert server.inbox.received[0]["authenticated"]


def test_a_wrong_password_fails_without_naming_it(email_app, smtp_factory):
    registry = email_app.registry
    server = smtp_factory("tls", auth=True)
    wrong = "wrong-pass-Kx7-secret"
    enable_email(registry, server, username=SMTP_USER, password=wrong)
    _alert(registry)
    assert server.inbox.received == []
    [row] = log_rows(registry)
    assert row.status == "failed" and "user name or password" in row.error and "535" in row.error
    assert wrong not in row.error
    from notify_email_helpers import send_jobs

    [job] = send_jobs(registry)
    assert wrong not in job.last_error and job.status == "queued"


def test_starttls_is_never_skipped_when_the_server_lacks_it(email_app, smtp_factory):
    registry = email_app.registry
    server = smtp_factory("none", auth=True)
    enable_email(registry, server, security="starttls", username=SMTP_USER, password=SMTP_PASSWORD)
    _alert(registry)
    assert server.inbox.received == [] and server.inbox.logins == []
    [row] = log_rows(registry)
    assert row.status == "failed" and "STARTTLS" in row.error


def test_implicit_tls_to_a_plain_server_fails(email_app, smtp_factory):
    registry = email_app.registry
    server = smtp_factory("none")
    enable_email(registry, server, security="tls")
    _alert(registry)
    assert server.inbox.received == []
    [row] = log_rows(registry)
    assert row.status == "failed" and row.error


@pytest.mark.parametrize("kind", ["tls", "starttls"])
def test_an_untrusted_certificate_is_refused(smtp_factory, kind):
    """Without the test CA (a production shop), the self-signed server is refused."""
    server = smtp_factory(kind, auth=True)
    config = mailer.SmtpConfig(host="127.0.0.1", port=server.port, security=kind, username=SMTP_USER,
                               password=SMTP_PASSWORD, timeout=5, cafile=None)
    msg = mailer.build(mailer.parse_sender("shop@example.com"), "a@example.com", "s", "t")
    with pytest.raises(mailer.SendError, match="not trusted"):
        mailer.send(config, msg, "shop@example.com", "a@example.com")
    assert server.inbox.logins == [] and server.inbox.received == []


def test_the_host_name_is_checked(tmp_path):
    """A trusted certificate for another name is refused."""
    from notify_email_helpers import SmtpServer, make_tls_files

    other = make_tls_files(str(tmp_path), names=("mail.example.com",), stem="other")
    server = SmtpServer("tls", tls=other).start()
    try:
        config = mailer.SmtpConfig(host="127.0.0.1", port=server.port, security="tls", username="", password="",
                                   timeout=5, cafile=other.cert)
        msg = mailer.build(mailer.parse_sender("shop@example.com"), "a@example.com", "s", "t")
        with pytest.raises(mailer.SendError, match="not trusted.*mismatch"):
            mailer.send(config, msg, "shop@example.com", "a@example.com")
        assert server.inbox.received == []
    finally:
        server.stop()


def test_a_silent_server_times_out():
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    try:
        config = mailer.SmtpConfig(host="127.0.0.1", port=listener.getsockname()[1], security="none", username="",
                                   password="", timeout=1, cafile=None)
        msg = mailer.build(mailer.parse_sender("shop@example.com"), "a@example.com", "s", "t")
        with pytest.raises(mailer.SendError, match="within 1 s"):
            mailer.send(config, msg, "shop@example.com", "a@example.com")
    finally:
        for conn, _addr in accepted:
            conn.close()
        listener.close()


def test_connection_refused_names_the_server_only():
    config = mailer.SmtpConfig(host="127.0.0.1", port=free_port(), security="none", username=SMTP_USER,
                               password=SMTP_PASSWORD, timeout=2, cafile=None)
    msg = mailer.build(mailer.parse_sender("shop@example.com"), "a@example.com", "s", "t")
    with pytest.raises(mailer.SendError) as info:
        mailer.send(config, msg, "shop@example.com", "a@example.com")
    assert "refused" in str(info.value) and SMTP_PASSWORD not in str(info.value)


def test_unicode_subject_and_body_arrive_intact(email_app, smtp):
    registry = email_app.registry
    enable_email(registry, smtp, sender="我的小店 <shop@example.com>")
    with app_request(registry) as req:
        emit(req.db, "stock.low", {**ALERT, "name": "腾讯视频会员 月卡"})
    run_worker(registry)
    [msg] = smtp.inbox.messages()
    assert "腾讯视频会员 月卡" in msg["Subject"] and "腾讯视频会员 月卡" in body_of(msg)
    assert msg["From"].addresses[0].display_name == "我的小店"
