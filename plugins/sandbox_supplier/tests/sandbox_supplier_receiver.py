"""A loopback HTTP server that stands in for the shop's callback route:
it records every POST and answers with the statuses it is told to."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, statuses=()):
        #: the statuses to answer, in order; 200 once they run out
        self.statuses = list(statuses)
        self.calls: list[tuple[str, dict, bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                payload = b"success" if status == 200 else b"fail"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                with receiver.arrived:
                    receiver.calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/supplier/callback/1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Receiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def wait_for(self, count: int, timeout: float = 30.0) -> list:
        """Block until ``count`` callbacks arrived (a bound, not a timing check)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.calls) >= count, timeout=timeout)
            assert len(self.calls) >= count, f"{len(self.calls)} callbacks arrived, expected {count}"
            return list(self.calls)
