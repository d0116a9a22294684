"""Shared by the dock connector's tests (a module of its own: tests import
it by name, not through ``conftest``)."""
from __future__ import annotations

from dock_fake import FakeUpstream
from kameng_dock.connector import DockConnector
from pyramid.request import Request

KEY_ID = "dk_test_0001"
SECRET = "dock-test-secret-0123456789abcdef0123"
CALLBACK_URL = "http://127.0.0.1:9/supplier/callback/7"


def build_fake() -> FakeUpstream:
    """A started upstream with one account (100.00 CNY, a tier price of 9.00
    on GC-10), a card product with 5 keys per option and a direct recharge."""
    upstream = FakeUpstream().start()
    upstream.add_account(KEY_ID, SECRET, "100.00", prices={"GC-10": "9.00"})
    upstream.add_goods(101, "Game card", "card_key",
                       [{"code": "GC-10", "name": "10 credits", "price": "9.50", "keys": 5},
                        {"code": "GC-50", "name": "50 credits", "price": "47.00", "keys": 5}],
                       category="Games", description="A card for a game.")
    upstream.add_goods("topup-7", "Phone top-up", "direct_recharge",
                       [{"code": "TOP-30", "name": "30 CNY", "price": "29.40"}],
                       recharge_fields=[{"name": "account", "label": "Phone number", "required": True}])
    return upstream


def make_connector(fake, timeout: float = 5.0, **settings) -> DockConnector:
    conn = DockConnector({"url": fake.url, "key_id": KEY_ID, "secret": SECRET, **settings})
    conn.timeout = timeout
    return conn


def as_request(url: str, headers: dict, body: bytes, method: str = "POST") -> Request:
    """The callback as the shop's route would see it: exactly these bytes."""
    req = Request.blank(url, method=method, headers=headers)
    req.body = body
    return req


class CallbackCatcher:
    """A downstream's callback route on 127.0.0.1 that keeps what arrives
    (method, path with query, headers, raw body) and answers ``success``."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[dict] = []
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                catcher.received.append({"method": "POST", "path": self.path, "headers": dict(self.headers),
                                         "body": body})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"success")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def request(self, i: int = -1) -> Request:
        got = self.received[i]
        return as_request(self.url + got["path"], got["headers"], got["body"], got["method"])
