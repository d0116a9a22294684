"""The core notify path, driven through the sandbox gateway's notify route."""
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from sqlalchemy import func, select

from kameng.payments import service
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.testing import app_request, set_plugin
from kameng_sandbox.gateway import signed_fields

SECRET = "sandbox-secret-for-tests-0123456789"


@pytest.fixture
def sandbox(registry):
    set_plugin(registry, "sandbox", enabled=True, secret=SECRET)


def new_attempt(registry, amount=1250, gateway="sandbox"):
    with app_request(registry) as req:
        gw = service.get_gateway(req, gateway)
        return service.create_attempt(req, gw, amount, "CNY", "test").attempt_no


def attempt(registry, attempt_no):
    with app_request(registry) as req:
        return req.db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == attempt_no))


def outcomes(registry):
    with app_request(registry) as req:
        return [n.outcome for n in req.db.scalars(select(PaymentNotice).order_by(PaymentNotice.id))]


def test_valid_notify_pays_once_and_replay_changes_nothing(testapp, registry, sandbox):
    no = new_attempt(registry)
    fields = signed_fields(no, "12.50", "paid", SECRET)
    resp = testapp.post("/pay/sandbox/notify", fields)
    assert resp.status_int == 200 and resp.text == "success"
    paid = attempt(registry, no)
    assert paid.status == "paid" and paid.provider_trade_no == "SBX" + no
    resp = testapp.post("/pay/sandbox/notify", fields)
    assert resp.text == "success"
    assert attempt(registry, no).paid_at == paid.paid_at
    assert outcomes(registry) == ["applied", "duplicate"]


def test_amount_written_differently_is_the_same_amount(testapp, registry, sandbox):
    no = new_attempt(registry, amount=1000)
    testapp.post("/pay/sandbox/notify", signed_fields(no, "10.0", "paid", SECRET))
    assert attempt(registry, no).status == "paid"


@pytest.mark.parametrize("amount", ["0.01", "12.49", "12.51", "1250"])
def test_wrong_amount_is_refused(testapp, registry, sandbox, amount):
    no = new_attempt(registry)
    resp = testapp.post("/pay/sandbox/notify", signed_fields(no, amount, "paid", SECRET), status=400)
    assert resp.text == "fail"
    assert attempt(registry, no).status == "pending"
    assert outcomes(registry) == ["amount_mismatch"]


def test_unknown_attempt_is_refused(testapp, registry, sandbox):
    testapp.post("/pay/sandbox/notify", signed_fields("P999", "1.00", "paid", SECRET), status=400)
    assert outcomes(registry) == ["unknown_attempt"]


def test_forged_and_malformed_notifies_change_nothing(testapp, registry, sandbox):
    no = new_attempt(registry)
    good = signed_fields(no, "12.50", "paid", SECRET)
    testapp.post("/pay/sandbox/notify", {**good, "sign": "f" * 64}, status=400)
    testapp.post("/pay/sandbox/notify", {k: v for k, v in good.items() if k != "sign"}, status=400)
    testapp.post("/pay/sandbox/notify", signed_fields(no, "12.50", "paid", "wrong-secret-0123456789"), status=400)
    testapp.post("/pay/sandbox/notify", signed_fields(no, "12.50", "paid", SECRET, now=time.time() - 400), status=400)
    # the same field twice (parameter pollution), once in the query and once in the body
    body = urllib.parse.urlencode(list(good.items()) + [("attempt_no", "P-other")])
    testapp.post("/pay/sandbox/notify", body, content_type="application/x-www-form-urlencoded", status=400)
    testapp.post(f"/pay/sandbox/notify?attempt_no={no}", good, status=400)
    testapp.get("/pay/sandbox/notify", good, status=400)
    assert attempt(registry, no).status == "pending"
    assert outcomes(registry) == ["rejected"] * 7
    with app_request(registry) as req:
        payloads = " ".join(n.payload for n in req.db.scalars(select(PaymentNotice)))
    assert good["sign"] not in payloads  # signatures are not stored


def test_failed_notify_marks_failed_and_is_acknowledged(testapp, registry, sandbox):
    no = new_attempt(registry)
    assert testapp.post("/pay/sandbox/notify", signed_fields(no, "12.50", "failed", SECRET)).text == "success"
    assert attempt(registry, no).status == "failed"


def test_notify_for_a_disabled_gateway_is_404(testapp, registry, sandbox):
    no = new_attempt(registry)
    set_plugin(registry, "sandbox", enabled=False)
    testapp.post("/pay/sandbox/notify", signed_fields(no, "12.50", "paid", SECRET), status=404)
    testapp.get(f"/pay/sandbox/pay/{no}", status=404)
    assert attempt(registry, no).status == "pending"
    set_plugin(registry, "sandbox", enabled=True)
    testapp.post("/pay/sandbox/notify", signed_fields(no, "12.50", "paid", SECRET))
    assert attempt(registry, no).status == "paid"


