"""Reading the upstream's answers strictly (API.md "Docking API"): goods,
balance and orders, and how an order's state maps onto the contract."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from kameng_dock import protocol

SKU = {"code": "GC-10", "name": "10 credits", "price": "9.50", "stock": 3}


def goods(**change):
    g = {"id": 7, "name": "Game card", "type": "card_key", "skus": [dict(SKU)]}
    g.update(change)
    return g


def order(**change):
    o = {"out_order_no": "D1", "order_no": "UP1", "status": "delivered", "amount": "19.00",
         "keys": [{"number": "N1", "secret": "S1"}, {"secret": "S2"}]}
    o.update(change)
    return o


def test_a_goods_list_is_read_with_the_price_quoted_as_the_cost():
    [g] = protocol.parse_goods_list({"items": [goods(category={"id": 3, "name": "Games"}, description="d",
                                                      extra="ignored")]})
    assert (g.id, g.name, g.type, g.category, g.description) == ("7", "Game card", "card_key", "Games", "d")
    [sku] = g.skus
    assert (sku.code, sku.name, sku.cost, sku.stock, sku.available) == ("GC-10", "10 credits", Decimal("9.50"), 3,
                                                                        True)


def test_stock_null_means_not_counted_and_available_false_is_kept():
    [g] = protocol.parse_goods_list({"items": [goods(skus=[{**SKU, "stock": None, "available": False}])]})
    assert g.skus[0].stock is None and g.skus[0].available is False


def test_recharge_fields_pass_through():
    fields = [{"name": "account", "label": "Phone", "required": True}]
    [g] = protocol.parse_goods_list({"items": [goods(type="direct_recharge", recharge_fields=fields)]})
    assert g.recharge_fields == tuple(fields)


def test_goods_of_an_unknown_type_are_skipped_not_fatal():
    assert protocol.parse_goods_list({"items": [goods(type="subscription"), goods(id=8, skus=[])]})[0].id == "8"


@pytest.mark.parametrize("doc,reason", [
    ([], "not a JSON object"),
    ({}, "no items"),
    ({"items": {}}, "no items"),
    ({"items": [goods(id=None)]}, "goods id"),
    ({"items": [goods(id=True)]}, "goods id"),
    ({"items": [goods(id=-1)]}, "goods id"),
    ({"items": [goods(id="a b")]}, "goods id"),
    ({"items": [goods(name=None)]}, "name is missing"),
    ({"items": [goods(name=5)]}, "name is missing"),
    ({"items": [goods(type=None)]}, "type is missing"),
    ({"items": [goods(skus=None)]}, "skus is not a list"),
    ({"items": [goods(skus=["GC-10"])]}, "not a JSON object"),
    ({"items": [goods(skus=[{**SKU, "price": 9.5}])]}, "not a decimal string"),
    ({"items": [goods(skus=[{**SKU, "price": "-1"}])]}, "not a decimal string"),
    ({"items": [goods(skus=[{**SKU, "price": "1e2"}])]}, "not a decimal string"),
    ({"items": [goods(skus=[{**SKU, "price": " 1.00"}])]}, "not a decimal string"),
    ({"items": [goods(skus=[{**SKU, "price": "1.000000001"}])]}, "not a decimal string"),
    ({"items": [goods(skus=[{**SKU, "price": None}])]}, "not a decimal string"),
    ({"items": [goods(skus=[{**SKU, "stock": -1}])]}, "stock is not a whole number"),
    ({"items": [goods(skus=[{**SKU, "stock": True}])]}, "stock is not a whole number"),
    ({"items": [goods(skus=[{**SKU, "stock": "3"}])]}, "stock is not a whole number"),
    ({"items": [goods(skus=[{**SKU, "stock": 1.0}])]}, "stock is not a whole number"),
    ({"items": [goods(skus=[{**SKU, "available": "yes"}])]}, "available"),
    ({"items": [goods(skus=[{**SKU, "code": ""}])]}, "code is missing"),
    ({"items": [goods(skus=[{**SKU, "code": "a b"}])]}, "malformed code"),
    ({"items": [goods(skus=[SKU, SKU])]}, "appears twice"),
    ({"items": [goods(), goods()]}, "goods id appears twice"),
    ({"items": [goods(), goods(id=8)]}, "under two goods"),
    ({"items": [goods(recharge_fields="account")]}, "recharge_fields"),
    ({"items": [goods(category=5)]}, "category"),
])
def test_a_goods_list_that_is_not_the_shape_is_refused(doc, reason):
    with pytest.raises(protocol.ProtocolError, match=reason):
        protocol.parse_goods_list(doc)


@pytest.mark.parametrize("doc,expected", [({"balance": "90.00", "currency": "CNY"}, (Decimal("90.00"), "CNY")),
                                          ({"balance": "0", "currency": "USDT"}, (Decimal(0), "USDT")),
                                          ({"balance": "-5.10", "currency": "CNY"}, (Decimal("-5.10"), "CNY"))])
def test_balance(doc, expected):
    assert protocol.parse_balance(doc) == expected


@pytest.mark.parametrize("doc", [{"balance": 90, "currency": "CNY"}, {"balance": "90"}, {"currency": "CNY"},
                                 {"balance": "90", "currency": "cny"}, {"balance": "--1", "currency": "CNY"},
                                 {"balance": "NaN", "currency": "CNY"}, "90.00"])
def test_a_bad_balance_is_refused(doc):
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_balance(doc)


def test_an_order_is_read():
    o = protocol.parse_order(order(extra=1), "D1")
    assert (o.out_order_no, o.order_no, o.status, o.amount) == ("D1", "UP1", "delivered", Decimal("19.00"))
    assert o.keys == (("N1", "S1"), (None, "S2"))


@pytest.mark.parametrize("status,mapped", [("pending", "processing"), ("paid", "processing"),
                                           ("delivering", "processing"), ("delivered", "success"),
                                           ("failed", "failed"), ("refunded", "failed"), ("expired", "failed"),
                                           ("cancelled", "failed")])
def test_statuses_map_onto_the_contract(status, mapped):
    keys = [{"secret": "S"}] if status == "delivered" else []
    r = protocol.result(protocol.parse_order(order(status=status, keys=keys)))
    assert (r.status, r.out_order_no, r.upstream_order_no, r.cost) == (mapped, "D1", "UP1", Decimal("19.00"))
    assert r.keys == (((None, "S"),) if mapped == "success" else ())
    assert (r.message == "") == (mapped != "failed")


def test_a_refunded_order_still_listing_its_keys_reports_none():
    r = protocol.result(protocol.parse_order(order(status="refunded")))
    assert (r.status, r.keys) == ("failed", ())


def test_a_delivered_recharge_has_no_keys():
    r = protocol.result(protocol.parse_order(order(keys=[])))
    assert r.status == "success" and r.keys == ()


@pytest.mark.parametrize("doc,reason", [
    (order(out_order_no="D2"), "another order"),
    (order(out_order_no=None), "out_order_no is missing"),
    (order(order_no=""), "order_no is missing"),
    (order(order_no="a b"), "malformed order_no"),
    (order(status="DELIVERED"), "unknown status"),
    (order(status="success"), "unknown status"),
    (order(status=None), "unknown status"),
    (order(amount=19), "not a decimal string"),
    (order(keys={"secret": "S"}), "not a list"),
    (order(keys=["S"]), "not an object"),
    (order(keys=[{"secret": ""}]), "no secret"),
    (order(keys=[{"secret": 5}]), "no secret"),
    (order(keys=[{"secret": "S", "number": 5}]), "number"),
    ([order()], "not a JSON object"),
])
def test_an_order_that_is_not_the_shape_is_refused(doc, reason):
    with pytest.raises(protocol.ProtocolError, match=reason):
        protocol.parse_order(doc, "D1")


@pytest.mark.parametrize("body", [b'{"a":1,"a":2}', b'{"a":NaN}', b"\xff\xfe", b"<html>", b""])
def test_bodies_strictjson_refuses(body):
    with pytest.raises(protocol.ProtocolError):
        protocol.loads(body)


def test_error_bodies():
    assert protocol.error_of(b'{"error":{"code":"insufficient_balance","message":"top\\nup"}}') == (
        "insufficient_balance", "top up")
    assert protocol.error_of(b'{"error":{"code":"Bad Code","message":7}}') == ("", "")
    assert protocol.error_of(b"<html>") == ("", "")


def test_the_order_body():
    body = protocol.order_body("D1", "TOP-30", 1, {"account": "13800000000", "zone": 3},
                               "https://shop.example/supplier/callback/1")
    assert json.loads(body) == {"out_order_no": "D1", "sku": "TOP-30", "quantity": 1,
                                "recharge": {"account": "13800000000", "zone": "3"},
                                "callback_url": "https://shop.example/supplier/callback/1"}
    assert b" " not in body


@pytest.mark.parametrize("args", [("", "S", 1), ("a b", "S", 1), ("D1", "", 1), ("D1", "S", 0), ("D1", "S", True),
                                  ("D1", "S", 1.0)])
def test_an_order_body_that_cannot_be_sent(args):
    with pytest.raises(protocol.ProtocolError):
        protocol.order_body(*args)
