"""Real SMTP servers for the tests (aiosmtpd on 127.0.0.1): plain, STARTTLS
and implicit TLS with a self-signed certificate made here, optionally with
AUTH; and helpers to pay orders and run the worker."""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import os
import ssl
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select, update

from kameng import jobs
from kameng.db import utcnow
from kameng.testing import app_request, free_port, set_plugin

SMTP_USER = "shop@example.com"
SMTP_PASSWORD = "smtp-pass-Zq8-never-logged"
SANDBOX_SECRET = "x" * 32


@dataclass
class TlsFiles:
    cert: str
    key: str


def make_tls_files(folder: str, names=("localhost", "127.0.0.1"), stem: str = "smtp") -> TlsFiles:
    """A self-signed certificate (its own CA) for ``names``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    files = TlsFiles(os.path.join(folder, f"{stem}-cert.pem"), os.path.join(folder, f"{stem}-key.pem"))
    with open(files.cert, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(files.key, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return files


class Inbox:
    """The aiosmtpd handler: keeps every message it accepts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received: list[dict] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                  "raw": envelope.original_content or envelope.content,
                                  "tls": server.transport.get_extra_info("ssl_object") is not None,
                                  "authenticated": bool(session.authenticated)})
        return "250 OK"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER
              and auth_data.password.decode() == SMTP_PASSWORD)
        with self.lock:
            self.logins.append((mechanism, "ok" if ok else "refused"))
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

    def messages(self) -> list[email.message.EmailMessage]:
        with self.lock:
            return [email.message_from_bytes(m["raw"], policy=email.policy.default) for m in self.received]


class SmtpServer:
    """``kind``: ``none`` (plain), ``starttls`` or ``tls`` (implicit)."""

    def __init__(self, kind: str = "none", tls: TlsFiles | None = None, auth: bool = False, port: int | None = None,
                 mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN")):
        self.kind, self.port, self.inbox = kind, port or free_port(), Inbox()
        kwargs = {}
        if kind != "none":
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ctx.load_cert_chain(tls.cert, tls.key)
            if kind == "starttls":
                kwargs.update(tls_context=server_ctx, require_starttls=True)
            else:
                kwargs.update(ssl_context=server_ctx)
        if auth:
            # aiosmtpd only counts STARTTLS as TLS: on an implicit TLS connection
            # (and a plain one on this machine) it must be told to offer AUTH, and
            # then it warns about requiring AUTH (the tests check it was used)
            kwargs.update(authenticator=self.inbox.authenticator, auth_require_tls=(kind == "starttls"),
                          auth_required=(kind == "starttls"),
                          auth_exclude_mechanism=[m for m in ("LOGIN", "PLAIN") if m not in mechanisms])
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> "SmtpServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def settings(self, **extra) -> dict:
        out = {"host": "127.0.0.1", "port": self.port, "security": self.kind, "sender": "Test Shop <shop@example.com>",
               "admin_email": "owner@example.com", "username": "", "password": ""}
        out.update(extra)
        return out


def enable_email(registry, server: SmtpServer | None = None, **settings) -> None:
    values = server.settings(**settings) if server is not None else settings
    set_plugin(registry, "notify_email", enabled=True, **values)


def run_worker(registry, retry_base: float = 3600.0, limit: int = 200) -> int:
    """Run due jobs; a failed job waits ``retry_base`` (so a test decides
    when the back-off is over, with :func:`make_due`)."""
    worker = jobs.Worker(registry, worker_id="notify-email-test")
    worker.retry_base = retry_base
    n = 0
    while n < limit and worker.run_one():
        n += 1
    return n


def make_due(registry) -> None:
    """The back-off is over: every queued job may run now."""
    with app_request(registry) as req:
        req.db.execute(update(jobs.Job).where(jobs.Job.status == jobs.QUEUED).values(run_at=utcnow()))


def send_jobs(registry) -> list[jobs.Job]:
    with app_request(registry) as req:
        rows = req.db.scalars(select(jobs.Job).where(jobs.Job.kind == "notify_email.send").order_by(jobs.Job.id))
        return [_detach(req.db, j) for j in rows]


def _detach(db, obj):
    db.expunge(obj)
    return obj


def log_rows(registry) -> list:
    from kameng_notify_email.models import Message

    with app_request(registry) as req:
        return [_detach(req.db, m) for m in req.db.scalars(select(Message).order_by(Message.id))]


def enable_sandbox(registry) -> None:
    set_plugin(registry, "sandbox", enabled=True, secret=SANDBOX_SECRET)


def paid_order(app, sku="MAIL1", contact="buyer@example.com", quantity=1, keys=3) -> str:
    """A card-key order, paid through the sandbox's signed notify (the core
    delivers its keys in the same transaction). Returns the order number."""
    from kameng.testing import add_card_sku, open_order

    if keys is not None:
        add_card_sku(app.registry, code=sku, price="5.00", keys=keys)
    order_no, attempt_no = open_order(app.registry, sku, "sandbox", quantity=quantity, contact=contact)
    pay(app, attempt_no, f"{5 * quantity}.00")
    return order_no


def pay(app, attempt_no: str, amount: str) -> None:
    import webtest
    from kameng_sandbox.gateway import signed_fields

    web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    resp = web.post("/pay/sandbox/notify", signed_fields(attempt_no, amount, "paid", SANDBOX_SECRET))
    assert resp.text == "success"


def order_keys(registry, order_no: str) -> list[str]:
    from kameng.orders import service as orders

    with app_request(registry) as req:
        order = orders.get(req.db, order_no)
        return [k["secret"] for k in orders.keys_of(req, order)]


def sold_key_count(registry) -> int:
    from sqlalchemy import func

    from kameng.inventory.models import CardKey

    with app_request(registry) as req:
        return req.db.scalar(select(func.count()).select_from(CardKey).where(CardKey.state == "sold"))


def body_of(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def html_of(msg) -> str | None:
    part = msg.get_body(preferencelist=("html",))
    return part.get_content() if part is not None else None
