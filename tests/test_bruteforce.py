"""Brute force (SECURITY.md #62, #64; ASVS V2.4.1, V6.3.1): sign-in, order
lookups with a query password and docking API signatures are limited per
client address and per account, order or key, with a lock and a clear
message, and the client address is one a buyer cannot forge.

The limiter's clock is pinned (``clock``): no test straddles a window, and
the end of a lock is reached by moving the clock, never by waiting."""
import configparser
import http.cookiejar
import os
import re
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request

import pytest
import webtest
from dockapi_helpers import body_bytes, make_account, signed
from orders_helpers import enable_sandbox, make_sku

from kameng import ratelimit, wallet
from kameng.cli import commands
from kameng.dock.auth import sign_request
from kameng.orders import access
from kameng.orders.checkout import RetryOrder
from kameng.storefront.views import LOGIN_LOCKED, LOGINS_LIMITED
from kameng.testing import LiveServer, free_port, login, open_order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMITS = {
    "kameng.limits.orders_per_ip_per_minute": "0",
    "kameng.limits.lookups_per_ip_per_minute": "6",
    "kameng.limits.lookup_failures_per_order": "3",
    "kameng.limits.lookup_lockout_minutes": "15",
    "kameng.limits.logins_per_ip_per_minute": "4",
    "kameng.login.max_failures": "3",
    "kameng.login.lockout_minutes": "15",
    "kameng.limits.dock_failures_per_ip_per_minute": "3",
    "kameng.limits.dock_failures_per_key_per_minute": "5",
}
OFF = {name: "0" for name in LIMITS}
ERROR = re.compile(r'<p class="error[^"]*"[^>]*>(.*?)</p>', re.DOTALL)
server_db_only = pytest.mark.skipif(
    not os.environ.get("KAMENG_TEST_DATABASE_URL", "").startswith(("postgresql", "mysql", "mariadb")),
    reason="a SQLite shop runs one app process and counts in its memory; shared counters need a database server")


@pytest.fixture(scope="module")
def bapp(make_app):
    return make_app(**LIMITS)


@pytest.fixture(scope="module")
def bapp2(make_app):
    """A second app process on the same database (its own engine and pool)."""
    return make_app(**LIMITS)


@pytest.fixture(scope="module")
def offapp(make_app):
    return make_app(**OFF)


@pytest.fixture
def registry(bapp):
    return bapp.registry


@pytest.fixture
def clock(monkeypatch):
    """The rate limiter's clock, pinned just after the start of an hour
    (the start of a minute window and of a 15-minute one)."""
    c = types.SimpleNamespace(now=float(int(time.time()) // 3600 * 3600 + 1))
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: c.now))
    return c


def client(app, addr):
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": addr})


def error_text(resp) -> str:
    found = ERROR.search(resp.text)
    return found.group(1).strip() if found else ""


def make_user(registry, email="buyer@example.com", password="buyer-password-123", role="buyer"):
    from kameng import accounts
    from kameng.testing import app_request

    with app_request(registry) as req:
        accounts.create_user(req.db, email, password, role=role)
    return email, password


@pytest.fixture
def order(registry):
    """A guest order with the query password ``pass1234``: ``(order_no, access token)``."""
    from kameng.orders.checkout import access_token
    from kameng.testing import app_request

    enable_sandbox(registry)
    make_sku(registry, "CARD10", keys=3)
    no, _attempt = open_order(registry, "CARD10", "sandbox")
    with app_request(registry) as req:
        return no, access_token(req, no)


def lookup(app, no, password, status, **headers):
    return app.get(f"/api/v1/orders/{no}", {"query_password": password}, headers=headers, status=status)


# -- the client address ------------------------------------------------------------------------------


def test_no_code_takes_the_client_address_from_x_forwarded_for():
    """WebOb's ``client_addr`` is the FIRST X-Forwarded-For entry: whatever
    the buyer wrote. Only ``remote_addr`` (set by waitress from the trusted
    proxy) may name the client."""
    offenders = []
    for top in ("kameng", "plugins"):
        for folder, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    with open(path, encoding="utf-8") as fh:
                        if re.search(r"\.client_addr\b", fh.read()):
                            offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


