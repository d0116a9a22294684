"""Docking API orders: paid from the balance, delivered with their keys,
idempotent on out_order_no per account, refused whole when the balance is
short; and 20 identical requests at once over real HTTP."""
import threading

import pytest
from dockapi_helpers import http_signed, make_account, signed
from orders_helpers import NO_LIMITS, key_counts, make_sku
from sqlalchemy import func, select

from kameng import httpclient, wallet
from kameng.dock.models import DockOrder
from kameng.orders.models import Order
from kameng.testing import LiveServer, app_request, free_port, run_jobs
from kameng.wallet import LedgerEntry

PHONE = [{"name": "phone", "label": "Phone", "kind": "mobile_cn"}]


def order(sku="CARD10", quantity=1, out="OUT-1", **extra):
    return {"sku": sku, "quantity": quantity, "out_order_no": out, **extra}


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch):
    """The fake downstream listens on 127.0.0.1 (another test module's app may have turned this off)."""
    from kameng import httpclient

    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)


@pytest.fixture
def sku_id(registry):
    return make_sku(registry, code="CARD10", price="10.00", keys=5)[1]


@pytest.fixture
def creds(registry):
    return make_account(registry, balance=10000)


def counts(registry, user_id):
    with app_request(registry) as req:
        return {"orders": req.db.scalar(select(func.count()).select_from(Order)),
                "links": req.db.scalar(select(func.count()).select_from(DockOrder)),
                "debits": req.db.scalar(select(func.count()).select_from(LedgerEntry).where(
                    LedgerEntry.user_id == user_id, LedgerEntry.reason == "order")),
                "balance": wallet.balance(req.db, user_id)}


def test_an_order_is_paid_from_the_balance_and_delivered(testapp, registry, sku_id, creds):
    resp = signed(testapp, creds, "POST", "/api/v1/dock/orders", order(quantity=2), status=201)
    made = resp.json
    assert made["out_order_no"] == "OUT-1" and made["status"] == "delivered" and made["amount"] == "20.00"
    assert sorted(k["secret"] for k in made["keys"]) == ["CARD10-KEY-0000", "CARD10-KEY-0001"]
    assert all(set(k) == {"secret"} for k in made["keys"])  # no number for keys imported without one
    assert resp.headers["Cache-Control"] == "no-store"
    assert counts(registry, creds[0]) == {"orders": 1, "links": 1, "debits": 1, "balance": 8000}
    assert key_counts(registry, sku_id)["sold"] == 2
    with app_request(registry) as req:
        o = req.db.scalar(select(Order))
        assert (o.user_id, o.payment_method, o.contact) == (creds[0], "balance", "agent@example.com")
    run_jobs(registry)  # the queued delivery job finds it delivered and does nothing
    assert key_counts(registry, sku_id)["sold"] == 2
    again = signed(testapp, creds, "GET", "/api/v1/dock/orders/OUT-1").json
    assert again == made


def test_the_same_out_order_no_answers_the_first_order(testapp, registry, sku_id, creds):
    first = signed(testapp, creds, "POST", "/api/v1/dock/orders", order(), status=201).json
    resp = signed(testapp, creds, "POST", "/api/v1/dock/orders", order(), status=200)
    assert resp.json == first and resp.headers["Idempotent-Replayed"] == "true"
    assert counts(registry, creds[0]) == {"orders": 1, "links": 1, "debits": 1, "balance": 9000}


def test_the_same_out_order_no_with_another_body_is_a_conflict(testapp, registry, sku_id, creds):
    signed(testapp, creds, "POST", "/api/v1/dock/orders", order(callback_url="http://127.0.0.1:9/cb"), status=201)
    for changed in (order(quantity=2), order(), order(callback_url="http://127.0.0.1:9/other")):
        resp = signed(testapp, creds, "POST", "/api/v1/dock/orders", changed, status=409)
        assert resp.json["error"]["code"] == "idempotency_conflict"
    assert counts(registry, creds[0])["orders"] == 1


