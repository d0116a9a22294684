"""Agents (docs/members.md "Agents"): applying and the admin's approval or
rejection, tier prices and the price list, the larger per-order maximum
(``kameng.orders.agent_max_quantity``), the key exports of a delivered
order (TXT and CSV: who may download them, what is in them), and the
agent's own docking API keys (created on its page, then a signed call)."""
from __future__ import annotations

import csv
import io
import json

import pytest
import webtest
from dockapi_helpers import signed
from sqlalchemy import select

from kameng import accounts, wallet
from kameng.audit import AuditEntry
from kameng.catalog import service as catalog
from kameng.catalog.models import Sku
from kameng.orders.models import Order
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login
from kameng_sandbox.gateway import signed_fields
from orders_helpers import NO_LIMITS, SECRET, add_keys, enable_sandbox, make_sku, run_jobs

PASSWORD = "member-password-1"


@pytest.fixture(scope="module")
def aapp(make_app):
    """The shop with a smaller agent maximum, so a test can go past it."""
    return make_app(**NO_LIMITS, **{"kameng.orders.agent_max_quantity": "40"})


@pytest.fixture
def registry_a(aapp):
    return aapp.registry


def client(app, address="127.0.0.1"):
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": address})


def make_user(registry, email, role="buyer", tier=None, balance=0) -> int:
    with app_request(registry) as req:
        user = accounts.create_user(req.db, email, PASSWORD, role=role)
        user.tier = tier
        if role == "agent":
            user.agent_status = "approved"
        if balance:
            wallet.post(req.db, user.id, balance, "CNY", "admin", note="test credit")
        return user.id


def signed_in(app, email, password=PASSWORD, address="127.0.0.1"):
    c = client(app, address)
    assert login(c, email, password).status_int == 302
    return c


def user_of(registry, uid):
    with app_request(registry) as req:
        user = req.db.get(accounts.User, uid)
        req.db.expunge(user)
        return user


