"""The connector against a fake acg-faka shop on 127.0.0.1 (newer and older
upstreams): connection test, balance, goods, and orders."""
from __future__ import annotations

import sys
from decimal import Decimal

import pytest

from kameng.suppliers.base import CallbackRejected, SupplierError
from kameng.types import UpstreamOrderRequest
from kameng_acgfaka.connector import AcgFakaConnector

fakeshop = sys.modules["kameng_acgfaka_tests_acgfaka_fake"]  # loaded by conftest.py


def order(sku: str, quantity: int = 1, no: str = "K24010112000000000001", **kw) -> UpstreamOrderRequest:
    return UpstreamOrderRequest(out_order_no=no, sku=sku, quantity=quantity, **kw)


def trades(fake):
    return [post for path, post in fake.requests if path == "/shared/commodity/trade"]


# -- connection ------------------------------------------------------------------------------


def test_connection_and_balance(fake, connector):
    message = connector.test_connection()
    assert message.mapping == {"shop": "测试发卡网", "balance": "100.00", "currency": "CNY"}
    assert connector.balance() == "100.00"
    path, post = fake.requests[0]
    assert path == "/shared/authentication/connect"
    assert post["app_id"] == "1001" and post["app_key"] == fakeshop.APP_KEY and len(post["sign"]) == 32


def test_a_wrong_key_or_account_is_refused(fake, make_connector):
    with pytest.raises(SupplierError, match="密钥错误"):
        make_connector(fake, app_key="not-the-key").test_connection()
    with pytest.raises(SupplierError, match="商户ID不存在"):
        make_connector(fake, app_id="999").test_connection()
    with pytest.raises(SupplierError, match="no shop address"):
        make_connector(fake, app_key="").balance()


def test_an_unreachable_upstream(make_connector, fake):
    url = fake.url
    fake.stop()
    with pytest.raises(SupplierError) as info:
        make_connector(fake, url=url).test_connection()
    assert not info.value.uncertain


@pytest.mark.parametrize("behaviour", ["garbage", ("status", 500), ("status", 302)])
def test_garbage_answers(fake, connector, behaviour):
    fake.script["/shared/authentication/connect"] = [behaviour]
    with pytest.raises(SupplierError):
        connector.test_connection()
    fake.script["/shared/commodity/items"] = [behaviour]
    with pytest.raises(SupplierError):
        connector.list_goods()


def test_answers_without_the_expected_data(fake, connector, monkeypatch):
    monkeypatch.setattr(fake, "connect", lambda user, post: {"shopName": "x"})
    with pytest.raises(SupplierError, match="no balance"):
        connector.balance()
    monkeypatch.setattr(fake, "items", lambda user, post: {"weird": 1})
    with pytest.raises(SupplierError, match="goods list"):
        connector.list_goods()


# -- goods -----------------------------------------------------------------------------------


def by_id(goods_list):
    return {g.id: g for g in goods_list}


def test_goods_from_a_newer_upstream(fake, connector):
    found = by_id(connector.list_goods())
    card = found["CARD01"]
    assert (card.type, card.category, card.name) == ("card_key", "游戏点卡", "Steam 充值卡 10元")
    assert [(s.code, s.cost, s.stock, s.available) for s in card.skus] == [("k:CARD01", Decimal("9.00"), 3, True)]
    race = found["RACE01"]
    assert [(s.code, s.name, s.cost, s.stock) for s in race.skus] == [
        ("k:RACE01/月卡", "月卡", Decimal("27.00"), 2), ("k:RACE01/年卡", "年卡", Decimal("270.00"), 0)]
    sku = found["SKU01"]
    assert [(s.code, s.cost, s.stock) for s in sku.skus] == [
        ("k:SKU01?区服=电信区", Decimal("4.50"), 1), ("k:SKU01?区服=网通区", Decimal("6.00"), 2)]
    qq = found["QQ01"]
    assert qq.type == "direct_recharge" and qq.recharge_fields[0]["name"] == "qq"
    assert [(s.code, s.cost, s.stock) for s in qq.skus] == [("m:QQ01", Decimal("9.00"), 50)]
    assert found["MAN01"].type == "manual" and found["MAN01"].skus[0].stock == 0
    bad = found["BAD01"].skus[0]
    assert not bad.available and bad.stock is None
    asked = [path for path, _ in fake.requests]
    assert asked.count("/shared/commodity/item") == 5  # this account's prices are not in a newer list


