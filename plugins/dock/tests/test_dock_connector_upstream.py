"""Every connector method against the fake upstream shop (``dock_fake.py``,
the docking API's server side written from API.md): signed requests that
verify, prices for this account, balance debits and idempotent orders."""
from __future__ import annotations

from decimal import Decimal

import pytest
from dock_helpers import CALLBACK_URL, KEY_ID, SECRET, make_connector

from kameng.suppliers.base import SupplierError
from kameng.types import UpstreamOrderRequest


def test_test_connection_reports_the_balance(connector, fake):
    assert connector.test_connection().interpolate() == "Connected; the balance there is 100.00 CNY."
    assert fake.log == [("GET", "/api/v1/dock/balance", 200)]


def test_balance(connector, fake):
    assert connector.balance() == "100.00 CNY"
    fake.accounts[KEY_ID].balance = Decimal("0.5")
    assert connector.balance() == "0.50 CNY"


def test_list_goods_at_this_accounts_prices(connector, fake):
    card, topup = connector.list_goods()
    assert (card.id, card.name, card.type, card.category) == ("101", "Game card", "card_key", "Games")
    # GC-10 has a tier price of 9.00 for this account (list price 9.50)
    assert [(s.code, s.cost, s.stock) for s in card.skus] == [("GC-10", Decimal("9.00"), 5),
                                                              ("GC-50", Decimal("47.00"), 5)]
    assert (topup.id, topup.type, topup.skus[0].stock) == ("topup-7", "direct_recharge", None)
    assert topup.recharge_fields[0]["name"] == "account"


def test_list_goods_follows_price_and_stock_changes(connector, fake):
    fake.accounts[KEY_ID].prices["GC-10"] = Decimal("8.80")
    fake.pools["GC-10"] = fake.pools["GC-10"][:1]
    first = connector.list_goods()[0].skus[0]
    assert (first.cost, first.stock) == (Decimal("8.80"), 1)


def test_list_goods_refuses_another_currency(fake):
    fake.currency = "USD"
    with pytest.raises(SupplierError, match="sells in USD"):
        make_connector(fake).list_goods()
    with pytest.raises(SupplierError, match="sells in USD"):
        make_connector(fake).test_connection()


def test_get_goods(connector):
    assert connector.get_goods("topup-7").skus[0].code == "TOP-30"
    assert connector.get_goods("no such/goods") is None


def test_a_card_order_is_delivered_and_paid_from_the_balance(connector, fake):
    r = connector.place_order(UpstreamOrderRequest("D0001", "GC-10", 2, callback_url=CALLBACK_URL))
    assert (r.status, r.out_order_no, r.upstream_order_no, r.cost) == ("success", "D0001", "UP00000001",
                                                                       Decimal("18.00"))
    assert r.keys == (("N-GC-10-0", "S-GC-10-0"), ("N-GC-10-1", "S-GC-10-1"))
    assert fake.accounts[KEY_ID].balance == Decimal("82.00")
    [order] = fake.orders_of(KEY_ID)
    assert (order["out_order_no"], order["callback_url"]) == ("D0001", CALLBACK_URL)


def test_placing_again_never_places_twice(connector, fake):
    req = UpstreamOrderRequest("D0002", "GC-10", 1)
    first, again = connector.place_order(req), connector.place_order(req)
    assert first == again and first.status == "success"
    assert len(fake.orders_of(KEY_ID)) == 1 and fake.accounts[KEY_ID].balance == Decimal("91.00")
    assert connector.query_order("D0002") == first


def test_a_direct_recharge_is_processing_until_the_upstream_finishes(connector, fake):
    r = connector.place_order(UpstreamOrderRequest("D0003", "TOP-30", 1, recharge={"account": "13800000000"}))
    assert (r.status, r.keys, r.cost) == ("processing", (), Decimal("29.40"))
    assert fake.orders_of(KEY_ID)[0]["recharge"] == {"account": "13800000000"}
    assert connector.query_order("D0003").status == "processing"
    fake.finish("D0003", "delivered", send=False)
    assert connector.query_order("D0003").status == "success"


def test_a_refunded_recharge_is_failed(connector, fake):
    connector.place_order(UpstreamOrderRequest("D0004", "TOP-30", 1))
    fake.finish("D0004", "refunded", send=False)
    r = connector.query_order("D0004")
    assert (r.status, r.message) == ("failed", "the upstream order is refunded")
    assert fake.accounts[KEY_ID].balance == Decimal("100.00")