def audit_of(registry, action) -> list[dict]:
    with app_request(registry) as req:
        return [json.loads(e.detail) | {"target": e.target, "actor": e.actor}
                for e in req.db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


# -- applying --------------------------------------------------------------------------------------


def test_a_buyer_applies_is_rejected_with_a_reason_applies_again_and_is_approved(app, registry, admin):
    uid = make_user(registry, "hopeful@example.com")
    buyer = signed_in(app, "hopeful@example.com", address="10.7.0.1")
    page = buyer.get("/account/agent")
    assert "Become an agent" in page.text
    assert page.html.find("nav", class_="account-tabs").find("a", string="Agent")  # the account's tab
    form = page.forms["apply-form"]
    form["note"] = "I run a game shop with 500 customers <b>really</b>"
    resp = form.submit(status=303).follow()
    assert "waiting for review" in resp.text and "apply-form" not in resp.forms
    assert user_of(registry, uid).agent_status == "applied"
    # one application at a time
    again = buyer.post("/account/agent", {"note": "again", "csrf_token": page.forms["apply-form"]["csrf_token"].value},
                       status=409)
    assert "waiting for review already" in again.text

    admin_c = signed_in(app, ADMIN_EMAIL, ADMIN_PASSWORD, address="10.7.0.2")
    assert "1 agent applications waiting" in admin_c.get("/admin/users").text
    queue = admin_c.get("/admin/agents")
    assert "hopeful@example.com" in queue.text
    assert "&lt;b&gt;really&lt;/b&gt;" in queue.text  # the note is escaped
    # a rejection needs a reason
    reject = [f for f in queue.forms.values() if "reason" in f.fields][0]
    reject["reason"] = "   "
    assert reject.submit(status=422)
    assert user_of(registry, uid).agent_status == "applied"
    reject = [f for f in admin_c.get("/admin/agents").forms.values() if "reason" in f.fields][0]
    reject["reason"] = "Please tell us the address of your shop"
    reject.submit(status=302)
    user = user_of(registry, uid)
    assert (user.role, user.agent_status, user.agent_note) == ("buyer", "rejected", "Please tell us the address of your shop")
    page = buyer.get("/account/agent")
    assert "rejected" in page.text and "Please tell us the address of your shop" in page.text
    # apply again; the admin approves with a tier on the account's page
    form = page.forms["apply-form"]
    form["note"] = "My shop: example.com"
    form.submit(status=303)
    approve = admin_c.get(f"/admin/users/{uid}").forms["approve-form"]
    approve["tier"] = "t1"
    approve.submit(status=302)
    user = user_of(registry, uid)
    assert (user.role, user.agent_status, user.tier) == ("agent", "approved", "t1")
    # approving twice is refused: nothing is waiting
    admin_c.post(f"/admin/users/{uid}/agent", {"decision": "approve", "csrf_token": approve["csrf_token"].value},
                 status=409)
    assert [d["target"] for d in audit_of(registry, "agent.apply")] == [f"user:{uid}"] * 2
    assert [(d["tier"], d["actor"]) for d in audit_of(registry, "agent.approve")] == [("t1", ADMIN_EMAIL)]
    assert [d["reason"] for d in audit_of(registry, "agent.reject")] == ["Please tell us the address of your shop"]
    # an agent does not apply; its page is the agent's
    page = buyer.get("/account/agent")
    assert "apply-form" not in page.forms and "Your prices" in page.text


def test_an_admin_makes_an_agent_by_hand_and_a_buyer_again(admin_app, registry):
    uid = make_user(registry, "direct@example.com")
    form = admin_app.get(f"/admin/users/{uid}").forms["membership-form"]
    form["role"], form["tier"] = "agent", "gold-tier"
    form.submit(status=302)
    user = user_of(registry, uid)
    assert (user.role, user.tier, user.agent_status) == ("agent", "gold-tier", "approved")
    # the tier datalist offers the codes in use
    assert '<option value="gold-tier"' in admin_app.get(f"/admin/users/{uid}").text
    form = admin_app.get(f"/admin/users/{uid}").forms["membership-form"]
    form["role"], form["tier"] = "buyer", "gold-tier"
    resp = form.submit(status=422)
    assert "Only agents have a tier" in resp.text
    assert user_of(registry, uid).role == "agent"  # nothing of the refused change was kept
    form = resp.forms["membership-form"]
    form["role"], form["tier"] = "buyer", ""
    form.submit(status=302)
    user = user_of(registry, uid)
    assert (user.role, user.tier, user.agent_status) == ("buyer", None, "")


# -- tier prices and the price list ----------------------------------------------------------------


def test_an_agent_pays_its_tier_price_and_sees_its_price_list(app, registry):
    enable_sandbox(registry)
    with app_request(registry) as req:
        catalog.save_product(req.db, {"name": "=HYPERLINK(\"http://x\")", "type": "manual", "skus": [
            {"code": "TP1", "name": "one", "price": "10.00", "tier_prices": {"t1": "7.50"}},
            {"code": "TP2", "name": "two", "price": "20.00", "stock": 3}]}, "CNY")
    uid = make_user(registry, "agent1@example.com", role="agent", tier="t1", balance=10000)
    agent = signed_in(app, "agent1@example.com", address="10.7.1.1")
    page = agent.get("/account/agent")
    assert page.headers["Cache-Control"] == "no-store"
    row = page.html.find(id="price-TP1").text
    assert "CNY 10.00" in row and "CNY 7.50" in row
    assert "CNY 20.00" in page.html.find(id="price-TP2").text
    assert page.html.find(id="agent-tier").text == "t1"
    resp = agent.get("/account/agent/prices.csv")
    assert resp.headers["Content-Disposition"] == 'attachment; filename="prices.csv"'
    assert resp.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(resp.body.decode("utf-8-sig"))))
    assert rows[0] == ["product", "sku", "name", "list_price", "your_price", "currency", "stock"]
    assert ["'=HYPERLINK(\"http://x\")", "TP1", "one", "10.00", "7.50", "CNY", ""] in rows
    assert ["'=HYPERLINK(\"http://x\")", "TP2", "two", "20.00", "20.00", "CNY", "3"] in rows
    # the order is priced at the tier price
    made = agent.post_json("/api/v1/orders", {"sku": "TP1", "quantity": 2, "payment_method": "balance"},
                           headers={"X-CSRF-Token": page.forms["key-form"]["csrf_token"].value}, status=201).json
    assert made["amount"] == "15.00"
    # buyers get no agent page content and no price list
    make_user(registry, "plain@example.com")
    buyer = signed_in(app, "plain@example.com", address="10.7.1.2")
    assert "Your prices" not in buyer.get("/account/agent").text
    buyer.get("/account/agent/prices.csv", status=403)
    client(app).get("/account/agent/prices.csv", status=302)
    assert uid


# -- bulk purchase ---------------------------------------------------------------------------------


