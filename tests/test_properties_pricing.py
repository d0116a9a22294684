"""Property tests for the price pipeline (kameng.orders.pricing, the
catalog's member-level and agent-tier prices, the supplier sale-price rule)
and for the amounts an order stores (SECURITY.md items 34, 36 and 39).

The documented rules (docs/plugins.md "How adjustments combine",
docs/catalog.md, docs/suppliers.md):

- a buyer pays the agent tier price, else the member level price, else the
  base price, and never more than the base price;
- within an ``exclusive_group`` only the biggest discount counts, every
  adjustment without a group counts, plugin order does not matter;
- the total is never below zero, and an order with nothing to pay is refused;
- all money is integer minor units: no rounding inside the pipeline, the
  total equals the sum of its steps;
- the client never sends a price: price fields in the body are ignored;
- every amount an order stores fits the database's INTEGER columns (a
  larger order is refused with a 422, never a 500);
- a supplier's sale price is rounded *up* to the step and is never below cost.
"""
from __future__ import annotations

import itertools
import json
from decimal import Decimal

import kameng_ordertest as plug
import pytest
import webtest
from fuzz_helpers import NO_LIMITS, bounded
from hypothesis import assume, example, given
from hypothesis import strategies as st
from orders_helpers import enable_sandbox
from sqlalchemy import func, select

from kameng import money
from kameng.catalog import service as catalog
from kameng.catalog.models import Sku
from kameng.orders import pricing
from kameng.orders.models import Order
from kameng.suppliers.sync import cost_minor, sale_price
from kameng.testing import app_request, set_plugin
from kameng.types import Adjustment

GROUPS = ["", "", "discount", "member", "promo"]


@st.composite
def adjustments(draw, max_size=6, low=-50_000, high=5_000):
    return draw(st.lists(st.builds(
        Adjustment, source=st.sampled_from(["coupons", "promo", "members", "p1"]),
        label=st.sampled_from(["A", "B", "C"]), amount=st.integers(low, high),
        code=st.sampled_from(["", "X1", "Y2"]), exclusive_group=st.sampled_from(GROUPS),
        priority=st.integers(0, 200)), max_size=max_size))


def expected_discount(offered: list[Adjustment]) -> int:
    """The rule, written again: the most negative of each group, plus every ungrouped one."""
    total = sum(a.amount for a in offered if not a.exclusive_group)
    for group in {a.exclusive_group for a in offered if a.exclusive_group}:
        total += min(a.amount for a in offered if a.exclusive_group == group)
    return -total


# -- resolving adjustments (no database) ---------------------------------------------------------


@bounded(max_examples=300)
@given(adjustments(), st.randoms(use_true_random=False))
def test_adjustments_combine_by_the_one_rule_in_any_order(offered, rnd):
    applied, dropped = pricing.resolve(offered)
    shuffled = list(offered)
    rnd.shuffle(shuffled)
    applied2, dropped2 = pricing.resolve(shuffled)
    key = lambda a: (a.source, a.label, a.amount, a.code, a.exclusive_group, a.priority)  # noqa: E731
    assert sorted(applied, key=key) == sorted(applied2, key=key)  # plugin order does not matter
    assert sorted(applied + dropped, key=key) == sorted(offered, key=key)  # nothing lost, nothing made up
    assert -sum(a.amount for a in applied) == expected_discount(offered)
    groups = [a.exclusive_group for a in applied if a.exclusive_group]
    assert len(groups) == len(set(groups))  # at most one of each group


@bounded(max_examples=100)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.decimals(allow_nan=False, allow_infinity=False)
       | st.text(max_size=5))
def test_an_adjustment_that_is_not_whole_minor_units_is_refused(amount):
    assume(not isinstance(amount, int))
    with pytest.raises(TypeError):
        pricing.resolve([Adjustment(source="p", label="x", amount=amount)])


@bounded(max_examples=300)
@given(st.integers(0, money.MAX_MINOR), adjustments(low=-10 ** 9, high=10 ** 6))
def test_the_quote_total_is_never_negative(subtotal, offered):
    q = pricing.Quote(product=None, sku=None, quantity=1, currency="CNY", subtotal=subtotal)
    q.adjustments, q.rejected = pricing.resolve(offered)
    assert q.amount == max(subtotal - expected_discount(offered), 0) >= 0


# -- quoting against the catalog (the real price_for and quote) --------------------------------------


class Buyer:
    """A stand-in for an account of a plugin that gives members levels and agents tiers."""

    def __init__(self, level, tier):
        self.level, self.tier, self.id, self.email = level, tier, 1, "buyer@example.com"


class Hooks:
    def __init__(self, offered):
        self.offered = offered

    def kameng_price_adjustments(self, request, quote):
        return [list(self.offered), None]  # two plugins: one offers, one has nothing


class QuoteRequest:
    def __init__(self, db, offered):
        self.db, self.hooks, self.shop = db, Hooks(offered), {"currency": "CNY"}


