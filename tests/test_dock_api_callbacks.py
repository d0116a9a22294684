"""Docking API callbacks: the order POSTed to its callback_url, signed with
the key that placed it, when it is delivered or refunded; retried until the
downstream takes it."""
import json

import pytest
from dockapi_fake import Downstream
from dockapi_helpers import make_account, signed
from orders_helpers import make_due, make_sku
from sqlalchemy import select

from kameng import accounts, jobs
from kameng.dock import auth
from kameng.testing import app_request, run_jobs

PHONE = [{"name": "phone", "label": "Phone", "kind": "mobile_cn"}]
CALLBACK = "kameng.dock.callback"


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch):
    """The fake downstream listens on 127.0.0.1 (another test module's app may have turned this off)."""
    from kameng import httpclient

    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)


@pytest.fixture
def creds(registry):
    make_sku(registry, code="CARD10", price="10.00", keys=5)
    return make_account(registry, balance=10000)


@pytest.fixture
def admin_auth(registry, admin):
    with app_request(registry) as req:
        token = accounts.create_token(req.db, accounts.find_user(req.db, admin[0]), "dock-tests")
    return {"Authorization": f"Bearer {token}"}


def callback_jobs(registry):
    with app_request(registry) as req:
        return req.db.execute(select(jobs.Job.status, jobs.Job.attempts, jobs.Job.max_attempts, jobs.Job.last_error)
                              .where(jobs.Job.kind == CALLBACK).order_by(jobs.Job.id)).all()


def verify(creds, received) -> dict:
    """What a downstream does: check the signature over what arrived, then read it."""
    h = {k.lower(): v for k, v in received["headers"].items()}
    assert h["x-kameng-key"] == creds[1]
    auth.check_signature(creds[2], received["method"], received["path"], received["body"], h["x-kameng-timestamp"],
                         h["x-kameng-nonce"], h["x-kameng-signature"])
    assert h["content-type"] == "application/json"
    body = json.loads(received["body"])
    assert h["x-kameng-event"] == body["event"]
    return body


def drain(registry, rounds=12):
    for _ in range(rounds):
        make_due(registry)
        run_jobs(registry)


def test_delivered_callback_is_signed_and_carries_the_keys(testapp, registry, creds):
    with Downstream() as down:
        made = signed(testapp, creds, "POST", "/api/v1/dock/orders",
                      {"sku": "CARD10", "quantity": 2, "out_order_no": "CB-1",
                       "callback_url": f"{down.url}/kameng/callback?shop=7&a=1"}, status=201).json
        run_jobs(registry)
        assert len(down.received) == 1
        got = down.received[0]
        assert got["path"] == "/kameng/callback?shop=7&a=1"
        body = verify(creds, got)
    assert body == {"event": "delivered", **made}
    assert [r[0] for r in callback_jobs(registry)] == ["done"]


def test_a_tampered_callback_does_not_verify(testapp, registry, creds):
    with Downstream() as down:
        signed(testapp, creds, "POST", "/api/v1/dock/orders",
               {"sku": "CARD10", "quantity": 1, "out_order_no": "CB-2", "callback_url": f"{down.url}/cb"}, status=201)
        run_jobs(registry)
    got = dict(down.received[0])
    got["body"] = got["body"].replace(b'"delivered"', b'"refunded"', 1)
    with pytest.raises(auth.SignatureError):
        verify(creds, got)
    with pytest.raises(auth.SignatureError):
        verify((creds[0], creds[1], "dks_another-secret"), down.received[0])


def test_the_callback_is_retried_until_taken(testapp, registry, creds):
    with Downstream(statuses=[500, 503, 200]) as down:
        signed(testapp, creds, "POST", "/api/v1/dock/orders",
               {"sku": "CARD10", "quantity": 1, "out_order_no": "CB-3", "callback_url": f"{down.url}/cb"}, status=201)
        drain(registry)
        assert len(down.received) == 3
        bodies = [verify(creds, r) for r in down.received]
    assert {b["event"] for b in bodies} == {"delivered"}
    # every attempt is signed afresh: a new nonce each time
    assert len({r["headers"]["X-Kameng-Nonce"] for r in down.received}) == 3
    (status, attempts, max_attempts, _err), = callback_jobs(registry)
    assert (status, attempts, max_attempts) == ("done", 3, 8)