def test_a_forged_x_forwarded_for_does_not_escape_the_lookup_limit(bapp, clock):
    app = client(bapp, "198.51.100.1")
    for i in range(6):  # six different numbers: no number's own lock is reached
        lookup(app, f"{i + 1:020d}", "guess", 404, **{"X-Forwarded-For": f"203.0.113.{i + 1}"})
    resp = lookup(app, "7" * 20, "guess", 429, **{"X-Forwarded-For": "203.0.113.99"})
    assert resp.json["error"]["code"] == "rate_limited" and int(resp.headers["Retry-After"]) >= 1
    lookup(client(bapp, "198.51.100.2"), "7" * 20, "guess", 404)  # another address is not limited


class ProxiedServer(LiveServer):
    """A real waitress with the [server:main] proxy settings ``kameng init``
    writes; the test's requests come from 127.0.0.1, the trusted proxy."""

    def __init__(self, app, port, options):
        import waitress.server

        self.port, self.url, self.stopping = port, f"http://127.0.0.1:{port}", False
        self.server = waitress.server.create_server(app, host="127.0.0.1", port=port, **options)
        self.thread = threading.Thread(target=self._run, daemon=True)


def init_server_options() -> dict:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(commands.INI)
    options = dict(cp.items("server:main"))
    for name in ("use", "listen", "max_request_body_size"):
        options.pop(name, None)
    assert options["trusted_proxy"] == "127.0.0.1" and "x-forwarded-for" in options["trusted_proxy_headers"]
    return options


def test_behind_the_trusted_proxy_only_the_address_it_saw_counts(make_app, clock):
    """nginx appends the address it saw to the buyer's X-Forwarded-For: the
    buyer's own entries in front change nothing. (With these settings
    waitress also rewrites X-Forwarded-For to that one address; without
    them, every buyer would be 127.0.0.1 and share one limit.)"""
    port = free_port()
    server = ProxiedServer(make_app(**LIMITS), port, init_server_options()).start()

    numbers = iter(range(1, 100))

    def get(xff):
        # a new number each time: no number's own lock is reached
        req = urllib.request.Request(f"{server.url}/api/v1/orders/{next(numbers):020d}?query_password=guess",
                                     headers={"X-Forwarded-For": xff})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        assert [get(f"10.9.9.{i}, 192.0.2.7") for i in range(6)] == [404] * 6
        assert get("10.9.9.200, 192.0.2.7") == 429
        assert get("192.0.2.7") == 429
        assert get("10.9.9.1, 192.0.2.8") == 404  # another buyer behind the proxy
    finally:
        server.stop()


# -- signing in ----------------------------------------------------------------------------------------


def test_sign_in_attempts_are_limited_per_address(bapp, registry, clock):
    email, password = make_user(registry)
    app = client(bapp, "198.51.100.10")
    for i in range(4):  # four different unknown accounts: no account lock is reached
        resp = login(app, f"nobody{i}@example.com", "wrong-password-1")
        assert resp.status_int == 400
    resp = login(app, email, password)  # even the right password, now
    assert resp.status_int == 429 and error_text(resp) == LOGINS_LIMITED
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    app.get("/account", status=302)  # not signed in
    page = app.get("/login")
    form = page.forms["login-form"]
    form["email"], form["password"] = email, password
    assert form.submit(headers={"X-Forwarded-For": "203.0.113.5"}, expect_errors=True).status_int == 429
    assert login(client(bapp, "198.51.100.11"), email, password).status_int == 302
    clock.now += 60  # the next minute
    assert login(app, email, password).status_int == 302


def test_an_account_locks_and_an_unknown_email_locks_alike(bapp, registry, clock):
    """No account-existence oracle: the same answers, in the same order."""
    email, password = make_user(registry)
    answers = {}
    for who in (email, "nobody@example.com"):
        seen = []
        for i in range(3):  # each attempt from an address of its own: only the account counts
            resp = login(client(bapp, f"198.51.100.{20 + i}"), who, "wrong-password-1")
            seen.append((resp.status_int, error_text(resp), "Retry-After" in resp.headers))
        resp = login(client(bapp, "198.51.100.30"), who, password)
        seen.append((resp.status_int, error_text(resp), "Retry-After" in resp.headers))
        answers[who] = seen
    wrong = (400, "Wrong email or password.", False)
    locked = (429, LOGIN_LOCKED, True)
    assert answers[email] == [wrong, wrong, locked, locked]
    assert answers["nobody@example.com"] == answers[email]


