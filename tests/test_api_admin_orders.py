"""The admin API for orders and accounts (API.md "Admin API"): listing and
reading orders, each action, accounts and balances, their error codes, and
their entries in the OpenAPI document."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from kameng import accounts, wallet
from kameng.audit import AuditEntry
from kameng.inventory.models import CardKey
from kameng.orders import service
from kameng.testing import app_request
from kameng_sandbox.gateway import SandboxGateway, signed_fields

from orders_helpers import SECRET, buyer_app, enable_sandbox, make_sku, place, run_jobs


ORDER_PATHS = [
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders/{order_no}"),
    ("post", "/api/v1/orders/{order_no}/pay"),
    ("post", "/api/v1/orders/{order_no}/cancel"),
    ("get", "/api/v1/admin/orders"),
    ("get", "/api/v1/admin/orders/{order_no}"),
    ("post", "/api/v1/admin/orders/{order_no}/{action}"),
    ("get", "/api/v1/admin/users"),
    ("post", "/api/v1/admin/users"),
    ("post", "/api/v1/admin/users/{id}/balance"),
]


@pytest.fixture
def auth(registry, admin):
    with app_request(registry) as req:
        token = accounts.create_token(req.db, accounts.find_user(req.db, admin[0]), "orders-tests")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def buyer_auth(registry):
    with app_request(registry) as req:
        user = accounts.create_user(req.db, "member@example.com", "member-password-1")
        token = accounts.create_token(req.db, user, "member")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def shop(registry):
    make_sku(registry)
    make_sku(registry, code="MAN5", price="5.00", type_="manual", name="Manual goods")
    enable_sandbox(registry)


def act(testapp, auth, no, action, body, status=200):
    return testapp.post_json(f"/api/v1/admin/orders/{no}/{action}", body, headers=auth, status=status).json


def status_of(registry, no):
    with app_request(registry) as req:
        return service.get(req.db, no).status


def audit_actions(registry):
    with app_request(registry) as req:
        return [r.action for r in req.db.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# -- reading ---------------------------------------------------------------------------------------


def test_list_orders_with_filters_and_pages(testapp, app, registry, auth, shop):
    card = place(app, registry)
    pending = place(app, registry, pay=False, contact="+8613800000000")
    manual = place(app, registry, "MAN5")
    out = testapp.get("/api/v1/admin/orders", headers=auth).json
    assert (out["total"], out["page"], out["per_page"]) == (3, 1, 20)
    assert [o["order_no"] for o in out["items"]] == [manual["order_no"], pending["order_no"], card["order_no"]]
    first = out["items"][2]
    assert first == {**first, "status": "delivered", "status_label": "Delivered", "product_type": "card_key",
                     "sku": "CARD10", "quantity": 1, "amount": "10.00", "refunded": "0.00", "currency": "CNY",
                     "payment_method": "sandbox", "contact": "buyer@example.com", "user_id": None}
    assert out["counts"] == {"delivered": 1, "pending": 1, "delivering": 1}

    def nos(**query):
        got = testapp.get("/api/v1/admin/orders", query, headers=auth).json
        return [o["order_no"] for o in got["items"]]

    assert nos(status="pending") == [pending["order_no"]]
    assert nos(q="+86138") == [pending["order_no"]]
    assert nos(q=card["payment"]["attempt_no"]) == [card["order_no"]]
    assert nos(q="MAN5") == [manual["order_no"]]
    assert nos(type="manual", status="delivering") == [manual["order_no"]]
    assert nos(per_page="1", page="2") == [pending["order_no"]]
    assert nos(page="9") == []
    assert nos(q="\x00MAN5", method="\x00") == [manual["order_no"]]  # NUL bytes are dropped, never sent on
    for query in ({"status": "bogus"}, {"page": "0"}, {"page": "x"}, {"per_page": "-1"}, {"from": "yesterday"},
                  {"type": "cards"}):
        err = testapp.get("/api/v1/admin/orders", query, headers=auth, status=400).json["error"]
        assert err["code"] == "invalid_request"


def test_read_one_order_with_payments_notices_and_trail(testapp, app, registry, auth, shop):
    made = place(app, registry, quantity=2)
    no = made["order_no"]
    out = testapp.get(f"/api/v1/admin/orders/{no}", headers=auth).json
    assert out["order_no"] == no and out["status"] == "delivered"
    assert out["contact"] == "buyer@example.com" and out["client_ip"].startswith("10.")
    assert len(out["items"][0]["keys"]) == 2
    (payment,) = out["payments"]
    assert payment["attempt_no"] == made["payment"]["attempt_no"] and payment["status"] == "paid"
    assert [n["outcome"] for n in payment["notices"]] == ["applied"]
    assert out["refunds"] == [] and out["refundable"] == "20.00"
    assert [e["to"] for e in out["events"] if e["kind"] == "status"] == ["paid", "delivered"]
    assert any(e["kind"] == "payment" for e in out["events"])  # the private events too
    assert out["pricing"][-1] == {"step": "total", "amount": 2000}
    for url in ("/api/v1/admin/orders/123", "/api/v1/admin/orders/abc"):
        assert testapp.get(url, headers=auth, status=404).json["error"]["code"] == "not_found"


def test_only_an_admin_token_may(testapp, app, registry, buyer_auth, shop):
    no = place(app, registry)["order_no"]
    for method, url in [("get", "/api/v1/admin/orders"), ("get", f"/api/v1/admin/orders/{no}"),
                        ("post", f"/api/v1/admin/orders/{no}/refund"), ("get", "/api/v1/admin/users"),
                        ("post", "/api/v1/admin/users"), ("post", "/api/v1/admin/users/1/balance")]:
        if method == "post":
            body = {"reason": "x", "amount": "1.00"}
            assert testapp.post_json(url, body, status=401).json["error"]["code"] == "unauthorized"
            assert testapp.post_json(url, body, headers=buyer_auth, status=403).json["error"]["code"] == "forbidden"
        else:
            assert testapp.get(url, status=401).json["error"]["code"] == "unauthorized"
            assert testapp.get(url, headers=buyer_auth, status=403).json["error"]["code"] == "forbidden"
    assert status_of(registry, no) == "delivered"


# -- actions -----------------------------------------------------------------------------------------


def test_refund_part_then_the_rest(testapp, app, registry, auth, shop):
    no = place(app, registry)["order_no"]
    out = act(testapp, auth, no, "refund", {"reason": "late", "amount": "2.50", "destination": "gateway"})
    assert out["refund"]["amount"] == "2.50" and out["refund"]["destination"] == "gateway"
    run_jobs(registry)
    out = testapp.get(f"/api/v1/admin/orders/{no}", headers=auth).json
    assert out["refunded"] == "2.50" and out["refundable"] == "7.50" and out["status"] == "delivered"
    err = act(testapp, auth, no, "refund", {"reason": "x", "amount": "7.51"}, status=422)["error"]
    assert err["code"] == "refund_too_large"
    act(testapp, auth, no, "refund", {"reason": "the rest\x00", "destination": "auto"})
    run_jobs(registry)
    assert status_of(registry, no) == "refunded"
    err = act(testapp, auth, no, "refund", {"reason": "again"}, status=409)["error"]
    assert err["code"] == "illegal_transition"
    assert audit_actions(registry).count("order.refund") == 2


def test_refund_input_is_checked(testapp, app, registry, auth, shop):
    no = place(app, registry)["order_no"]
    for body in ({"reason": "x", "amount": 2.5}, {"reason": "x", "amount": "-1"}, {"reason": "x", "amount": "0"},
                 {"reason": "x", "amount": "1.001"}, {"reason": "x", "amount": ["1"]},
                 {"reason": "x", "destination": "moon"}, {"reason": "x", "destination": 1}, {"reason": ""},
                 {"reason": "   "}, {"reason": 5}, {}, {"reason": "x" * 256}):
        err = act(testapp, auth, no, "refund", body, status=422)["error"]
        assert err["code"] == "invalid_request", body
        assert err["field"] in ("amount", "destination", "reason")
    err = act(testapp, auth, no, "refund", {"reason": "x", "destination": "balance"}, status=422)["error"]
    assert err["code"] == "no_balance"
    for raw in (b"not json", b"[1, 2]", b'"x"'):
        resp = testapp.post(f"/api/v1/admin/orders/{no}/refund", raw, headers={**auth, "Content-Type":
                                                                               "application/json"}, status=400)
        assert resp.json["error"]["code"] == "invalid_request"
    assert status_of(registry, no) == "delivered" and "order.refund" not in audit_actions(registry)


def test_deliver_a_manual_order(testapp, app, registry, auth, shop):
    made = place(app, registry, "MAN5")
    no = made["order_no"]
    err = act(testapp, auth, no, "deliver", {"reason": "x", "text": 5}, status=422)["error"]
    assert err == {**err, "code": "invalid_request", "field": "text"}
    out = act(testapp, auth, no, "deliver", {"reason": "supplier sent it", "text": "CODE-123"})
    assert out["status"] == "delivered" and out["delivery_note"] == "CODE-123"
    assert any(e["message"] == "supplier sent it" for e in out["events"])
    seen = buyer_app(app).get(f"/api/v1/orders/{no}", {"token": made["access_token"]}).json
    assert seen["delivery_note"] == "CODE-123"
    assert all(e["message"] != "supplier sent it" for e in seen["events"])  # the reason is the shop's
    err = act(testapp, auth, no, "deliver", {"reason": "twice"}, status=409)["error"]
    assert err["code"] == "illegal_transition"
    card = place(app, registry)["order_no"]
    assert act(testapp, auth, card, "deliver", {"reason": "x"}, status=409)["error"]["code"] == "not_manual"


def test_cancel_and_redeliver(testapp, app, registry, auth, shop):
    pending = place(app, registry, pay=False)["order_no"]
    delivered = place(app, registry)["order_no"]
    assert act(testapp, auth, delivered, "cancel", {"reason": "x"}, status=409)["error"]["code"] == \
        "illegal_transition"
    out = act(testapp, auth, pending, "cancel", {"reason": "asked by phone"})
    assert out["status"] == "cancelled"
    assert act(testapp, auth, pending, "redeliver", {"reason": "x"}, status=409)["error"]["code"] == \
        "illegal_transition"
    # an order held for review is delivered when the admin says so
    made = place(app, registry, pay=False)
    no = made["order_no"]
    with app_request(registry) as req:
        service.get(req.db, no).held = "review"
    buyer_app(app).post("/pay/sandbox/notify", signed_fields(made["payment"]["attempt_no"], "10.00", "paid", SECRET))
    run_jobs(registry)
    assert status_of(registry, no) == "paid"
    out = act(testapp, auth, no, "redeliver", {"reason": "buyer checked"})
    assert out["status"] == "delivered" and out["held"] == ""


def test_replace_key(testapp, app, registry, auth, shop):
    no = place(app, registry)["order_no"]
    out = testapp.get(f"/api/v1/admin/orders/{no}", headers=auth).json
    with app_request(registry) as req:
        (key_id,) = req.db.scalars(select(CardKey.id).where(CardKey.order_ref == no))
    for bad in ("1", 1.5, True, None, -1, 2 ** 40):
        err = act(testapp, auth, no, "replace_key", {"reason": "x", "key_id": bad}, status=422)["error"]
        assert err["field"] == "key_id"
    out = act(testapp, auth, no, "replace_key", {"reason": "used already", "key_id": key_id})
    assert out["result"] == "replaced"
    assert act(testapp, auth, no, "replace_key", {"reason": "x", "key_id": key_id},
               status=409)["error"]["code"] == "not_replaceable"
    assert act(testapp, auth, no, "replace_key", {"reason": "x", "key_id": 999999},
               status=409)["error"]["code"] == "not_replaceable"


def test_refund_paid_by_hand(testapp, app, registry, auth, shop, monkeypatch):
    monkeypatch.setattr(SandboxGateway, "refund_supported", False)
    no = place(app, registry)["order_no"]
    out = act(testapp, auth, no, "refund", {"reason": "asked"})
    refund_no = out["refund"]["refund_no"]
    assert out["refund"]["destination"] == "manual" and out["refund"]["status"] == "pending"
    assert act(testapp, auth, no, "refund_paid", {"reason": "x"}, status=422)["error"]["field"] == "refund_no"
    for other in ("R1", "R\x00", refund_no + "\x00x"):
        assert act(testapp, auth, no, "refund_paid", {"reason": "x", "refund_no": other},
                   status=404)["error"]["code"] == "not_found"
    out = act(testapp, auth, no, "refund_paid", {"reason": "paid by bank", "refund_no": refund_no})
    assert out["status"] == "refunded" and out["refunds"][0]["status"] == "succeeded"
    assert act(testapp, auth, no, "refund_paid", {"reason": "x", "refund_no": refund_no},
               status=409)["error"]["code"] == "not_manual_refund"


def test_unknown_action_or_order(testapp, app, registry, auth, shop):
    no = place(app, registry)["order_no"]
    assert act(testapp, auth, no, "explode", {"reason": "x"}, status=404)["error"]["code"] == "not_found"
    assert act(testapp, auth, "1234", "refund", {"reason": "x"}, status=404)["error"]["code"] == "not_found"
    assert act(testapp, auth, "abc", "refund", {"reason": "x"}, status=404)["error"]["code"] == "not_found"


def test_a_session_needs_the_csrf_header(testapp, app, registry, admin, shop):
    from kameng.testing import login

    no = place(app, registry)["order_no"]
    login(testapp, *admin)
    err = testapp.post_json(f"/api/v1/admin/orders/{no}/refund", {"reason": "x"}, status=400).json["error"]
    assert err["code"] == "csrf_failed"
    token = testapp.get("/admin").html.select_one('input[name="csrf_token"]')["value"]
    testapp.post_json(f"/api/v1/admin/orders/{no}/refund", {"reason": "x"}, headers={"X-CSRF-Token": token})


# -- accounts ------------------------------------------------------------------------------------------


def test_create_users(testapp, registry, auth):
    out = testapp.post_json("/api/v1/admin/users", {"email": "Agent@Example.com", "password": "agent-password-1",
                                                    "role": "agent", "ignored": True}, headers=auth, status=201).json
    assert out == {**out, "email": "Agent@example.com", "role": "agent", "balance": "0.00", "currency": "CNY",
                   "active": True}
    assert "password" not in json.dumps(out)
    err = testapp.post_json("/api/v1/admin/users", {"email": "Agent@EXAMPLE.com", "password": "agent-password-2",
                                                    "role": "buyer"}, headers=auth, status=409).json["error"]
    assert err["code"] == "email_taken"
    for body, field in [({"email": "nope", "password": "long-enough-1", "role": "buyer"}, "email"),
                        ({"email": 5, "password": "long-enough-1", "role": "buyer"}, "email"),
                        ({"email": "a\x00b@example.com", "password": "long-enough-1", "role": "buyer"}, "email"),
                        ({"password": "long-enough-1", "role": "buyer"}, "email"),
                        ({"email": "a@example.com", "password": "short", "role": "buyer"}, "password"),
                        ({"email": "a@example.com", "password": 1234567890123, "role": "buyer"}, "password"),
                        ({"email": "a@example.com", "password": "long-enough-1", "role": "admin"}, "role"),
                        ({"email": "a@example.com", "password": "long-enough-1", "role": ["buyer"]}, "role")]:
        err = testapp.post_json("/api/v1/admin/users", body, headers=auth, status=422).json["error"]
        assert (err["code"], err["field"]) == ("invalid_request", field), body
    with app_request(registry) as req:
        assert accounts.find_user(req.db, "a@example.com") is None
    buyer = testapp.post_json("/api/v1/admin/users", {"email": "b@example.com", "password": "buyer-password-1"},
                              headers=auth, status=201).json
    assert buyer["role"] == "buyer"
    listed = testapp.get("/api/v1/admin/users", {"q": "example.com"}, headers=auth).json
    assert [u["email"] for u in listed["items"]] == ["b@example.com", "Agent@example.com", "admin@example.com"]
    assert testapp.get("/api/v1/admin/users", {"q": "agent"}, headers=auth).json["total"] == 1
    assert testapp.get("/api/v1/admin/users", {"role": "agent"}, headers=auth).json["total"] == 1
    assert testapp.get("/api/v1/admin/users", {"q": "%"}, headers=auth).json["total"] == 0
    assert testapp.get("/api/v1/admin/users", {"q": "\x00agent"}, headers=auth).json["total"] == 1
    testapp.get("/api/v1/admin/users", {"role": "king"}, headers=auth, status=400)
    assert audit_actions(registry).count("user.create") == 2


def test_adjust_a_balance(testapp, registry, auth):
    uid = testapp.post_json("/api/v1/admin/users", {"email": "b@example.com", "password": "buyer-password-1"},
                            headers=auth, status=201).json["id"]
    url = f"/api/v1/admin/users/{uid}/balance"
    out = testapp.post_json(url, {"amount": "100.00", "reason": "prepaid"}, headers=auth).json
    assert out["balance"] == "100.00" and out["entry"]["amount"] == "100.00" and out["entry"]["reason"] == "admin"
    out = testapp.post_json(url, {"amount": "-30.5", "reason": "correction"}, headers=auth).json
    assert out["balance"] == "69.50"
    err = testapp.post_json(url, {"amount": "-69.51", "reason": "too much"}, headers=auth, status=409).json["error"]
    assert err["code"] == "insufficient_balance" and err["balance"] == "69.50"
    for body, field in [({"amount": 100, "reason": "x"}, "amount"), ({"amount": "1e3", "reason": "x"}, "amount"),
                        ({"amount": "--1", "reason": "x"}, "amount"), ({"amount": "0.00", "reason": "x"}, "amount"),
                        ({"amount": "", "reason": "x"}, "amount"), ({"reason": "x"}, "amount"),
                        ({"amount": "999999999999999.99", "reason": "x"}, "amount"),
                        ({"amount": "-10000000.01", "reason": "x"}, "amount"),
                        ({"amount": "21474836.00", "reason": "x"}, "amount"),
                        ({"amount": "1.00"}, "reason"), ({"amount": "1.00", "reason": ["x"]}, "reason"),
                        ({"amount": "1.00", "reason": " "}, "reason")]:
        err = testapp.post_json(url, body, headers=auth, status=422).json["error"]
        assert (err["code"], err["field"]) == ("invalid_request", field), body
    for bad in ("999999", "abc", "0", "-1", "9" * 20):
        err = testapp.post_json(f"/api/v1/admin/users/{bad}/balance", {"amount": "1.00", "reason": "x"},
                                headers=auth, status=404).json["error"]
        assert err["code"] == "not_found"
    with app_request(registry) as req:
        assert wallet.balance(req.db, uid) == 6950
        assert [e.note for e in wallet.entries(req.db, uid)] == ["correction", "prepaid"]
    listed = testapp.get("/api/v1/admin/users", {"q": "b@"}, headers=auth).json["items"]
    assert listed[0]["balance"] == "69.50"
    assert audit_actions(registry).count("user.balance") == 2


# -- OpenAPI -----------------------------------------------------------------------------------------


def test_openapi_lists_the_order_endpoints(testapp):
    doc = testapp.get("/api/v1/openapi.json").json
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    for method, path in ORDER_PATHS:
        op = paths[path][method]
        assert op["summary"] and op["responses"], (method, path)
        if path.startswith("/api/v1/admin/"):
            assert op["security"] == [{"bearerAuth": []}] and {"401", "403"} <= set(op["responses"])
    assert {"Order", "OrderCreated", "Payment", "Key", "OrderEvent", "User", "Balance"} <= set(schemas)
    create = paths["/api/v1/orders"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create["parameters"])
    described = json.dumps(create["responses"])
    for code in ("out_of_stock", "invalid_quantity", "unknown_sku", "invalid_recharge_account",
                 "payment_method_unavailable", "coupon_unavailable", "idempotency_conflict", "blocked",
                 "rate_limited", "invalid_contact", "invalid_query_password", "insufficient_balance"):
        assert code in described, code
    assert {"201", "403", "404", "409", "422", "429"} <= set(create["responses"])
    action = paths["/api/v1/admin/orders/{order_no}/{action}"]["post"]
    enum = next(p for p in action["parameters"] if p["name"] == "action")["schema"]["enum"]
    assert {"deliver", "redeliver", "refund", "cancel", "replace_key"} <= set(enum)


def test_openapi_document_is_valid(testapp):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(testapp.get("/api/v1/openapi.json").json)


def test_responses_have_the_documented_fields(testapp, app, registry, auth, shop):
    schemas = testapp.get("/api/v1/openapi.json").json["components"]["schemas"]
    made = place(app, registry, pay=False)
    paid = place(app, registry)
    buyer = buyer_app(app)
    public = buyer.get(f"/api/v1/orders/{paid['order_no']}", {"token": paid["access_token"]}).json
    admin_view = testapp.get(f"/api/v1/admin/orders/{paid['order_no']}", headers=auth).json
    user = testapp.post_json("/api/v1/admin/users", {"email": "b@example.com", "password": "buyer-password-1"},
                             headers=auth, status=201).json
    balance = testapp.post_json(f"/api/v1/admin/users/{user['id']}/balance", {"amount": "1.00", "reason": "x"},
                                headers=auth).json
    samples = {"OrderCreated": [made], "Order": [public, admin_view], "Payment": admin_view["payments"],
               "Key": public["items"][0]["keys"], "OrderEvent": public["events"] + admin_view["events"],
               "OrderSummary": testapp.get("/api/v1/admin/orders", headers=auth).json["items"],
               "User": [user], "Balance": [balance], "Refund": [], "PaymentStart": [made["payment"]]}
    for name, docs in samples.items():
        schema = schemas[name]
        for sample in docs:
            assert set(schema.get("required", [])) <= set(sample), (name, sample)
            assert set(sample) <= set(schema["properties"]), (name, set(sample) - set(schema["properties"]))


@pytest.mark.parametrize("query", [{"from": "9999-12-31"}, {"to": "0001-01-01"}, {"from": "2024-02-30"}])
def test_dates_out_of_range_are_refused(testapp, auth, query):
    err = testapp.get("/api/v1/admin/orders", query, headers=auth, status=400).json["error"]
    assert err["code"] == "invalid_request"