def test_agents_order_more_at_once_than_buyers(aapp, registry_a):
    enable_sandbox(registry_a)
    _pid, sku_id = make_sku(registry_a, code="BULK", price="1.00", keys=45, max_quantity=10)
    make_user(registry_a, "bulk-agent@example.com", role="agent", balance=100000)
    make_user(registry_a, "bulk-buyer@example.com", balance=100000)
    agent = signed_in(aapp, "bulk-agent@example.com", address="10.7.2.1")
    buyer = signed_in(aapp, "bulk-buyer@example.com", address="10.7.2.2")
    token = agent.get("/account/agent").forms["key-form"]["csrf_token"].value
    btoken = buyer.get("/account/agent").forms["apply-form"]["csrf_token"].value

    def order(c, csrf, n):
        return c.post_json("/api/v1/orders", {"sku": "BULK", "quantity": n, "payment_method": "balance"},
                           headers={"X-CSRF-Token": csrf}, expect_errors=True)

    refused = order(buyer, btoken, 11)
    assert refused.status_int == 422 and refused.json["error"]["max_quantity"] == 10
    over = order(agent, token, 41)
    assert over.status_int == 422 and over.json["error"]["code"] == "invalid_quantity"
    assert over.json["error"]["max_quantity"] == 40
    made = order(agent, token, 40)
    assert made.status_int == 201, made.text
    assert made.json["amount"] == "40.00"
    with app_request(registry_a) as req:
        o = req.db.scalar(select(Order).where(Order.order_no == made.json["order_no"]))
        assert (o.quantity, o.status) == (40, "delivered")
    # the product page lets the agent ask for more than the SKU's own maximum, within stock
    with app_request(registry_a) as req:
        product_id = req.db.get(Sku, sku_id).product_id
    assert 'max="5"' in agent.get(f"/p/{product_id}").text  # 5 keys left
    add_keys(registry_a, sku_id, [f"MORE-{i}" for i in range(100)])
    assert 'max="40"' in agent.get(f"/p/{product_id}").text
    assert 'max="10"' in buyer.get(f"/p/{product_id}").text
    # the checkout page agrees
    assert agent.get(f"/checkout/{product_id}?sku=BULK&quantity=40").status_int == 200
    assert buyer.get(f"/checkout/{product_id}?sku=BULK&quantity=40", status=422)


def test_the_setting_is_documented_with_its_default():
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "configuration.md")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    assert "| `kameng.orders.agent_max_quantity` | `1000` |" in text


# -- key exports -----------------------------------------------------------------------------------


@pytest.fixture
def delivered(app, registry):
    """Buyer A's delivered order of three keys (one with a number, one that
    looks like a formula): ``(order_no, access_token, owner's client)``."""
    enable_sandbox(registry)
    _pid, sku_id = make_sku(registry, code="EXP", price="2.00", keys=0)
    add_keys(registry, sku_id, ["=1+2", "PLAIN-SECRET-1", "@SUM(A1)"])
    make_user(registry, "owner@example.com")
    owner = signed_in(app, "owner@example.com", address="10.7.3.1")
    csrf = owner.get("/account/agent").forms["apply-form"]["csrf_token"].value
    made = owner.post_json("/api/v1/orders", {"sku": "EXP", "quantity": 3, "payment_method": "sandbox"},
                           headers={"X-CSRF-Token": csrf}, status=201).json
    client(app, "10.7.3.9").post("/pay/sandbox/notify", signed_fields(made["payment"]["attempt_no"], made["amount"],
                                                                     "paid", SECRET))
    run_jobs(registry)
    return made["order_no"], made["access_token"], owner


def test_the_owner_downloads_the_keys_as_txt_and_csv(app, registry, delivered):
    no, token, owner = delivered
    page = owner.get(f"/orders/{no}")
    assert f"/orders/{no}/keys.txt" in page.text and f"/orders/{no}/keys.csv" in page.text
    txt = owner.get(f"/orders/{no}/keys.txt")
    assert txt.content_type == "text/plain" and txt.charset == "utf-8"
    assert txt.headers["Content-Disposition"] == f'attachment; filename="{no}-keys.txt"'
    assert txt.headers["Cache-Control"] == "no-store"
    assert sorted(txt.text.split("\r\n")[:-1]) == sorted(["=1+2", "PLAIN-SECRET-1", "@SUM(A1)"])  # as they are
    got = owner.get(f"/orders/{no}/keys.csv")
    assert got.content_type == "text/csv"
    assert got.headers["Content-Disposition"] == f'attachment; filename="{no}-keys.csv"'
    rows = list(csv.reader(io.StringIO(got.body.decode("utf-8-sig"))))
    assert rows[0] == ["n", "order_no", "sku", "number", "secret"]
    secrets = sorted(r[4] for r in rows[1:])
    assert secrets == sorted(["'=1+2", "PLAIN-SECRET-1", "'@SUM(A1)"])  # no formula reaches a spreadsheet
    assert {r[1] for r in rows[1:]} == {no}
    # the audit log says who exported how many, never the keys
    exports = audit_of(registry, "order.keys_export")
    assert [(e["format"], e["count"], e["actor"]) for e in exports] == [("txt", 3, "owner@example.com"),
                                                                         ("csv", 3, "owner@example.com")]
    with app_request(registry) as req:
        details = " ".join(e.detail for e in req.db.scalars(select(AuditEntry)))
    assert "PLAIN-SECRET-1" not in details