def test_a_successful_sign_in_starts_the_count_afresh(bapp, registry, clock):
    email, password = make_user(registry)
    for _round in range(3):
        for i in range(2):
            assert login(client(bapp, f"198.51.100.{40 + i}"), email, "wrong-password-1").status_int == 400
        assert login(client(bapp, "198.51.100.42"), email, password).status_int == 302


def test_reset_password_unlocks_an_admin(bapp, registry, clock, monkeypatch, capsys):
    from kameng.cli import main

    email, _password = make_user(registry, "boss@example.com", "boss-password-123", role="admin")
    for i in range(3):
        login(client(bapp, f"198.51.100.{50 + i}"), email, "wrong-password-1")
    assert login(client(bapp, "198.51.100.53"), email, "boss-password-123").status_int == 429
    monkeypatch.setattr(commands, "load_registry", lambda _path: registry)
    assert main(["-c", "unused.ini", "admin", "reset-password", "--email", email,
                 "--password", "new-boss-password-1"]) == 0
    capsys.readouterr()
    assert login(client(bapp, "198.51.100.54"), email, "new-boss-password-1").status_int == 302


def _browser(base_url):
    """A client with its own cookie jar and the login form's CSRF token."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{base_url}/login", timeout=60) as r:
        token = re.search(r'name="csrf_token" value="([^"]+)"', r.read().decode()).group(1)
    return opener, token


def _post_login(opener, token, base_url, email, password):
    data = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password}).encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kw):
            return None

    opener.add_handler(NoRedirect())
    try:
        with opener.open(f"{base_url}/login", data=data, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_concurrent_wrong_passwords_get_no_guess_past_the_lock(make_app):
    """Ten wrong passwords for one account at once, each its own HTTP
    request to a real server: exactly ``max_failures - 1`` are answered
    "wrong", the others "locked"."""
    port = free_port()
    app = make_app(**{**LIMITS, "kameng.limits.logins_per_ip_per_minute": "0",
                      "kameng.base_url": f"http://127.0.0.1:{port}"})
    email, password = make_user(app.registry)
    server = LiveServer(app, port).start()
    try:
        browsers = [_browser(server.url) for _ in range(11)]
        start = threading.Barrier(10)
        results = [None] * 10

        def guess(i):
            start.wait()
            results[i] = _post_login(*browsers[i], server.url, email, f"wrong-password-{i}")

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        statuses = sorted(status for status, _text in results)
        assert statuses == [400, 400] + [429] * 8, statuses
        status, text = _post_login(*browsers[10], server.url, email, password)
        assert status == 429 and "locked" in text
    finally:
        server.stop()


def test_zero_turns_the_sign_in_limits_off(offapp, clock):
    email, password = make_user(offapp.registry)
    app = client(offapp, "198.51.100.60")
    for _ in range(12):
        assert login(app, email, "wrong-password-1").status_int == 400
    assert login(app, email, password).status_int == 302


# -- order lookups -------------------------------------------------------------------------------------


def test_wrong_query_passwords_lock_the_order(bapp, order, clock):
    no, token = order
    for i in range(8):  # right passwords do not count towards the lock (each from its own address)
        assert lookup(client(bapp, f"198.51.100.{70 + i}"), no, "pass1234", 200).json["order_no"] == no
    app = client(bapp, "198.51.100.80")
    for guess in ("aaaa", "bbbb", "cccc"):
        lookup(app, no, guess, 404)
    resp = lookup(client(bapp, "198.51.100.81"), no, "pass1234", 429)  # the right one, from elsewhere
    assert resp.json["error"] == {"code": "rate_limited", "message": access.ORDER_LOCKED}
    assert 1 <= int(resp.headers["Retry-After"]) <= 15 * 60
    # the buyer's own link still opens it: the token is not a guess
    assert app.get(f"/api/v1/orders/{no}", {"token": token}).json["order_no"] == no
    clock.now += 15 * 60
    assert lookup(client(bapp, "198.51.100.82"), no, "pass1234", 200).json["order_no"] == no


def test_a_lock_is_per_order(bapp, registry, order, clock):
    no, _token = order
    other, _attempt = open_order(registry, "CARD10", "sandbox")
    for i in range(3):
        lookup(client(bapp, f"198.51.100.{90 + i}"), no, "wrong", 404)
    lookup(client(bapp, "198.51.100.93"), no, "pass1234", 429)
    assert lookup(client(bapp, "198.51.100.93"), other, "pass1234", 200).json["order_no"] == other


def test_an_unknown_number_locks_alike(bapp, order, clock):
    """The lock tells no one whether an order has that number."""
    no, _token = order
    unknown = str(int(no) + 1)  # a number of the same shape nobody has
    answers = {}
    for n, number in enumerate((no, unknown)):
        seen = []
        for i in range(4):
            resp = lookup(client(bapp, f"198.51.{101 + n}.{i + 1}"), number, "wrong", "*")
            seen.append((resp.status_int, resp.json["error"]))
        answers[number] = seen
    assert answers[no][-1] == (429, {"code": "rate_limited", "message": access.ORDER_LOCKED})
    assert answers[unknown] == answers[no]


def _lookup_form(app, by, **fields):
    page = app.get("/query")
    form = page.forms["lookup-number" if by == "number" else "lookup-contact"]
    for name, value in fields.items():
        form[name] = value
    return form.submit(expect_errors=True)


def test_the_lookup_page_locks_an_order_and_a_contact(bapp, registry, order, clock):
    no, _token = order
    for i in range(3):
        assert _lookup_form(client(bapp, f"198.51.100.{110 + i}"), "number", order_no=no,
                            query_password="wrong").status_int == 404
    resp = _lookup_form(client(bapp, "198.51.100.113"), "number", order_no=no, query_password="pass1234")
    assert resp.status_int == 429 and error_text(resp) == access.ORDER_LOCKED
    assert "Retry-After" in resp.headers
    # the contact's lookup does not open a locked order, right password or not
    resp = _lookup_form(client(bapp, "198.51.100.114"), "contact", contact="buyer@example.com",
                        query_password="pass1234")
    assert resp.status_int == 404 and no not in resp.text
    # and misses lock the contact itself
    for i in range(2):
        _lookup_form(client(bapp, f"198.51.100.{115 + i}"), "contact", contact="buyer@example.com",
                     query_password="wrong")
    resp = _lookup_form(client(bapp, "198.51.100.117"), "contact", contact="buyer@example.com",
                        query_password="pass1234")
    assert resp.status_int == 429 and error_text(resp) == access.CONTACT_LOCKED


def test_zero_turns_the_lookup_limits_off(offapp, clock):
    enable_sandbox(offapp.registry)
    make_sku(offapp.registry, "CARD10", keys=1)
    no, _attempt = open_order(offapp.registry, "CARD10", "sandbox")
    app = client(offapp, "198.51.100.120")
    for _ in range(40):
        lookup(app, no, "wrong", 404)
    assert lookup(app, no, "pass1234", 200).json["order_no"] == no


# -- limits across app processes -----------------------------------------------------------------------


@server_db_only
def test_the_limits_hold_across_app_processes(bapp, bapp2, registry, order, clock):
    """Two app instances (engines, pools) on one database: what one counts, the other sees."""
    no, _token = order
    one, two = client(bapp, "198.51.100.130"), client(bapp2, "198.51.100.130")
    # an order's lock: two wrong guesses here, one there
    lookup(one, no, "wrong", 404)
    lookup(two, no, "wrong", 404)
    lookup(one, no, "wrong", 404)
    lookup(two, no, "pass1234", 429)
    # sign-in attempts per address: two and two, then the fifth is over the limit of four
    for app in (one, two, one, two):
        assert login(app, "nobody@example.com", "wrong-password-1").status_int in (400, 429)
    assert login(one, "someone@example.com", "wrong-password-1").status_int == 429
    # an unknown email's lock
    for i, app in enumerate((bapp, bapp2, bapp)):
        login(client(app, f"198.51.100.{140 + i}"), "ghost@example.com", "wrong-password-1")
    resp = login(client(bapp2, "198.51.100.143"), "ghost@example.com", "wrong-password-1")
    assert resp.status_int == 429 and error_text(resp) == LOGIN_LOCKED
    # refused docking requests per address
    creds = make_account(registry)
    for app in (bapp, bapp2, bapp):
        signed(client(app, "198.51.100.150"), creds, "GET", "/api/v1/dock/balance",
               headers={"X-Kameng-Signature": "00" * 32}, status=401)
    signed(client(bapp2, "198.51.100.150"), creds, "GET", "/api/v1/dock/balance", status=429)


# -- the docking API -----------------------------------------------------------------------------------

BAD = {"X-Kameng-Signature": "00" * 32}


def test_refused_docking_requests_are_limited_per_address(bapp, registry, clock):
    creds = make_account(registry)
    app = client(bapp, "198.51.100.160")
    for _ in range(3):
        signed(app, creds, "GET", "/api/v1/dock/balance", headers=BAD, status=401)
    resp = signed(app, creds, "GET", "/api/v1/dock/balance", status=429)  # even a valid one, now
    assert resp.json["error"]["code"] == "rate_limited" and 1 <= int(resp.headers["Retry-After"]) <= 60
    # a forged X-Forwarded-For is not another address
    signed(app, creds, "GET", "/api/v1/dock/balance", headers={"X-Forwarded-For": "203.0.113.7"}, status=429)
    # the same key from another address is not affected
    signed(client(bapp, "198.51.100.161"), creds, "GET", "/api/v1/dock/balance", status=200)
    clock.now += 60
    signed(app, creds, "GET", "/api/v1/dock/balance", status=200)


def test_refused_docking_requests_are_limited_per_key(bapp, registry, clock):
    creds = make_account(registry)
    other = make_account(registry, email="other@example.com")
    for i in range(5):  # five addresses, one refusal each: under the per-address limit
        signed(client(bapp, f"198.51.100.{170 + i}"), creds, "GET", "/api/v1/dock/balance", headers=BAD,
               status=401)
    fresh = client(bapp, "198.51.100.180")
    resp = signed(fresh, creds, "GET", "/api/v1/dock/balance", status=429)
    assert resp.json["error"]["code"] == "rate_limited" and "Retry-After" in resp.headers
    signed(fresh, other, "GET", "/api/v1/dock/balance", status=200)  # another key is not affected


def test_zero_turns_the_docking_limits_off(offapp, clock):
    creds = make_account(offapp.registry)
    app = client(offapp, "198.51.100.190")
    for _ in range(25):
        signed(app, creds, "GET", "/api/v1/dock/balance", headers=BAD, status=401)
    signed(app, creds, "GET", "/api/v1/dock/balance", status=200)


def test_a_refused_docked_request_cannot_be_sent_again(bapp, registry, clock):
    """Its nonce stays used although the refusal rolled its transaction
    back: a captured request refused for want of balance cannot be replayed
    once the balance is there."""
    make_sku(registry, "CARD10", price="10.00", keys=2)
    creds = make_account(registry)
    body = body_bytes({"sku": "CARD10", "quantity": 1, "out_order_no": "REPLAY-1"})
    headers = sign_request(creds[1], creds[2], "POST", "/api/v1/dock/orders", body)
    app = client(bapp, "198.51.100.200")
    resp = app.post("/api/v1/dock/orders", body, headers=headers, content_type="application/json", status=409)
    assert resp.json["error"]["code"] == "insufficient_balance"
    from kameng.testing import app_request

    with app_request(registry) as req:
        wallet.post(req.db, creds[0], 5000, "CNY", "admin", note="test credit")
    resp = app.post("/api/v1/dock/orders", body, headers=headers, content_type="application/json", status=401)
    assert resp.json["error"]["code"] == "nonce_reused"


def test_a_retried_docked_request_keeps_its_own_nonce(bapp, registry, clock, monkeypatch):
    """pyramid_retry runs a request again after a conflict: the nonce its
    first attempt kept is its own, not a replay."""
    creds = make_account(registry)
    real, calls = wallet.balance, []

    def conflict_once(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RetryOrder()
        return real(*args, **kw)

    monkeypatch.setattr(wallet, "balance", conflict_once)
    resp = signed(client(bapp, "198.51.100.210"), creds, "GET", "/api/v1/dock/balance", status=200)
    assert len(calls) == 2 and resp.json["balance"] == "0.00"