def test_an_unreachable_downstream_ends_in_the_dead_letters(testapp, registry, creds):
    from kameng.testing import free_port

    url = f"http://127.0.0.1:{free_port()}/cb"  # nobody listens
    signed(testapp, creds, "POST", "/api/v1/dock/orders",
           {"sku": "CARD10", "quantity": 1, "out_order_no": "CB-4", "callback_url": url}, status=201)
    drain(registry, rounds=10)
    (status, attempts, _max, error), = callback_jobs(registry)
    assert (status, attempts) == ("dead", 8) and "cannot connect" in error
    # the order itself is delivered; the downstream can still ask for it
    assert signed(testapp, creds, "GET", "/api/v1/dock/orders/CB-4").json["status"] == "delivered"


def test_refunded_callback(testapp, registry, creds, admin_auth):
    with Downstream() as down:
        made = signed(testapp, creds, "POST", "/api/v1/dock/orders",
                      {"sku": "CARD10", "quantity": 1, "out_order_no": "CB-5", "callback_url": f"{down.url}/cb"},
                      status=201).json
        run_jobs(registry)
        testapp.post_json(f"/api/v1/admin/orders/{made['order_no']}/refund", {"reason": "customer asked"},
                          headers=admin_auth)
        run_jobs(registry)
        events = [verify(creds, r) for r in down.received]
    assert [e["event"] for e in events] == ["delivered", "refunded"]
    assert events[1]["status"] == "refunded" and events[1]["refunded"] == "10.00"
    assert signed(testapp, creds, "GET", "/api/v1/dock/balance").json["balance"] == "100.00"


def test_a_failed_recharge_is_refunded_and_called_back(testapp, registry, admin_auth):
    make_sku(registry, code="TOPUP50", price="49.80", type_="direct_recharge", keys=0, recharge_fields=PHONE)
    creds = make_account(registry, balance=10000)
    with Downstream() as down:
        made = signed(testapp, creds, "POST", "/api/v1/dock/orders",
                      {"sku": "TOPUP50", "quantity": 1, "out_order_no": "CB-6", "recharge": {"phone": "13800138000"},
                       "callback_url": f"{down.url}/cb"}, status=201).json
        run_jobs(registry)
        assert down.received == []  # nothing final yet
        testapp.post_json(f"/api/v1/admin/orders/{made['order_no']}/refund", {"reason": "upstream failed"},
                          headers=admin_auth)
        run_jobs(registry)
        events = [verify(creds, r) for r in down.received]
    assert [(e["event"], e["status"]) for e in events] == [("refunded", "refunded")]
    assert events[0]["failure_reason"] == "upstream failed"


def test_delivered_by_hand_callback_has_the_note(testapp, registry, admin_auth):
    make_sku(registry, code="MAN5", price="5.00", type_="manual", keys=0, name="Manual goods")
    creds = make_account(registry, balance=10000)
    with Downstream() as down:
        made = signed(testapp, creds, "POST", "/api/v1/dock/orders",
                      {"sku": "MAN5", "quantity": 1, "out_order_no": "CB-7", "callback_url": f"{down.url}/cb"},
                      status=201).json
        run_jobs(registry)
        testapp.post_json(f"/api/v1/admin/orders/{made['order_no']}/deliver",
                          {"reason": "done", "text": "account: demo / pass: 1234"}, headers=admin_auth)
        run_jobs(registry)
        (event,) = [verify(creds, r) for r in down.received]
    assert event["event"] == "delivered" and event["delivery_note"] == "account: demo / pass: 1234"


def test_no_callback_url_no_callback(testapp, registry, creds):
    signed(testapp, creds, "POST", "/api/v1/dock/orders", {"sku": "CARD10", "quantity": 1, "out_order_no": "CB-8"},
           status=201)
    assert callback_jobs(registry) == []