def test_query_of_an_order_never_placed_is_none(connector):
    assert connector.query_order("D-NEVER") is None


@pytest.mark.parametrize("sku,qty,message", [
    ("GC-50", 3, "the balance of this account at the upstream is too low (top up your balance)"),
    ("GC-10", 6, "the upstream is out of stock (not enough keys)"),
    ("NOPE", 1, "the upstream does not sell this SKU (no such SKU)"),
    ("TOP-30", 11, "the upstream refused the quantity (1 to 10)"),
])
def test_refusals_are_failed_with_a_clear_message_and_charge_nothing(connector, fake, sku, qty, message):
    r = connector.place_order(UpstreamOrderRequest("D0005", sku, qty))
    assert (r.status, r.out_order_no, r.message) == ("failed", "D0005", message)
    assert fake.orders_of(KEY_ID) == [] and fake.accounts[KEY_ID].balance == Decimal("100.00")


def test_a_reused_out_order_no_for_another_order_is_an_error_not_a_failure(connector, fake):
    connector.place_order(UpstreamOrderRequest("D0006", "GC-10", 1))
    with pytest.raises(SupplierError, match="HTTP 409 .idempotency_conflict"):
        connector.place_order(UpstreamOrderRequest("D0006", "GC-50", 1))
    assert len(fake.orders_of(KEY_ID)) == 1


def test_every_call_is_signed_with_a_fresh_nonce(connector, fake):
    for _ in range(5):
        connector.balance()
    assert len(fake.nonces) == 5 and all(status == 200 for _m, _p, status in fake.log)


def test_a_wrong_secret_is_refused_by_the_upstream(fake):
    conn = make_connector(fake, secret=SECRET + "x")
    with pytest.raises(SupplierError, match="refused the signature.*invalid_signature") as exc:
        conn.test_connection()
    assert exc.value.uncertain is False and SECRET not in str(exc.value)
    with pytest.raises(SupplierError, match="refused the signature"):
        conn.place_order(UpstreamOrderRequest("D0007", "GC-10", 1))
    assert fake.orders_of(KEY_ID) == []


def test_an_unknown_key_a_revoked_key_and_an_address_not_allowed(fake):
    with pytest.raises(SupplierError, match="refused the signature.*invalid_key"):
        make_connector(fake, key_id="dk_other").balance()
    fake.accounts[KEY_ID].address_refused = True
    with pytest.raises(SupplierError, match="does not allow this key from this server's address"):
        make_connector(fake).list_goods()
    fake.accounts[KEY_ID].revoked = True
    with pytest.raises(SupplierError, match="refused the signature.*invalid_key"):
        make_connector(fake).place_order(UpstreamOrderRequest("D0008", "GC-10", 1))
    assert fake.orders_of(KEY_ID) == []


def test_anti_fraud_refusal_is_failed(connector, fake):
    fake.blocked = True
    r = connector.place_order(UpstreamOrderRequest("D0009", "GC-10", 1))
    assert (r.status, r.message) == ("failed", "the upstream's anti-fraud checks refused the order (anti-fraud)")


def test_a_refused_callback_url_places_the_order_without_one(connector, fake):
    """The upstream calls back only public https addresses: a shop behind
    http gets its order placed anyway, and the core polls for the result."""
    fake.refuse_callback_urls = True
    req = UpstreamOrderRequest("D0010", "TOP-30", 1, callback_url=CALLBACK_URL)
    assert connector.place_order(req).status == "processing"
    assert connector.place_order(req).status == "processing"  # a retry finds the same order
    [order] = fake.orders_of(KEY_ID)
    assert order["callback_url"] == "" and fake.accounts[KEY_ID].balance == Decimal("70.60")


def test_a_clock_far_off_is_refused_by_the_upstream(fake):
    fake.clock = lambda: 10_000
    with pytest.raises(SupplierError, match="clock.*stale_timestamp"):
        make_connector(fake).balance()


def test_the_shop_may_live_under_a_path_and_the_prefix_may_be_pasted(fake):
    """The signed PATH is the path on the wire; a URL ending in /api/v1/dock
    or a slash is the same shop."""
    for url in (fake.url + "/", fake.url + "/api/v1/dock", fake.url + "/api/v1/dock/"):
        assert make_connector(fake, url=url).balance() == "100.00 CNY"


def test_missing_settings(fake):
    with pytest.raises(SupplierError, match="URL is not set"):
        make_connector(fake, url="").balance()
    with pytest.raises(SupplierError, match="no key id or secret"):
        make_connector(fake, secret="").balance()