@pytest.fixture
def priced_sku(registry):
    """A SKU at 10.00 with a gold tier price of 8.50, a silver tier price above
    the base (12.00: the base wins) and a vip level price of 9.25."""
    with app_request(registry) as req:
        catalog.save_product(req.db, {"name": "Priced", "type": "manual", "skus": [
            {"code": "PRICED", "name": "p", "price": "10.00", "max_quantity": 10000,
             "tier_prices": {"gold": "8.50", "silver": "12.00"}, "level_prices": {"vip": "9.25", "big": "30.00"}}]},
            "CNY")
        return req.db.scalar(select(Sku.id).where(Sku.code == "PRICED"))


SPECIAL = {("tier", "gold"): 850, ("tier", "silver"): 1200, ("level", "vip"): 925, ("level", "big"): 3000}


def expected_unit(level, tier, base=1000):
    for kind, ref in (("tier", tier), ("level", level)):
        if ref and (kind, ref) in SPECIAL:
            return min(SPECIAL[(kind, ref)], base)
    return base


@bounded(max_examples=150)
@given(st.sampled_from([None, "", "vip", "big", "nobody"]), st.sampled_from([None, "", "gold", "silver", "nobody"]),
       st.booleans(), st.integers(1, 10000), adjustments())
def test_a_quote_is_the_sum_of_its_steps(registry, priced_sku, level, tier, guest, quantity, offered):
    with app_request(registry) as req:
        sku = req.db.get(Sku, priced_sku)
        user = None if guest else Buyer(level, tier)
        q = pricing.quote(QuoteRequest(req.db, offered), sku.product, sku, quantity, user=user)
    unit = 1000 if guest else expected_unit(level, tier)
    assert q.base_unit == 1000 and 0 < q.unit_price == unit <= q.base_unit  # never above the base price
    assert q.subtotal == unit * quantity  # whole minor units: nothing to round
    assert q.amount == max(q.subtotal - expected_discount(offered), 0) >= 0
    *lines, total = q.steps
    assert total == {"step": "total", "amount": q.amount}
    assert sum(s["amount"] for s in lines) == q.amount  # the total is the sum of the lines
    assert [s["step"] for s in lines].count("base") == 1
    assert all(isinstance(s["amount"], int) for s in q.steps)
    # the same in decimal strings, as the buyer reads them
    shown = Decimal(money.format_minor(q.base_unit, "CNY")) * quantity + sum(
        Decimal(money.format_minor(s["amount"], "CNY")) for s in lines if s["step"] != "base")
    assert shown == Decimal(money.format_minor(q.amount, "CNY"))


# -- orders through the API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def papp(make_app):
    return make_app(extra_plugins=[("ordertest", plug)], **NO_LIMITS)


@pytest.fixture
def papi(papp):
    plug.ADJUSTMENTS.clear()
    enable_sandbox(papp.registry)
    set_plugin(papp.registry, "ordertest", enabled=True)
    with app_request(papp.registry) as req:
        catalog.save_product(req.db, {"name": "Unlimited", "type": "manual", "skus": [
            {"code": "UNLTD", "name": "u", "price": "33.33", "max_quantity": 10000}]}, "CNY")
    yield webtest.TestApp(papp, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    plug.ADJUSTMENTS.clear()


CLIENT_PRICES = st.dictionaries(
    st.sampled_from(["price", "amount", "total", "discount", "unit_price", "subtotal", "pay_amount", "money"]),
    st.one_of(st.just("0.01"), st.just("0"), st.just("-100.00"), st.integers(-10 ** 6, 10 ** 6),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6)), max_size=4)

_keys = itertools.count(1)


def orders_count(registry) -> int:
    with app_request(registry) as req:
        return req.db.scalar(select(func.count()).select_from(Order))


@bounded(max_examples=40)
@given(st.integers(1, 200), adjustments(max_size=4, low=-20_000, high=2_000), CLIENT_PRICES)
@example(3, [], {"price": "0.01", "amount": "0.01"})  # 3 × 33.33 = 99.99, whatever the client says
@example(1, [Adjustment(source="c", label="all of it", amount=-3333)], {})  # a free order is refused
def test_an_order_stores_the_server_price_whatever_the_client_sends(papp, papi, quantity, offered, client):
    plug.ADJUSTMENTS[:] = offered
    body = {**client, "sku": "UNLTD", "quantity": quantity, "contact": "buyer@example.com",
            "query_password": "pass1234", "payment_method": "sandbox"}
    before = orders_count(papp.registry)
    resp = papi.post_json("/api/v1/orders", body, expect_errors=True)
    subtotal = 3333 * quantity
    amount = max(subtotal - expected_discount(offered), 0)
    if amount == 0:  # never goods for nothing (item 36)
        assert resp.status_int == 422 and resp.json["error"]["code"] == "invalid_amount"
        assert orders_count(papp.registry) == before
        return
    assert resp.status_int == 201, resp.text
    assert resp.json["amount"] == money.format_minor(amount, "CNY")
    assert resp.json["payment"]["amount"] == resp.json["amount"]  # the gateway is asked for the same
    with app_request(papp.registry) as req:
        order = req.db.scalar(select(Order).where(Order.order_no == resp.json["order_no"]))
        assert (order.unit_price, order.subtotal, order.amount) == (3333, subtotal, amount)
        assert order.discount == subtotal - amount
        steps = json.loads(order.pricing)
    assert steps[-1] == {"step": "total", "amount": amount}
    assert sum(s["amount"] for s in steps[:-1]) == amount


