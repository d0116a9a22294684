"""kameng.httpclient: what every call to a gateway or supplier gets —
timeouts, no redirects, a size cap, the URL policy and logs without query
strings — against a real server on 127.0.0.1."""
import http.server
import logging
import threading
import time

import pytest

from kameng import httpclient
from kameng.httpclient import HttpError


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()
        elif self.path.startswith("/big"):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * (httpclient.MAX_BYTES + 10))
        elif self.path.startswith("/slow"):
            time.sleep(1.0)
            self.send_response(200)
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("X-Test", "yes")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.headers["Content-Type"].encode() + b"|" + body)


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def allow_private(monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)


def test_a_call_returns_status_headers_and_raw_bytes(server, allow_private):
    resp = httpclient.get(server + "/ok")
    assert (resp.status, resp.header("x-test"), resp.body) == (200, "yes", b'{"ok": true}')
    resp = httpclient.post_form(server + "/f", {"a": "1", "b": "支付"})
    assert resp.text == "application/x-www-form-urlencoded|a=1&b=%E6%94%AF%E4%BB%98"
    resp = httpclient.post_json(server + "/j", b'{"k":1}')
    assert resp.text == 'application/json|{"k":1}'


def test_redirects_are_not_followed(server, allow_private):
    assert httpclient.get(server + "/redirect").status == 302


def test_an_answer_larger_than_the_cap_is_refused(server, allow_private):
    with pytest.raises(HttpError, match="too large"):
        httpclient.get(server + "/big")


def test_a_read_timeout_is_uncertain_and_a_refused_connection_is_not(server, allow_private):
    with pytest.raises(HttpError) as exc:
        httpclient.get(server + "/slow", timeout=0.2)
    assert exc.value.uncertain  # the request was sent: the provider may have acted
    with pytest.raises(HttpError) as exc:
        httpclient.get("http://127.0.0.1:1/nothing-listens")
    assert not exc.value.uncertain


def test_the_log_names_the_url_without_its_query_string(server, allow_private, caplog):
    caplog.set_level(logging.INFO, logger="kameng.httpclient")
    httpclient.get(server + "/ok?act=order&key=MERCHANTKEY123", timeout=5)
    assert "MERCHANTKEY123" not in caplog.text
    assert [r.url for r in caplog.records] == [server + "/ok"]
    with pytest.raises(HttpError) as exc:
        httpclient.get("http://user:pw@127.0.0.1:1/x?key=MERCHANTKEY123")
    assert "MERCHANTKEY123" not in str(exc.value) and "pw" not in str(exc.value)


@pytest.mark.parametrize("url,reason", [
    ("http://pay.example.com/submit.php", "https://"),
    ("https://127.0.0.1/x", "private or loopback"),
    ("https://localhost:8443/x", "private or loopback"),
    ("https://10.1.2.3/x", "private or loopback"),
    ("https://169.254.169.254/latest/meta-data", "private or loopback"),
    ("https://[::1]/x", "private or loopback"),
    ("ftp://pay.example.com/x", "http and https"),
    ("file:///etc/passwd", "http and https"),
])
def test_the_url_policy_refuses_plain_http_and_private_addresses(url, reason, monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    with pytest.raises(HttpError, match=reason):
        httpclient.check_url(url)
    with pytest.raises(HttpError, match=reason):
        httpclient.get(url)


def test_a_public_https_url_passes_the_policy_without_resolving(monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    httpclient.check_url("https://openapi.alipay.com/gateway.do", resolve=False)


def test_the_setting_turns_the_policy_off():
    before = httpclient.ALLOW_PRIVATE
    try:
        httpclient.configure({"kameng.http.allow_private_targets": "false"})
        assert httpclient.ALLOW_PRIVATE is False
        httpclient.configure({"kameng.http.allow_private_targets": "true"})
        assert httpclient.ALLOW_PRIVATE is True
    finally:
        httpclient.ALLOW_PRIVATE = before
