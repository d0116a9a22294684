"""A fake webhook receiver on 127.0.0.1 and helpers to drive the plugin."""
from __future__ import annotations

import hashlib
import hmac
import http.server
import re
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select, update

from kameng import jobs
from kameng.db import utcnow
from kameng.testing import app_request, free_port, run_jobs


@dataclass
class Received:
    path: str
    headers: dict  # lower-case names
    body: bytes
    at: float


@dataclass
class Receiver:
    """Records every POST and answers from ``plan`` (one entry per request,
    then ``default``): an int status, ``"timeout"`` (sleeps past the
    client's timeout, then answers 200) or ``"redirect"`` (a 302)."""

    port: int = field(default_factory=free_port)
    plan: list = field(default_factory=list)
    default: object = 200
    sleep: float = 2.5
    received: list = field(default_factory=list)

    def __post_init__(self):
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, time.time()))
                    answer = receiver.plan.pop(0) if receiver.plan else receiver.default
                if answer == "timeout":
                    time.sleep(receiver.sleep)
                    answer = 200
                if answer == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                text = b"ok" if 200 <= int(answer) < 300 else b"receiver says no <b>" + str(answer).encode()
                self.send_response(int(answer))
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                try:
                    self.wfile.write(text)
                except OSError:  # the client gave up (a timeout)
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def expected_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """Computed here, independently of the plugin's code."""
    msg = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def receiver_verifies(secret: str, got: Received, now: float | None = None, tolerance: int = 300) -> bool:
    """What a receiver does (as docs/webhooks.md shows): timestamp fresh,
    signature equal in constant time."""
    now = time.time() if now is None else now
    ts = got.headers.get("x-kameng-webhook-timestamp", "")
    if not ts.isdigit() or abs(now - int(ts)) > tolerance:
        return False
    want = expected_signature(secret, got.headers.get("x-kameng-webhook-id", ""), ts, got.body)
    return hmac.compare_digest(want, got.headers.get("x-kameng-webhook-signature", ""))


def make_endpoint(registry, url, events="order.* payment.* refund.* stock.low", active=True, description=""):
    """An endpoint made through the service, as the admin page does; returns (id, secret)."""
    from kameng_webhooks import service

    with app_request(registry, actor="admin@example.com") as req:
        endpoint, secret = service.create_endpoint(req, url, description, service.parse_events([events]),
                                                   active=active)
        return endpoint.id, secret


def emit(registry, event, data):
    from kameng import notifications

    with app_request(registry) as req:
        notifications.emit(req.db, event, data)


def webhook_jobs(registry, status=jobs.QUEUED):
    with app_request(registry) as req:
        return req.db.scalars(select(jobs.Job).where(jobs.Job.kind == "webhooks.send", jobs.Job.status == status)
                              .order_by(jobs.Job.id)).all()


def make_due(registry) -> None:
    """Bring every queued job forward to now (the retry delays are real minutes)."""
    with app_request(registry) as req:
        req.db.execute(update(jobs.Job).where(jobs.Job.status == jobs.QUEUED).values(run_at=utcnow()))


def run_all(registry, rounds=20) -> None:
    """Run jobs, making delayed ones due, until none is left."""
    for _ in range(rounds):
        make_due(registry)
        if not run_jobs(registry):
            return


def deliveries(registry):
    from kameng_webhooks.models import Delivery

    with app_request(registry) as req:
        return req.db.scalars(select(Delivery).order_by(Delivery.id)).all()


def attempts(registry, delivery_id):
    from kameng_webhooks.models import Attempt, Delivery

    with app_request(registry) as req:
        pk = req.db.scalar(select(Delivery.id).where(Delivery.delivery_id == delivery_id))
        return req.db.scalars(select(Attempt).where(Attempt.delivery_pk == pk).order_by(Attempt.number)).all()


def csrf_of(page) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m, "no CSRF token on the page"
    return m.group(1)


def create_via_admin(client, url, events=("order.*",), other="", description="", active=True, status=200):
    """The new-endpoint form of /-/webhooks/, filled in and submitted."""
    page = client.get("/-/webhooks/")
    form = page.forms["endpoint-form"]
    form["url"] = url
    form["description"] = description
    for box in form.fields["events"]:
        box.checked = box._value in events
    form["other_events"] = other
    form["active"] = active
    return form.submit(status=status)