def test_out_order_numbers_are_per_account(testapp, registry, sku_id, creds):
    other = make_account(registry, email="other@example.com", balance=5000)
    a = signed(testapp, creds, "POST", "/api/v1/dock/orders", order(), status=201).json
    b = signed(testapp, other, "POST", "/api/v1/dock/orders", order(), status=201).json
    assert a["order_no"] != b["order_no"]
    # an account sees its own orders only
    assert signed(testapp, other, "GET", "/api/v1/dock/orders/OUT-1").json["order_no"] == b["order_no"]
    assert signed(testapp, creds, "GET", "/api/v1/dock/orders/OUT-1").json["order_no"] == a["order_no"]
    signed(testapp, other, "GET", "/api/v1/dock/orders/NOT-MINE", status=404)


def test_two_keys_of_one_account_share_its_out_order_numbers(testapp, registry, sku_id, creds):
    from kameng.dock.models import create_key

    with app_request(registry) as req:
        key, secret = create_key(req.db, registry["kameng.keyring"], creds[0], name="second")
    second = (creds[0], key.key_id, secret)
    first = signed(testapp, creds, "POST", "/api/v1/dock/orders", order(), status=201).json
    assert signed(testapp, second, "POST", "/api/v1/dock/orders", order(), status=200).json == first
    assert signed(testapp, second, "GET", "/api/v1/dock/orders/OUT-1").json == first


def test_insufficient_balance_creates_nothing(testapp, registry, sku_id):
    poor = make_account(registry, email="poor@example.com", balance=1500)
    resp = signed(testapp, poor, "POST", "/api/v1/dock/orders", order(quantity=2), status=409)
    assert resp.json["error"]["code"] == "insufficient_balance" and resp.json["error"]["balance"] == "15.00"
    assert counts(registry, poor[0]) == {"orders": 0, "links": 0, "debits": 0, "balance": 1500}
    assert key_counts(registry, sku_id)["available"] == 5
    # the out_order_no is still free: after a top-up the same request goes through
    with app_request(registry) as req:
        wallet.post(req.db, poor[0], 1000, "CNY", "admin", note="top-up")
    assert signed(testapp, poor, "POST", "/api/v1/dock/orders", order(quantity=2), status=201).json["amount"] == "20.00"


def test_refusals_of_the_order_pipeline(testapp, registry, sku_id, creds):
    cases = [(order(sku="NOPE"), 404, "unknown_sku"), (order(quantity=0), 422, "invalid_quantity"),
             (order(quantity=1001), 422, "invalid_quantity"), (order(quantity="x"), 422, "invalid_quantity"),
             (order(quantity=6), 409, "out_of_stock"),
             ({"sku": "CARD10", "quantity": 1}, 422, "invalid_request"),
             (order(out="has space"), 422, "invalid_request"), (order(out="x" * 65), 422, "invalid_request"),
             (order(out=5), 422, "invalid_request"), (order(sku=5), 422, "invalid_request"),
             (order(recharge="x"), 422, "invalid_request"),
             (order(callback_url="ftp://example.com/cb"), 422, "invalid_callback_url"),
             (order(callback_url=["x"]), 422, "invalid_callback_url"),
             (b"not json", 400, "invalid_request"), (b"[1]", 400, "invalid_request"),
             (b'{"sku":"CARD10","sku":"OTHER","quantity":1,"out_order_no":"d"}', 400, "invalid_request")]
    for body, status, code in cases:
        resp = signed(testapp, creds, "POST", "/api/v1/dock/orders", body, status=status)
        assert resp.json["error"]["code"] == code, (body, resp.json)
    assert counts(registry, creds[0])["orders"] == 0