@bounded(max_examples=30)
@given(st.integers(1, catalog.MAX_PRICE), st.integers(1, 10000))
@example(catalog.MAX_PRICE, 3)
@example(money.MAX_MINOR // 7 + 1, 7)
def test_an_order_too_large_for_the_database_is_refused_not_a_500(papp, papi, price, quantity):
    """Every amount an order stores fits an INTEGER column on every database:
    beyond that the order is a 422 that says how many fit (a 500 on
    PostgreSQL and MariaDB before)."""
    with app_request(papp.registry) as req:
        sku = req.db.scalar(select(Sku).where(Sku.code == "UNLTD"))
        sku.price = price
    body = {"sku": "UNLTD", "quantity": quantity, "contact": "buyer@example.com", "query_password": "pass1234",
            "payment_method": "sandbox"}
    resp = papi.post_json("/api/v1/orders", body, expect_errors=True)
    if price * quantity <= money.MAX_MINOR:
        assert resp.status_int == 201, resp.text
        assert money.parse_minor(resp.json["amount"], "CNY") == price * quantity
    else:
        assert resp.status_int == 422, resp.text
        error = resp.json["error"]
        assert error["code"] == "invalid_quantity"
        assert 0 < error["max_quantity"] < quantity and error["max_quantity"] * price <= money.MAX_MINOR


@bounded(max_examples=60)
@given(st.sampled_from(["price", "cost_price", "level_prices", "tier_prices"]),
       st.integers(1, 10 ** 15) | st.sampled_from([catalog.MAX_PRICE, catalog.MAX_PRICE + 1, money.MAX_MINOR + 1]))
def test_a_price_the_database_cannot_hold_is_refused(papp, papi, field, minor):
    """Prices are capped (10 000 000.00): larger ones were a 500 on PostgreSQL and MariaDB."""
    with app_request(papp.registry) as req:
        token = _admin_token(req)
    text = money.format_minor(minor, "CNY")
    value = {"gold": text} if field.endswith("_prices") else text
    resp = papi.patch_json("/api/v1/admin/skus/UNLTD", {field: value}, headers={"Authorization": f"Bearer {token}"},
                           expect_errors=True)
    if minor <= catalog.MAX_PRICE:
        assert resp.status_int == 200, resp.text
    else:
        assert resp.status_int == 422, resp.text
        assert resp.json["error"]["field"].startswith(field)


def _admin_token(req) -> str:
    from kameng import accounts

    user = accounts.find_user(req.db, "pricing-admin@example.com") or accounts.create_user(
        req.db, "pricing-admin@example.com", "admin-password-123", role="admin")
    return accounts.create_token(req.db, user, "pricing")


# -- supplier sale prices ----------------------------------------------------------------------------


class Binding:
    def __init__(self, mode, value, step, cost):
        self.price_mode, self.price_value, self.price_step, self.cost = mode, value, step, cost


@bounded(max_examples=400)
@given(st.sampled_from(["markup", "margin"]), st.decimals(0, 1000, places=2), st.integers(1, 1000),
       st.integers(0, 10 ** 7), st.integers(0, 10 ** 7), st.sampled_from(["CNY", "JPY"]))
@example("markup", Decimal("10"), 10, 333, 334, "CNY")
def test_a_sale_price_is_rounded_up_never_below_cost_and_follows_the_cost(mode, value, step, cost, other, currency):
    price = sale_price(Binding(mode, str(value), step, cost), current=1, currency=currency)
    exact = (Decimal(cost) * (1 + value / 100) if mode == "markup"
             else Decimal(cost) + value.scaleb(money.digits(currency)))
    assert isinstance(price, int)
    assert price % step == 0  # on the step
    assert exact <= price < exact + step  # rounded up, by less than one step
    assert price >= cost  # never sells below cost
    lower, higher = sorted((cost, other))
    assert (sale_price(Binding(mode, str(value), step, lower), 1, currency)
            <= sale_price(Binding(mode, str(value), step, higher), 1, currency))  # a dearer cost never lowers it


@bounded(max_examples=100)
@given(st.integers(1, 10 ** 9), st.integers(0, 10 ** 7))
def test_a_fixed_price_does_not_follow_the_cost(current, cost):
    assert sale_price(Binding("fixed", "50", 100, cost), current=current, currency="CNY") == current


@bounded(max_examples=300)
@given(st.decimals(0, 10 ** 6, places=6), st.sampled_from(["CNY", "JPY"]))
def test_an_upstream_cost_is_rounded_up_to_the_minor_unit(cost, currency):
    minor = cost_minor(cost, currency)
    exact = cost.scaleb(money.digits(currency))
    assert isinstance(minor, int) and exact <= minor < exact + 1