def test_only_those_who_may_open_the_order_download_its_keys(app, registry, delivered, admin):
    no, token, owner = delivered
    make_user(registry, "other@example.com")
    other = signed_in(app, "other@example.com", address="10.7.4.1")
    anonymous = client(app, "10.7.4.2")
    for fmt in ("txt", "csv"):
        url = f"/orders/{no}/keys.{fmt}"
        for c in (other, anonymous):
            for path in (url, f"{url}?token={'0' * 64}", f"{url}?query_password=pass1234"):
                resp = c.get(path, status=404)
                assert "PLAIN-SECRET-1" not in resp.text
    # its access token opens it (the order page's own links carry it), like the order's page
    holder = client(app, "10.7.4.4")
    for fmt in ("txt", "csv"):
        assert "PLAIN-SECRET-1" in holder.get(f"/orders/{no}/keys.{fmt}?token={token}").text
    admin_c = signed_in(app, ADMIN_EMAIL, ADMIN_PASSWORD, address="10.7.4.3")
    assert "PLAIN-SECRET-1" in admin_c.get(f"/orders/{no}/keys.txt").text
    # another format, an unknown order, an order not delivered: nothing
    owner.get(f"/orders/{no}/keys.pdf", status=404)
    owner.get("/orders/29991231235959000000/keys.txt", status=404)
    with app_request(registry) as req:  # an order that is not delivered (any more) has none
        o = req.db.scalar(select(Order).where(Order.order_no == no))
        o.status = "paid"
    owner.get(f"/orders/{no}/keys.txt", status=404)


# -- the agent's own docking keys ------------------------------------------------------------------


def test_an_agent_creates_a_docking_key_calls_the_api_and_revokes_it(app, registry, testapp):
    uid = make_user(registry, "dock-agent@example.com", role="agent", balance=4200)
    other_uid = make_user(registry, "dock-other@example.com", role="agent")
    agent = signed_in(app, "dock-agent@example.com", address="10.7.5.1")
    form = agent.get("/account/agent").forms["key-form"]
    form["name"], form["ip_allowlist"] = "my shop", "not an address"
    bad = form.submit(status=422)
    assert "Not an IP address" in bad.text
    form = bad.forms["key-form"]
    form["name"], form["ip_allowlist"] = "my shop", ""
    created = form.submit(status=200)
    assert created.headers["Cache-Control"] == "no-store"
    key_id = created.html.find(id="new-key-id").text
    secret = created.html.find(id="new-key-secret").text
    assert key_id.startswith("dk_") and secret.startswith("dks_")
    # shown once: the page does not show it again
    assert secret not in agent.get("/account/agent").text
    # a signed call with it works
    resp = signed(testapp, (uid, key_id, secret), "GET", "/api/v1/dock/balance")
    assert resp.json == {"balance": "42.00", "currency": "CNY"}
    assert [d["key_id"] for d in audit_of(registry, "dock_key.create")] == [key_id]
    # another agent cannot revoke it
    other = signed_in(app, "dock-other@example.com", address="10.7.5.2")
    csrf = other.get("/account/agent").forms["key-form"]["csrf_token"].value
    other.post(f"/account/agent/keys/{key_id}/revoke", {"csrf_token": csrf}, status=404)
    signed(testapp, (uid, key_id, secret), "GET", "/api/v1/dock/balance", status=200)
    # its owner revokes it: the next call is refused
    agent.get("/account/agent").forms[f"revoke-{key_id}"].submit(status=303)
    signed(testapp, (uid, key_id, secret), "GET", "/api/v1/dock/balance", status=401)
    assert [d["key_id"] for d in audit_of(registry, "dock_key.revoke")] == [key_id]
    assert other_uid


def test_buyers_have_no_docking_keys_of_their_own(app, registry):
    make_user(registry, "nodock@example.com")
    buyer = signed_in(app, "nodock@example.com", address="10.7.6.1")
    csrf = buyer.get("/account/agent").forms["apply-form"]["csrf_token"].value
    buyer.post("/account/agent/keys", {"csrf_token": csrf, "name": "x"}, status=403)
    from kameng.dock.models import DockKey

    with app_request(registry) as req:
        assert req.db.scalar(select(DockKey)) is None