def test_goods_from_an_older_upstream(make_fake, make_connector):
    fake = make_fake(legacy=True)
    found = by_id(make_connector(fake).list_goods())
    assert [(s.cost, s.stock) for s in found["CARD01"].skus] == [(Decimal("9.00"), 3)]
    assert [(s.cost, s.stock) for s in found["RACE01"].skus] == [(Decimal("27.00"), 2), (Decimal("270.00"), 0)]
    # no options on the older inventory call: the goods' whole count
    assert [s.stock for s in found["SKU01"].skus] == [3, 3]
    asked = [path for path, _ in fake.requests]
    assert "/shared/commodity/item" not in asked  # the older list has this account's prices
    assert asked.count("/shared/commodity/stock") == 1  # tried once, then inventory


def test_a_goods_the_upstream_stops_docking(fake, connector, monkeypatch):
    real = fake.stock

    def refusing(user, post):
        if post.get("code") == "RACE01":
            raise fakeshop.Refused("该商品未开放对接")
        return real(user, post)

    monkeypatch.setattr(fake, "stock", refusing)
    found = by_id(connector.list_goods())
    assert [s.stock for s in found["RACE01"].skus] == [0, 0]


def test_a_timeout_while_listing(fake, make_connector):
    fake.script["/shared/commodity/items"] = ["hang"]
    with pytest.raises(SupplierError, match="did not answer in time"):
        make_connector(fake, timeout=0.3).list_goods()


# -- orders ----------------------------------------------------------------------------------


def test_card_keys(fake, connector):
    result = connector.place_order(order("k:CARD01", 2))
    assert result.status == "success" and result.delivered == 2
    assert result.keys == ((None, "AAAA-1111-XXXX"), (None, "BBBB-2222-YYYY"))
    assert result.cost == Decimal("18.00") and result.upstream_order_no == fake.orders[0]["trade_no"]
    assert fake.users[1001]["balance"] == Decimal("82.00")
    sent = trades(fake)[0]
    assert sent["request_no"] == "K24010112000000000001" and sent["shared_code"] == "CARD01"
    assert sent["num"] == "2" and sent["race"] == "" and sent["password"] == "" and "sku" not in sent


def test_races_options_and_number_secret_pairs(fake, connector):
    result = connector.place_order(order("k:RACE01/月卡", 2, no="K1"))
    assert result.status == "success" and result.keys == (("M0001", "P0001"), ("M0002", "P0002"))
    result = connector.place_order(order("k:SKU01?区服=网通区", 1, no="K2"))
    assert result.status == "success" and result.keys == ((None, "W-1"),) and result.cost == Decimal("6.00")
    assert trades(fake)[-1]["sku"] == {"区服": "网通区"}


def test_a_direct_recharge_is_accepted_and_left_processing(fake, connector):
    result = connector.place_order(order("m:QQ01", 1, recharge={"qq": "123456789"}))
    assert result.status == "processing" and "已受理" in result.message and result.keys == ()
    assert result.cost == Decimal("9.00") and fake.orders[0]["widget"]["qq"]["value"] == "123456789"
    refused = connector.place_order(order("m:QQ01", 1, no="K-bad", recharge={"qq": "0123"}))
    assert refused.status == "failed" and "QQ号格式不正确" in refused.message