def test_a_private_callback_url_is_refused_in_production(testapp, registry, sku_id, creds, monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    for url in ("http://127.0.0.1:8080/cb", "https://127.0.0.1/cb", "https://10.0.0.1/cb", "http://example.com/cb"):
        resp = signed(testapp, creds, "POST", "/api/v1/dock/orders", order(callback_url=url), status=422)
        assert resp.json["error"]["code"] == "invalid_callback_url"


def test_direct_recharge_orders_wait_for_fulfilment(testapp, registry, creds):
    make_sku(registry, code="TOPUP50", price="49.80", type_="direct_recharge", keys=0, recharge_fields=PHONE)
    bad = signed(testapp, creds, "POST", "/api/v1/dock/orders",
                 order(sku="TOPUP50", out="T-0", recharge={"phone": "123"}), status=422)
    assert bad.json["error"]["code"] == "invalid_recharge_account"
    made = signed(testapp, creds, "POST", "/api/v1/dock/orders",
                  order(sku="TOPUP50", out="T-1", recharge={"phone": "13800138000"}), status=201).json
    assert made["status"] == "paid" and made["keys"] == [] and made["amount"] == "49.80"
    run_jobs(registry)
    assert signed(testapp, creds, "GET", "/api/v1/dock/orders/T-1").json["status"] == "delivering"


def test_no_csrf_and_no_cookies_needed(testapp, registry, sku_id, creds):
    """A signed POST needs no CSRF token, even from a client holding a session cookie."""
    testapp.get("/login")  # the client now holds a session cookie
    signed(testapp, creds, "POST", "/api/v1/dock/orders", order(), status=201)


def test_unknown_out_order_no(testapp, creds):
    for out in ("nope", "bad%20chars"):
        assert signed(testapp, creds, "GET", f"/api/v1/dock/orders/{out}", status=404).json["error"]["code"] == \
            "not_found"


# -- at once, over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def server(make_app):
    port = free_port()
    app = make_app(**NO_LIMITS, **{"kameng.base_url": f"http://127.0.0.1:{port}"})
    srv = LiveServer(app, port).start()
    srv.app = app
    yield srv
    srv.stop()


@pytest.mark.slow
def test_twenty_identical_posts_at_once_make_one_order(server):
    registry = server.app.registry
    make_sku(registry, code="CARD10", price="10.00", keys=30)
    creds = make_account(registry, balance=10000)
    n = 20
    start = threading.Barrier(n)
    results = [None] * n

    def post(i):
        start.wait()
        try:
            results[i] = http_signed(server.url, creds, "POST", "/api/v1/dock/orders", order(quantity=3, out="RACE-1"))
        except Exception as exc:  # noqa: BLE001 - reported as a result
            results[i] = ("exception", repr(exc))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    statuses = sorted(r[0] for r in results)
    assert statuses.count(201) == 1 and statuses.count(200) == n - 1, results
    assert len({r[1]["order_no"] for r in results}) == 1
    assert all(r[1]["status"] == "delivered" and len(r[1]["keys"]) == 3 for r in results)
    assert counts(registry, creds[0]) == {"orders": 1, "links": 1, "debits": 1, "balance": 7000}
    with app_request(registry) as req:
        assert wallet.balance(req.db, creds[0]) == 7000


@pytest.mark.slow
def test_many_different_orders_of_one_account_at_once(server):
    """A downstream shop places orders in parallel: each is paid once, none is lost."""
    registry = server.app.registry
    make_sku(registry, code="CARD10", price="10.00", keys=12)
    make_sku(registry, code="MAN5", price="5.00", type_="manual", keys=0, name="Manual goods")
    creds = make_account(registry, balance=10000)
    n = 12
    start = threading.Barrier(n)
    results = [None] * n

    def post(i):
        start.wait()
        body = order(sku="CARD10" if i % 2 else "MAN5", out=f"PAR-{i}")
        results[i] = http_signed(server.url, creds, "POST", "/api/v1/dock/orders", body)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert [r[0] for r in results] == [201] * n, results
    assert len({r[1]["order_no"] for r in results}) == n
    assert counts(registry, creds[0]) == {"orders": n, "links": n, "debits": n, "balance": 10000 - 6 * 1000 - 6 * 500}


@pytest.mark.slow
def test_one_request_replayed_at_once_is_taken_once(server):
    """The same signed request (same nonce) sent 10 times at once: one passes."""
    import json
    import urllib.error
    import urllib.request

    from kameng.dock.auth import sign_request

    registry = server.app.registry
    make_sku(registry, code="CARD10", price="10.00", keys=3)
    creds = make_account(registry, balance=10000)
    raw = json.dumps(order(out="REPLAY-1")).encode()
    headers = {**sign_request(creds[1], creds[2], "POST", "/api/v1/dock/orders", raw),
               "Content-Type": "application/json"}
    n = 10
    start = threading.Barrier(n)
    results = [None] * n

    def post(i):
        start.wait()
        req = urllib.request.Request(server.url + "/api/v1/dock/orders", data=raw, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                results[i] = (r.status, json.loads(r.read()))
        except urllib.error.HTTPError as e:
            results[i] = (e.code, json.loads(e.read()))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(r[0] for r in results) == [201] + [401] * (n - 1), results
    assert {r[1]["error"]["code"] for r in results if r[0] == 401} == {"nonce_reused"}
    assert counts(registry, creds[0])["debits"] == 1
