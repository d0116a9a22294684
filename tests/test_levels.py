"""Member levels (docs/members.md): the admin's pages and API, the rules
that raise a buyer's level on delivered orders and top-ups (and never lower
it, and leave a level set by hand alone), and the price a level gives:
agent tier price > member level price > level discount (rounded half up,
never below 0.01), shown on the product page and recorded on the order."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from kameng import accounts, levels, wallet
from kameng.audit import AuditEntry
from kameng.catalog import service as catalog
from kameng.catalog.models import Sku
from kameng.orders import pricing
from kameng.orders.models import Order
from kameng.testing import app_request
from kameng_sandbox.gateway import signed_fields
from orders_helpers import SECRET, buyer_app, enable_sandbox, make_sku, run_jobs


# -- helpers ---------------------------------------------------------------------------------------


def add_level(registry, code, name, discount="0", min_paid=None, min_topup=None, rank=0):
    with app_request(registry) as req:
        levels.create_level(req.db, {"code": code, "name": name, "discount": discount, "min_paid": min_paid,
                                     "min_topup": min_topup, "rank": rank}, "CNY", "test")


def make_member(registry, email="member@example.com", role="buyer", level=None, manual=False, tier=None):
    """An account with an API token: ``(user_id, headers)``."""
    with app_request(registry) as req:
        user = accounts.create_user(req.db, email, "member-password-1", role=role)
        user.level, user.level_manual, user.tier = level, manual, tier
        token = accounts.create_token(req.db, user, "tests")
        return user.id, {"Authorization": f"Bearer {token}"}


def buy(app, registry, headers, sku="CARD10", quantity=1, pay=True) -> dict:
    """An order of the account behind ``headers``, paid through the sandbox and delivered."""
    client = buyer_app(app)
    made = client.post_json("/api/v1/orders", {"sku": sku, "quantity": quantity, "payment_method": "sandbox"},
                            headers=headers, status=201).json
    if pay:
        client.post("/pay/sandbox/notify", signed_fields(made["payment"]["attempt_no"], made["amount"], "paid",
                                                         SECRET))
        run_jobs(registry)
    return made


def topup(app, registry, user_id, amount_minor):
    with app_request(registry) as req:
        attempt, _action = wallet.start_topup(req, req.db.get(accounts.User, user_id), amount_minor, "sandbox")
        no = attempt.attempt_no
    buyer_app(app).post("/pay/sandbox/notify", signed_fields(no, f"{amount_minor / 100:.2f}", "paid", SECRET))


def user_of(registry, user_id):
    with app_request(registry) as req:
        user = req.db.get(accounts.User, user_id)
        req.db.expunge(user)
        return user


def audit_actions(registry, target) -> list[tuple[str, dict]]:
    with app_request(registry) as req:
        return [(e.action, json.loads(e.detail)) for e in req.db.scalars(
            select(AuditEntry).where(AuditEntry.target == target).order_by(AuditEntry.id))]


@pytest.fixture
def shop(registry):
    enable_sandbox(registry)
    make_sku(registry, code="CARD10", price="10.00", keys=20)


# -- validation and the arithmetic -----------------------------------------------------------------


@pytest.mark.parametrize("text, bp", [("0", 0), ("5", 500), ("12.5", 1250), ("12.25", 1225), ("100", 10000),
                                      ("100.00", 10000), (" 7 % ", 700), ("0.01", 1)])
def test_a_discount_is_a_percentage_with_up_to_two_decimals(text, bp):
    assert levels.parse_percent(text) == bp
    assert levels.parse_percent(levels.percent_text(bp)) == bp


@pytest.mark.parametrize("text", ["", "-1", "100.01", "101", "12.345", "1e2", "abc", "5.", ".5", "0x10", "５"])
def test_other_discounts_are_refused(text):
    with pytest.raises(ValueError):
        levels.parse_percent(text)


@pytest.mark.parametrize("price, bp, expected", [
    (1000, 500, 950),        # 10.00 less 5 %
    (999, 1250, 874),        # 8.74125 → 8.74
    (3, 5000, 2),            # 0.015 → half up to 0.02
    (5, 1000, 5),            # 0.045 → 0.05 (half up), not 0.04
    (1, 9999, 1),            # never below 0.01
    (250, 10000, 1),         # 100 % off still costs 0.01
    (1000, 0, 1000),
])
def test_the_level_discount_rounds_half_up_and_never_goes_below_one_fen(price, bp, expected):
    assert levels.discounted(price, bp) == expected


def test_level_for_totals_picks_the_best_rank_reached_by_either_rule(registry):
    add_level(registry, "silver", "Silver", min_paid="20.00", rank=1)
    add_level(registry, "gold", "Gold", min_paid="100.00", min_topup="50.00", rank=2)
    add_level(registry, "vip", "VIP", rank=3)  # by hand only
    with app_request(registry) as req:
        pick = lambda paid, top: (levels.level_for_totals(req.db, paid, top) or None)  # noqa: E731
        assert pick(1999, 0) is None
        assert pick(2000, 0).code == "silver"
        assert pick(2000, 4999).code == "silver"
        assert pick(0, 5000).code == "gold"
        assert pick(10000, 0).code == "gold"
        assert pick(10 ** 9, 10 ** 9).code == "gold"  # never a level without rules


# -- the admin's pages -----------------------------------------------------------------------------


def test_admin_creates_edits_and_deletes_levels(admin_app, registry):
    page = admin_app.get("/admin/levels")
    assert "Member levels" in admin_app.get("/admin").text  # in the menu
    form = page.forms["new-level"]
    form["code"], form["name"], form["discount"] = "gold", "Gold", "7.5"
    form["min_paid"], form["min_topup"], form["rank"] = "1000.00", "", "2"
    resp = form.submit(status=302)
    listing = resp.follow()
    assert "Gold" in listing.text and "7.5 %" in listing.text and "1000.00" in listing.text
    with app_request(registry) as req:
        lv = levels.get_level(req.db, "gold")
        assert (lv.discount_bp, lv.min_paid, lv.min_topup, lv.rank) == (750, 100000, None, 2)

    # errors: shown with the form, nothing saved
    for field, value, status in [("code", "bad code!", 422), ("code", "gold", 409), ("discount", "100.5", 422),
                                 ("discount", "1.234", 422), ("min_paid", "-5", 422), ("rank", "2", 409),
                                 ("rank", "two", 422), ("name", "", 422)]:
        form = admin_app.get("/admin/levels").forms["new-level"]
        form["code"], form["name"], form["discount"], form["rank"] = "silver", "Silver", "5", "1"
        form[field] = value
        resp = form.submit(status=status)
        assert f'id="error-{field}"' in resp.text, (field, value)
    with app_request(registry) as req:
        assert [lv.code for lv in levels.all_levels(req.db)] == ["gold"]

    # edit: the code stays
    form = admin_app.get("/admin/levels/gold").forms["level-form"]
    assert "code" not in form.fields
    form["name"], form["discount"], form["min_topup"] = "Gold member", "10", "500"
    form.submit(status=302)
    with app_request(registry) as req:
        lv = levels.get_level(req.db, "gold")
        assert (lv.name, lv.discount_bp, lv.min_topup) == ("Gold member", 1000, 50000)

    # not deleted while an account has it
    uid, _h = make_member(registry, level="gold", manual=True)
    resp = admin_app.get("/admin/levels/gold").forms["delete-level"].submit(status=302).follow()
    assert "1 accounts have this level" in resp.text
    with app_request(registry) as req:
        assert levels.get_level(req.db, "gold") is not None
        req.db.get(accounts.User, uid).level = None
    admin_app.get("/admin/levels/gold").forms["delete-level"].submit(status=302)
    with app_request(registry) as req:
        assert levels.get_level(req.db, "gold") is None
    assert [a for a, _d in audit_actions(registry, "level:gold")] == ["level.create", "level.update", "level.delete"]
    assert admin_app.get("/admin/levels/gold", status=404)
    assert admin_app.get("/admin/levels/..%2Fx", status=404)


def test_a_level_named_by_sku_prices_is_not_deleted(registry):
    add_level(registry, "gold", "Gold", rank=1)
    make_sku(registry, code="LV1", keys=0)
    with app_request(registry) as req:
        catalog.set_special_prices(req.db, req.db.scalar(select(Sku).where(Sku.code == "LV1")), "level",
                                   {"gold": "9.00"}, "CNY")
    with app_request(registry) as req:
        with pytest.raises(Exception) as exc:
            levels.delete_level(req.db, levels.get_level(req.db, "gold"), "test")
        assert exc.value.status == 409 and exc.value.code == "level_in_use"


def test_admin_sets_a_level_by_hand_and_back_to_automatic(admin_app, registry):
    add_level(registry, "silver", "Silver", min_topup="10.00", rank=1)
    add_level(registry, "vip", "VIP", discount="20", rank=5)
    uid, _h = make_member(registry)
    with app_request(registry) as req:
        wallet.post(req.db, uid, 2000, "CNY", "topup", ref="topup:manual-test")
    page = admin_app.get(f"/admin/users/{uid}")
    form = page.forms["membership-form"]
    form["level"] = "vip"
    form.submit(status=302)
    user = user_of(registry, uid)
    assert (user.level, user.level_manual) == ("vip", True)
    assert "VIP" in admin_app.get("/admin/users").text  # the level column
    # an unknown level is refused
    form = admin_app.get(f"/admin/users/{uid}").forms["membership-form"]
    form["level"].force_value("nosuch")
    resp = form.submit(status=422)
    assert "no member level nosuch" in resp.text
    # automatic: the rules decide at once (the top-up reaches silver)
    form = admin_app.get(f"/admin/users/{uid}").forms["membership-form"]
    form["level"] = "@auto"
    form.submit(status=302)
    user = user_of(registry, uid)
    assert (user.level, user.level_manual) == ("silver", False)
    # no level, fixed by hand
    form = admin_app.get(f"/admin/users/{uid}").forms["membership-form"]
    form["level"] = "@none"
    form.submit(status=302)
    user = user_of(registry, uid)
    assert (user.level, user.level_manual) == (None, True)
    actions = [d.get("by") for a, d in audit_actions(registry, f"user:{uid}") if a == "user.level"]
    assert actions == ["hand", "automatic", "rule", "hand"]


# -- the rules -------------------------------------------------------------------------------------


def test_delivered_orders_and_topups_raise_the_level(app, registry, shop):
    add_level(registry, "silver", "Silver", discount="5", min_paid="20.00", rank=1)
    add_level(registry, "gold", "Gold", discount="10", min_topup="50.00", rank=2)
    uid, auth = make_member(registry)
    buy(app, registry, auth)  # 10.00
    assert user_of(registry, uid).level is None
    unpaid = buy(app, registry, auth, pay=False)  # an unpaid order adds nothing
    assert user_of(registry, uid).level is None
    buy(app, registry, auth)  # 20.00 delivered
    assert user_of(registry, uid).level == "silver"
    assert ("user.level", "rule") in [(a, d.get("by")) for a, d in audit_actions(registry, f"user:{uid}")]
    # a top-up reaches gold
    topup(app, registry, uid, 4000)
    assert user_of(registry, uid).level == "silver"
    topup(app, registry, uid, 1000)
    assert user_of(registry, uid).level == "gold"
    # the silver order price now comes from gold's discount
    made = buy(app, registry, auth, pay=False)
    assert made["amount"] == "9.00"
    with app_request(registry) as req:
        assert req.db.scalar(select(Order.status).where(Order.order_no == unpaid["order_no"])) == "pending"


def test_rules_never_lower_a_level(app, registry, shop):
    add_level(registry, "silver", "Silver", min_paid="5.00", rank=1)
    add_level(registry, "gold", "Gold", min_paid="1000.00", rank=2)
    uid, auth = make_member(registry, level="gold")  # given by rule earlier, say
    buy(app, registry, auth)
    user = user_of(registry, uid)
    assert (user.level, user.level_manual) == ("gold", False)


def test_a_level_set_by_hand_is_left_alone_by_the_rules(app, registry, shop):
    add_level(registry, "silver", "Silver", min_paid="5.00", rank=1)
    add_level(registry, "gold", "Gold", min_paid="10.00", rank=2)
    uid, auth = make_member(registry, level="silver", manual=True)
    buy(app, registry, auth, quantity=2)
    assert user_of(registry, uid).level == "silver"
    with app_request(registry) as req:
        levels.set_level(req.db, req.db.get(accounts.User, uid), levels.AUTOMATIC, "admin@example.com")
    assert user_of(registry, uid).level == "gold"


def test_the_paid_total_counts_delivered_orders_less_refunds(app, registry, shop, admin):
    uid, auth = make_member(registry)
    first = buy(app, registry, auth, quantity=3)  # 30.00
    buy(app, registry, auth, pay=False)  # pending: nothing
    with app_request(registry) as req:
        token = accounts.create_token(req.db, accounts.find_user(req.db, admin[0]), "t")
        wallet.post(req.db, uid, 5000, "CNY", "admin", note="gift")  # not a top-up
    client = buyer_app(app)
    client.post_json(f"/api/v1/admin/orders/{first['order_no']}/refund",
                     {"amount": "10.00", "reason": "one key did not work", "destination": "balance"},
                     headers={"Authorization": f"Bearer {token}"}, status=200)
    with app_request(registry) as req:
        assert levels.totals(req.db, uid) == (2000, 0)
    topup(app, registry, uid, 1500)
    with app_request(registry) as req:
        assert levels.totals(req.db, uid) == (2000, 1500)


def test_level_info_tells_what_is_missing_for_the_next_level(registry):
    add_level(registry, "silver", "Silver", discount="5", min_paid="20.00", rank=1)
    add_level(registry, "gold", "Gold", discount="12.5", min_paid="100.00", min_topup="50.00", rank=2)
    uid, _h = make_member(registry, level="silver")
    with app_request(registry) as req:
        wallet.post(req.db, uid, 1000, "CNY", "topup", ref="topup:info-test")
        info = levels.level_info(req.db, req.db.get(accounts.User, uid))
    assert (info["code"], info["name"], info["discount"], info["manual"]) == ("silver", "Silver", "5", False)
    assert info["next"] == {"code": "gold", "name": "Gold", "discount": "12.5", "paid_missing": 10000,
                            "topup_missing": 4000}
    with app_request(registry) as req:
        req.db.get(accounts.User, uid).level_manual = True
    with app_request(registry) as req:
        assert levels.level_info(req.db, req.db.get(accounts.User, uid))["next"] is None


# -- prices ----------------------------------------------------------------------------------------


class _Req:
    def __init__(self, db):
        self.db, self.shop = db, {"currency": "CNY"}

        class Hooks:
            def kameng_price_adjustments(self, request, quote):
                return []

        self.hooks = Hooks()


class _Buyer:
    def __init__(self, level=None, tier=None):
        self.level, self.tier, self.id, self.email = level, tier, 1, "b@example.com"


def test_tier_price_beats_level_price_beats_level_discount(registry):
    add_level(registry, "gold", "Gold", discount="10", rank=2)
    add_level(registry, "silver", "Silver", discount="12.5", rank=1)
    with app_request(registry) as req:
        catalog.save_product(req.db, {"name": "P", "type": "manual", "skus": [
            {"code": "PX", "name": "x", "price": "9.99", "tier_prices": {"t1": "7.00"},
             "level_prices": {"gold": "9.50"}}]}, "CNY")
    with app_request(registry) as req:
        sku = req.db.scalar(select(Sku).where(Sku.code == "PX"))
        quote = lambda buyer, n=1: pricing.quote(_Req(req.db), sku.product, sku, n, user=buyer)  # noqa: E731
        assert quote(None).unit_price == 999
        assert quote(_Buyer(level="gold", tier="t1")).unit_price == 700        # the tier price first
        assert quote(_Buyer(level="gold", tier="t-none")).unit_price == 950    # then the level's price
        q = quote(_Buyer(level="silver"), 3)                                   # then the discount: 8.74125 → 8.74
        assert (q.unit_price, q.subtotal) == (874, 2622)
        special = next(s for s in q.steps if s["step"] == "special_price")
        assert special == {"step": "special_price", "tier": None, "level": "silver", "source": "level_discount",
                           "level_name": "Silver", "discount_bp": 1250, "unit": 874, "amount": 2622 - 2997}
        assert sum(s["amount"] for s in q.steps[:-1]) == q.amount == 2622
        assert quote(_Buyer(level="nosuch")).unit_price == 999                 # a level that does not exist
        tier = next(s for s in quote(_Buyer(level="gold", tier="t1")).steps if s["step"] == "special_price")
        assert (tier["source"], tier["tier"], tier["level"]) == ("tier", "t1", None)


def test_an_order_records_the_member_price_with_the_level_name(app, registry, shop):
    add_level(registry, "gold", "Gold", discount="15", rank=1)
    uid, auth = make_member(registry, level="gold", manual=True)
    made = buy(app, registry, auth, quantity=2, pay=False)
    assert made["amount"] == "17.00"
    with app_request(registry) as req:
        order = req.db.scalar(select(Order).where(Order.order_no == made["order_no"]))
        steps = json.loads(order.pricing)
        assert (order.unit_price, order.subtotal) == (850, 1700)
    assert {"source": "level_discount", "level_name": "Gold", "level": "gold"}.items() <= steps[1].items()
    page = buyer_app(app).get(f"/orders/{made['order_no']}?token={made['access_token']}")
    assert "Member price (Gold)" in page.text


def test_the_product_page_shows_the_buyers_own_price(app, registry, shop, testapp):
    add_level(registry, "gold", "Gold", discount="10", rank=1)
    with app_request(registry) as req:
        product_id = req.db.scalar(select(Sku).where(Sku.code == "CARD10")).product_id
        catalog.save_product(req.db, {"name": "Two", "type": "manual", "skus": [
            {"code": "T1", "name": "one", "price": "20.00", "tier_prices": {"big": "15.00"}}]}, "CNY")
        two_id = req.db.scalar(select(Sku).where(Sku.code == "T1")).product_id
    guest = testapp.get(f"/p/{product_id}")
    assert "Your price" not in guest.text and "CNY 10.00" in guest.text
    for email, kwargs, page_id, shown in [
            ("gold@example.com", {"level": "gold", "manual": True}, product_id, "Your price (Gold member)"),
            ("agent@example.com", {"role": "agent", "tier": "big"}, two_id, "Your agent price")]:
        make_member(registry, email=email, **kwargs)
        client = buyer_app(app)
        form = client.get("/login").forms["login-form"]
        form["email"], form["password"] = email, "member-password-1"
        assert form.submit().status_int == 302
        page = client.get(f"/p/{page_id}")
        assert shown in page.text, email
        assert ("CNY 9.00" if page_id == product_id else "CNY 15.00") in page.text
        assert "list-price" in page.text


# -- the admin API ---------------------------------------------------------------------------------


@pytest.fixture
def auth(registry, admin):
    with app_request(registry) as req:
        token = accounts.create_token(req.db, accounts.find_user(req.db, admin[0]), "levels-tests")
    return {"Authorization": f"Bearer {token}"}


def test_api_creates_an_account_with_a_level(testapp, registry, auth):
    add_level(registry, "gold", "Gold", rank=1)
    resp = testapp.post_json("/api/v1/admin/users", {"email": "lv@example.com", "password": "password-12345",
                                                     "role": "agent", "level": "gold"}, headers=auth, status=201)
    assert (resp.json["level"], resp.json["level_manual"], resp.json["role"]) == ("gold", True, "agent")
    assert resp.json["agent_status"] == "approved"
    for level in ("nosuch", 5, ["gold"]):
        bad = testapp.post_json("/api/v1/admin/users", {"email": "lv2@example.com", "password": "password-12345",
                                                        "level": level}, headers=auth, status=422)
        assert bad.json["error"]["code"] == "invalid_request" and bad.json["error"]["field"] == "level"
    with app_request(registry) as req:
        assert accounts.find_user(req.db, "lv2@example.com") is None


def test_api_patches_role_tier_and_level(testapp, registry, auth):
    add_level(registry, "gold", "Gold", rank=1)
    uid, _h = make_member(registry)
    url = f"/api/v1/admin/users/{uid}"
    assert testapp.get(url, headers=auth).json["level"] is None
    # a tier needs an agent
    assert testapp.patch_json(url, {"tier": "t1"}, headers=auth, status=422).json["error"]["field"] == "tier"
    got = testapp.patch_json(url, {"role": "agent", "tier": "t1", "level": "gold"}, headers=auth).json
    assert (got["role"], got["tier"], got["level"], got["level_manual"]) == ("agent", "t1", "gold", True)
    got = testapp.patch_json(url, {"level": None}, headers=auth).json
    assert (got["level"], got["level_manual"]) == (None, False)
    got = testapp.patch_json(url, {"role": "buyer"}, headers=auth).json
    assert (got["role"], got["tier"], got["agent_status"]) == ("buyer", None, "")
    for body in ({"role": "admin"}, {"level": "nosuch"}, {"level": 3}, {"tier": "bad tier"}, {"role": ["agent"]}):
        testapp.patch_json(url, body, headers=auth, status=422)
    testapp.patch_json("/api/v1/admin/users/999999", {"role": "agent"}, headers=auth, status=404)
    with app_request(registry) as req:
        admin_id = accounts.find_user(req.db, "admin@example.com").id
    testapp.patch_json(f"/api/v1/admin/users/{admin_id}", {"role": "buyer"}, headers=auth, status=422)
    doc = testapp.get("/api/v1/openapi.json").json
    assert "patch" in doc["paths"]["/api/v1/admin/users/{id}"]
    assert "level" in doc["components"]["schemas"]["UserInput"]["properties"]


def test_the_account_overview_shows_the_level_and_the_next_one(app, registry):
    uid, _h = make_member(registry, email="box@example.com")
    client = buyer_app(app)
    form = client.get("/login").forms["login-form"]
    form["email"], form["password"] = "box@example.com", "member-password-1"
    form.submit(status=302)
    assert 'id="member-level"' not in client.get("/account").text  # a shop without levels shows nothing
    add_level(registry, "silver", "Silver", discount="5", min_paid="20.00", rank=1)
    add_level(registry, "gold", "Gold", discount="10", min_paid="100.00", min_topup="50.00", rank=2)
    page = client.get("/account")
    box = page.html.find(id="member-level")
    assert "no member level yet" in box.text
    assert "Silver" in box.find(id="level-next").text and "CNY 20.00" in box.find(id="level-next").text
    with app_request(registry) as req:
        user = req.db.get(accounts.User, uid)
        user.level = "silver"
        wallet.post(req.db, uid, 1000, "CNY", "topup", ref="topup:box-test")
    box = client.get("/account").html.find(id="member-level")
    assert box.find(id="level-name").text == "Silver" and "5 % off" in box.text
    nxt = " ".join(box.find(id="level-next").text.split())
    assert "Gold" in nxt and "CNY 100.00 more in paid orders" in nxt and "CNY 40.00 more in top-ups" in nxt
