"""Issue 8's functional test, end to end through the shop's own pages and APIs:
a level-2 member, referred by an agent, buys with a coupon during a
promotion. The price follows the documented rule (member level → sale →
promotion → coupon, each on what the one before left: docs/members.md,
docs/coupons.md); the commission is credited once the order is delivered,
never before, and reversed after the refund; every ledger balances.

The plugins are the bundled ones (coupons, distribution, sandbox), loaded
from the checkout like an installed shop would load them."""
from __future__ import annotations

import pytest
import webtest
from sqlalchemy import func, select

from kameng import wallet
from kameng.accounts import create_token, find_user
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login, run_jobs, set_plugin

kameng_coupons = pytest.importorskip("kameng_coupons")
kameng_distribution = pytest.importorskip("kameng_distribution")
kameng_sandbox = pytest.importorskip("kameng_sandbox")

SECRET = "operations-flow-sandbox-secret-0123456789"
PASSWORD = "a long password 1"


@pytest.fixture(scope="module")
def ops_app(make_app):
    return make_app(extra_plugins=[("coupons", kameng_coupons), ("distribution", kameng_distribution),
                                   ("sandbox", kameng_sandbox)],
                    **{"kameng.plugins.load_entrypoints": "false", "kameng.limits.orders_per_ip_per_minute": "0",
                       "kameng.limits.lookups_per_ip_per_minute": "0"})


def _browser(app, ip):
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": ip})


def _api(web, method, path, token, body=None, status=None):
    headers = {"Authorization": f"Bearer {token}"}
    if method == "GET":
        return web.get(path, headers=headers, status=status)
    return getattr(web, f"{method.lower()}_json")(path, body if body is not None else {}, headers=headers,
                                                  status=status)


def _commissions(registry, order_no):
    from kameng_distribution.models import Commission

    with app_request(registry) as req:
        return {c.level: (c.beneficiary_id, c.amount, c.reversed_amount, c.status)
                for c in req.db.scalars(select(Commission).where(Commission.order_no == order_no))}


def _ledgers_balance(registry):
    """Every account's distribution ledger and wallet: the entries add up to
    the balance the account is shown."""
    from kameng_distribution import ledger
    from kameng_distribution.models import LedgerEntry

    out = {}
    with app_request(registry) as req:
        db = req.db
        for uid in db.scalars(select(LedgerEntry.user_id).distinct()):
            total = db.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.user_id == uid))
            assert total == ledger.balance(db, uid), uid
            out[uid] = total
        for uid in db.scalars(select(wallet.LedgerEntry.user_id).distinct()):
            total = db.scalar(select(func.sum(wallet.LedgerEntry.amount)).where(wallet.LedgerEntry.user_id == uid))
            assert total == wallet.balance(db, uid), uid
    return out