def test_recharge_names_go_back_to_the_upstreams(fake, connector):
    fake.commodities["QQ01"].widget = [{"cn": "账号", "name": "Account", "type": "text", "regex": ""}]
    result = connector.place_order(order("m:QQ01", 1, recharge={"x_" + b"Account".hex(): "me"}))
    assert result.status == "processing" and trades(fake)[0]["Account"] == "me"
    bad = connector.place_order(order("m:QQ01", 1, no="K9", recharge={"x_" + b"app_key".hex(): "x"}))
    assert bad.status == "failed" and len(trades(fake)) == 1


@pytest.mark.parametrize("sku,quantity,balance,message", [
    ("k:CARD01", 4, None, "库存不足"),
    ("k:RACE01/年卡", 1, None, "库存不足"),
    ("k:RACE01/季卡", 1, None, "此商品类型不存在"),
    ("k:NOPE", 1, None, "商品不存在"),
    ("k:CARD01", 1, "1.00", "余额不足"),
])
def test_refusals_fail_without_a_charge(fake, connector, sku, quantity, balance, message):
    if balance:
        fake.users[1001]["balance"] = Decimal(balance)
    result = connector.place_order(order(sku, quantity))
    assert result.status == "failed" and message in result.message
    assert fake.orders == [] and fake.users[1001]["balance"] == Decimal(balance or "100.00")


def test_codes_that_are_not_ours_fail_before_any_call(fake, connector):
    for sku in ("CARD01", "x:CARD01", ""):
        assert connector.place_order(order(sku)).status == "failed"
    assert connector.place_order(order("k:CARD01", 0)).status == "failed"
    assert trades(fake) == []


def test_charged_but_nothing_delivered(fake, connector):
    fake.lose_cards = True
    fake.users[1001]["balance"] = Decimal("1000.00")
    result = connector.place_order(order("k:RACE01/年卡"))
    assert result.status == "partial" and result.delivered == 0 and result.keys == ()
    assert "抢走" in result.message and result.cost == Decimal("270.00")


def test_a_used_request_no_is_already_placed(fake, connector):
    assert connector.place_order(order("k:CARD01")).status == "success"
    again = connector.place_order(order("k:CARD01"))
    assert again.status == "unknown" and "already" in again.message
    assert len(fake.orders) == 1 and fake.users[1001]["balance"] == Decimal("91.00")


def test_a_timeout_after_the_upstream_took_the_order(fake, make_connector):
    connector = make_connector(fake, timeout=0.3)
    fake.script["/shared/commodity/trade"] = ["hang_after"]
    with pytest.raises(SupplierError) as info:
        connector.place_order(order("k:CARD01"))
    assert info.value.uncertain
    assert fake.traded.wait(10) and len(fake.orders) == 1
    # the core asks first: acg-faka cannot say, so it never answers "no such order"
    asked = connector.query_order("K24010112000000000001")
    assert asked is not None and asked.status == "unknown"
    # placing again under the same number cannot buy twice
    fake.release.set()
    assert connector.place_order(order("k:CARD01")).status == "unknown"
    assert len(fake.orders) == 1


def test_a_timeout_before_the_upstream_did_anything(fake, make_connector):
    connector = make_connector(fake, timeout=0.3)
    fake.script["/shared/commodity/trade"] = ["hang"]
    with pytest.raises(SupplierError) as info:
        connector.place_order(order("k:CARD01"))
    assert info.value.uncertain and fake.orders == []
    fake.release.set()
    assert connector.place_order(order("k:CARD01")).status == "success"


@pytest.mark.parametrize("behaviour,uncertain", [(("status", 500), True), (("status", 502), True),
                                                 (("status", 404), False), (("status", 301), False)])
def test_http_errors_on_trade(fake, connector, behaviour, uncertain):
    fake.script["/shared/commodity/trade"] = [behaviour]
    with pytest.raises(SupplierError) as info:
        connector.place_order(order("k:CARD01"))
    assert info.value.uncertain is uncertain


@pytest.mark.parametrize("behaviour,orders", [("garbage", 0), ("garbage_after", 1)])
def test_garbage_after_a_trade_is_unknown(fake, connector, behaviour, orders):
    fake.script["/shared/commodity/trade"] = [behaviour]
    result = connector.place_order(order("k:CARD01"))
    assert result.status == "unknown" and len(fake.orders) == orders