def test_unknown_gateway_is_404(testapp):
    testapp.post("/pay/nope/notify", {"a": "b"}, status=404)


def test_pay_page_is_marked_as_test_and_pays_through_the_core(testapp, registry, sandbox):
    no = new_attempt(registry)
    page = testapp.get(f"/pay/sandbox/pay/{no}")
    assert "TEST PAYMENT" in page.text and "12.50" in page.text
    page.forms["sandbox-paid"].submit().follow()
    assert attempt(registry, no).status == "paid"
    assert outcomes(registry) == ["applied"]
    page = testapp.get(f"/pay/sandbox/pay/{no}")
    assert "Payment received." in page.text and "sandbox-paid" not in page.text


def test_pay_page_post_needs_csrf(testapp, registry, sandbox):
    no = new_attempt(registry)
    testapp.post(f"/pay/sandbox/pay/{no}", {"outcome": "paid"}, status=400)
    assert attempt(registry, no).status == "pending"


def test_admin_gateway_test_payment(admin_app, registry, sandbox):
    form = admin_app.get("/admin/payments").forms["test-payment"]
    form["amount"] = "0.01"
    resp = form.submit()
    assert "/pay/sandbox/pay/P" in resp.location
    resp.follow().forms["sandbox-paid"].submit()
    page = admin_app.get("/admin/payments")
    assert "applied" in page.text and "paid" in page.text
    form = admin_app.get("/admin/payments").forms["test-payment"]
    form["amount"] = "-1"
    assert "positive amount" in form.submit().follow().text


@pytest.mark.slow
def test_concurrent_identical_notifies_pay_exactly_once(live_server, registry, sandbox):
    """Twenty identical notifies at once, through a real server and database."""
    no = new_attempt(registry)
    data = urllib.parse.urlencode(signed_fields(no, "12.50", "paid", SECRET)).encode()
    results = []
    start = threading.Barrier(20)

    def send():
        start.wait()
        try:
            with urllib.request.urlopen(f"{live_server.url}/pay/sandbox/notify", data, timeout=30) as r:
                results.append((r.status, r.read().decode()))
        except urllib.error.HTTPError as e:
            results.append((e.code, e.read().decode()))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count((200, "success")) == 20, results
    got = outcomes(registry)
    assert got.count("applied") == 1 and got.count("duplicate") == 19
    with app_request(registry) as req:
        assert req.db.scalar(select(func.count()).select_from(PaymentAttempt).where(
            PaymentAttempt.status == "paid")) == 1


def test_attempt_numbers_fit_every_gateway():
    numbers = {service.new_attempt_no() for _ in range(1000)}
    assert len(numbers) == 1000
    assert all(len(n) == 32 and n.isalnum() for n in numbers)


def test_pay_urls_use_the_configured_base_url_not_the_host_header(registry, sandbox):
    from pyramid.request import Request
    from pyramid.scripting import prepare

    env = prepare(request=Request.blank("/", base_url="http://evil.example"), registry=registry)
    req = env["request"]
    try:
        with req.tm:
            gw = service.get_gateway(req, "sandbox")
            action = gw.create_payment(req, service.create_attempt(req, gw, 100, "CNY", "x"))
    finally:
        env["closer"]()
    assert action.url.startswith("http://localhost/pay/sandbox/pay/P")


def test_a_notify_that_cannot_be_taken_gets_a_bare_fail_never_a_page(testapp, registry, sandbox):
    """epay counts any reply containing "success" as taken; an HTML page that
    repeats the query string (TRADE_SUCCESS) in its links would stop its
    retries for a payment the shop never recorded."""
    query = "?trade_status=TRADE_SUCCESS&out_trade_no=P1&money=1.00&sign=x"
    set_plugin(registry, "sandbox", enabled=False)
    for path in ("/pay/sandbox/notify", "/pay/nosuchgateway/notify"):
        for method in ("GET", "POST"):
            resp = testapp.request(path + query, method=method, expect_errors=True)
            assert (resp.status_int, resp.text, resp.content_type) == (404, "fail", "text/plain")


def test_a_notify_that_fails_inside_rolls_back_and_asks_for_a_retry(testapp, registry, sandbox, monkeypatch):
    from kameng.payments import views

    attempt_no = new_attempt(registry)

    def broken(request, gateway, n):
        service.record_notice(request, gateway.identifier, n.attempt_no, True, "applied", "", {})
        raise RuntimeError("the database went away")

    monkeypatch.setattr(views, "apply_notification", broken)
    fields = signed_fields(attempt_no, "12.50", "paid", SECRET)
    resp = testapp.post("/pay/sandbox/notify", fields, expect_errors=True)
    assert (resp.status_int, resp.text) == (503, "fail")
    assert outcomes(registry) == []  # the half-written notice was rolled back
    assert attempt(registry, attempt_no).status == "pending"