def test_referred_member_buys_with_coupon_during_promotion(ops_app, admin):
    from kameng_distribution import members
    from kameng_sandbox.gateway import signed_fields

    registry = ops_app.registry
    set_plugin(registry, "sandbox", enabled=True, secret=SECRET)
    set_plugin(registry, "coupons", enabled=True)
    set_plugin(registry, "distribution", enabled=True, levels="2", rate_1="10", rate_2="5",
               min_withdrawal="10.00", withdrawal_fee="1")
    web = _browser(ops_app, "10.8.0.1")
    assert login(web, ADMIN_EMAIL, ADMIN_PASSWORD).status_int == 302
    with app_request(registry) as req:
        token = create_token(req.db, find_user(req.db, ADMIN_EMAIL), "ops")

    # the catalog: one card at 100.00 with keys; two member levels
    product = _api(web, "POST", "/api/v1/admin/products", token, {
        "name": "Game card 100", "type": "card_key",
        "skus": [{"code": "OPS100", "name": "100", "price": "100.00"}]}, status=201).json
    _api(web, "POST", "/api/v1/admin/skus/OPS100/keys", token, {"keys": [f"OPS-KEY-{n:04d}" for n in range(5)]},
         status=200)
    from kameng import levels

    with app_request(registry, actor=ADMIN_EMAIL) as req:
        levels.create_level(req.db, {"code": "vip1", "name": "VIP 1", "discount": "2", "rank": 1}, "CNY",
                            ADMIN_EMAIL)
        levels.create_level(req.db, {"code": "vip2", "name": "VIP 2", "discount": "5", "rank": 2}, "CNY",
                            ADMIN_EMAIL)

    # the referral chain: top ← agent ← buyer; the buyer registers through the agent's link
    top = _api(web, "POST", "/api/v1/admin/users", token, {"email": "top@example.com", "password": PASSWORD,
                                                          "role": "buyer"}, status=201).json
    agent = _api(web, "POST", "/api/v1/admin/users", token, {"email": "agent@example.com", "password": PASSWORD,
                                                            "role": "agent"}, status=201).json
    with app_request(registry) as req:
        members.ensure(req.db, top["id"])
        members.set_referrer(req.db, agent["id"], top["id"])
        agent_code = members.ensure(req.db, agent["id"]).code
    buyer_web = _browser(ops_app, "10.8.0.2")
    buyer_web.get(f"/-/distribution/r/{agent_code}", status=302)  # the agent's referral link
    page = buyer_web.get("/register")
    form = page.forms["register-form"] if "register-form" in page.forms else page.forms[0]
    form["email"], form["password"], form["password2"] = "member@example.com", PASSWORD, PASSWORD
    assert form.submit().status_int in (302, 303)
    with app_request(registry) as req:
        buyer = find_user(req.db, "member@example.com")
        assert members.get(req.db, buyer.id).referrer_id == agent["id"]
        buyer_id = buyer.id
        buyer_token = create_token(req.db, buyer, "buyer")
    _api(web, "PATCH", f"/api/v1/admin/users/{buyer_id}", token, {"level": "vip2"}, status=200)

    # a single-use coupon and a promotion (spend 80.00, get 5.00 off)
    _api(web, "POST", "/api/v1/admin/coupons", token, {"code": "OPS10", "kind": "fixed", "value": "10.00",
                                                       "min_amount": "50.00", "max_uses": 1}, status=201)
    from kameng_coupons import service as coupons
    from kameng_coupons.models import Promotion

    with app_request(registry) as req:
        req.db.add(Promotion(**coupons.promotion_values(req.db, {
            "name": "Spend 80 save 5", "tiers": [{"threshold": "80.00", "kind": "amount", "value": "5.00"}]},
            "CNY")))

    # the buyer sees the level price on the product page, then orders
    shown = buyer_web.get(f"/p/{product['id']}").text
    assert "95.00" in shown and "VIP 2" in shown
    order = buyer_web.post_json("/api/v1/orders", {"sku": "OPS100", "quantity": 1, "payment_method": "sandbox",
                                                   "coupon": "ops10"},
                                headers={"Authorization": f"Bearer {buyer_token}"}, status=201).json
    # 100.00 → VIP 2 (5 %) 95.00 → promotion −5.00 → 90.00 → coupon −10.00 → 80.00
    assert order["amount"] == "80.00"
    with app_request(registry) as req:
        from kameng.orders import service

        steps = service.pricing_steps(service.get(req.db, order["order_no"]))
    assert [(s["step"], s["amount"]) for s in steps if s["step"] != "base"] == [
        ("special_price", -500), ("adjustment", -500), ("adjustment", -1000), ("total", 8000)]
    assert _commissions(registry, order["order_no"]) == {}  # nothing before delivery

    # paid through the sandbox's signed notify: delivered from stock at once
    buyer_web.post("/pay/sandbox/notify", signed_fields(order["payment"]["attempt_no"], "80.00", "paid", SECRET),
                   status=200)
    run_jobs(registry)
    mine = buyer_web.get(f"/api/v1/orders/{order['order_no']}", headers={"Authorization": f"Bearer {buyer_token}"})
    assert mine.json["status"] == "delivered" and len(mine.json["items"][0]["keys"]) == 1
    # the agent earns 10 % of what was paid, the agent's referrer 5 %
    assert _commissions(registry, order["order_no"]) == {1: (agent["id"], 800, 0, "credited"),
                                                        2: (top["id"], 400, 0, "credited")}
    assert _ledgers_balance(registry) == {agent["id"]: 800, top["id"]: 400}
    # the coupon was single-use: a second order with it is refused
    again = buyer_web.post_json("/api/v1/orders", {"sku": "OPS100", "quantity": 1, "payment_method": "sandbox",
                                                   "coupon": "OPS10"},
                                headers={"Authorization": f"Bearer {buyer_token}"}, status=409).json
    assert again["error"]["code"] == "coupon_unavailable"

    # a full refund to the buyer's balance reverses both commissions
    _api(web, "POST", f"/api/v1/admin/orders/{order['order_no']}/refund", token,
         {"reason": "buyer asked", "destination": "balance"}, status=200)
    run_jobs(registry)
    assert buyer_web.get(f"/api/v1/orders/{order['order_no']}",
                         headers={"Authorization": f"Bearer {buyer_token}"}).json["status"] == "refunded"
    assert _commissions(registry, order["order_no"]) == {1: (agent["id"], 800, 800, "reversed"),
                                                        2: (top["id"], 400, 400, "reversed")}
    assert _ledgers_balance(registry) == {agent["id"]: 0, top["id"]: 0}
    with app_request(registry) as req:
        assert wallet.balance(req.db, buyer_id) == 8000
