"""A fake Telegram Bot API on 127.0.0.1: records every request and answers
from a script (``ok`` by default, or 429 with ``retry_after``, 403, 500 …)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "123456789:AAFakeTelegramBotTokenForTests_0123"
CHAT_ID = "-1001234567890"


def ok(message_id=1):
    return 200, {"ok": True, "result": {"message_id": message_id, "chat": {"id": int(CHAT_ID)}}}


def too_many(retry_after=7):
    return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                 "parameters": {"retry_after": retry_after}}


def forbidden():
    return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}


def chat_not_found():
    return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}


def server_error():
    return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}


class FakeTelegram:
    def __init__(self):
        self.requests: list[dict] = []  # {"path", "body", "content_type"}
        self.script: list[tuple[int, dict]] = []  # answers to give, first first; then ok
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "content_type": self.headers.get("Content-Type", "")})
                    status, answer = fake.script.pop(0) if fake.script else ok(len(fake.requests))
                if not self.path.startswith(f"/bot{TOKEN}/"):
                    status, answer = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
                out = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeTelegram:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def answer(self, *answers) -> None:
        with self.lock:
            self.script.extend(answers)

    @property
    def messages(self) -> list[dict]:
        return [r["body"] for r in self.requests if r["path"].endswith("/sendMessage")]