def test_a_success_without_data_is_unknown(fake, connector, monkeypatch):
    monkeypatch.setattr(fake, "trade", lambda user, post: None)
    assert connector.place_order(order("k:CARD01")).status == "unknown"


def test_price_ceiling(fake, connector):
    high = connector.place_order(order("k:CARD01", 2, max_unit_cost=Decimal("8.99")))
    assert high.status == "failed" and "9.00" in high.message and trades(fake) == []
    ok = connector.place_order(order("k:CARD01", 2, max_unit_cost=Decimal("9.00")))
    assert ok.status == "success"


def test_price_ceiling_on_an_older_upstream(make_fake, make_connector):
    fake = make_fake(legacy=True)  # no valuation: the trade decides
    result = make_connector(fake).place_order(order("k:CARD01", 1, max_unit_cost=Decimal("1.00")))
    assert result.status == "success"


def test_price_ceiling_in_another_currency(fake, make_connector):
    result = make_connector(fake, currency="USD").place_order(order("k:CARD01", max_unit_cost=Decimal(100)))
    assert result.status == "failed" and "CNY" in result.message


def test_query_never_claims_an_order_is_unknown_upstream(connector):
    result = connector.query_order("K-never-placed")
    assert result.status == "unknown" and result.out_order_no == "K-never-placed"


def test_query_by_the_upstreams_own_number(fake, connector):
    placed = connector.place_order(order("k:RACE01/月卡", 2))
    again = connector.query_trade(placed.upstream_order_no, "k:RACE01/月卡", 2, placed.out_order_no)
    assert (again.status, again.keys, again.out_order_no) == ("success", placed.keys, placed.out_order_no)
    assert connector.query_trade("nope", "k:CARD01", 1) is None
    manual = connector.place_order(order("m:QQ01", 1, no="K2", recharge={"qq": "12345"}))
    later = connector.query_trade(manual.upstream_order_no, "m:QQ01", 1)
    assert later.status == "processing" and "已受理" in later.message


# -- the key ---------------------------------------------------------------------------------


def test_the_key_never_reaches_a_log_or_a_message(fake, make_connector, caplog):
    caplog.set_level("DEBUG")
    connector = make_connector(fake, timeout=0.3)
    fake.script["/shared/commodity/trade"] = ["hang", "garbage_after", ("status", 500)]
    messages = []
    for call in (connector.test_connection, connector.list_goods, lambda: connector.place_order(order("k:CARD01")),
                 lambda: connector.place_order(order("k:CARD01", no="K2")),
                 lambda: connector.place_order(order("k:CARD01", no="K3")),
                 lambda: connector.place_order(order("k:NOPE", no="K4")),
                 lambda: make_connector(fake, app_key="wrong-key-wrong").balance()):
        try:
            messages.append(str(call()))
        except SupplierError as exc:
            messages.append(str(exc))
    fake.release.set()
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records and fakeshop.APP_KEY not in logged and fakeshop.APP_KEY not in " ".join(messages)
    assert fakeshop.APP_KEY not in repr(connector)


def test_redirects_are_not_followed(fake, connector, monkeypatch):
    fake.script["/shared/commodity/trade"] = [("status", 307)]
    with pytest.raises(SupplierError, match="HTTP 307"):
        connector.place_order(order("k:CARD01"))
    assert len(fake.requests) == 1


def test_class_contract(connector):
    assert AcgFakaConnector.identifier == "acgfaka" and AcgFakaConnector.callbacks is False
    with pytest.raises(CallbackRejected):
        connector.parse_callback(None)
    names = [f.name for f in AcgFakaConnector.settings]
    assert names == ["url", "app_id", "app_key", "currency", "timeout"]
    assert [f.name for f in AcgFakaConnector.settings if f.secret] == ["app_key"]
