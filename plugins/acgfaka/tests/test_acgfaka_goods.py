"""Reading acg-faka commodities into kameng goods (pure): INI configs,
races and options, inputs → recharge fields, costs."""
from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from kameng.catalog import recharge
from kameng_acgfaka import goods
from kameng_acgfaka.protocol import ProtocolError


def row(**kw):
    base = {"code": "G1", "name": "Goods", "price": "10.00", "user_price": "9.00", "delivery_way": 0, "stock": 5,
            "config": "", "widget": None}
    return {**base, **kw}


def test_parse_ini_like_acgfaka():
    text = "[category]\n月卡=30\n年卡 =300\r\n\n[sku]\n区服.电信=0\n区服.网通=1.5\n[wholesale]\n10=9"
    assert goods.parse_ini(text) == {"category": {"月卡": "30", "年卡 ": "300"},
                                     "sku": {"区服": {"电信": "0", "网通": "1.5"}}, "wholesale": {"10": "9"}}
    for bad in ("月卡=30", "[category]\n月卡", "[category]\na=b=c"):
        with pytest.raises(ProtocolError):
            goods.parse_ini(bad)


def test_config_and_sections():
    assert goods.config_of(row(config={"category": ["a", "b"]})) == {"category": ["a", "b"]}
    assert goods.section({"category": ["a", "b"]}, "category") == {"0": "a", "1": "b"}
    assert goods.config_of(row(config="月卡=30")) == {}  # does not parse: no races
    assert goods.config_of(row(config=None)) == {}


def test_goods_rows_and_find_row():
    tree = [{"name": "A", "children": [row(code="X"), "junk"]}, {"name": "B", "children": {"3": row(code="Y")}}]
    assert [(c, r["code"]) for c, r in goods.goods_rows(tree)] == [("A", "X"), ("B", "Y")]
    assert goods.find_row(tree, "Y")["code"] == "Y" and goods.find_row(tree, "Z") is None
    assert goods.find_row(row(code="X"), "X")["code"] == "X" and goods.find_row(row(code="X"), "Y") is None
    for bad in ("x", [1], [{"children": "x"}]):
        with pytest.raises(ProtocolError):
            goods.goods_rows(bad)


def test_kinds_and_types():
    card = goods.listing(row(), "cat")
    assert (card.kind, card.type, card.problem, card.category) == ("k", "card_key", "", "cat")
    manual = goods.listing(row(delivery_way=1), "cat")
    assert (manual.kind, manual.type, manual.recharge_fields) == ("m", "manual", ())
    qq = [{"cn": "QQ号", "name": "qq", "type": "text", "regex": "^[1-9]\\d{4,11}$"}]
    rc = goods.listing(row(delivery_way=1, widget=json.dumps(qq)), "cat")
    assert rc.type == "direct_recharge" and rc.recharge_fields[0]["name"] == "qq"
    assert goods.listing(row(delivery_way=0, widget=qq), "c").problem  # a card product cannot ask for input
    assert goods.listing(row(delivery_way=2), "c").problem
    assert goods.listing(row(delivery_way=1, widget="{not json"), "c").problem
    assert goods.listing(row(code=""), "c") is None


def test_recharge_fields_pass_kamengs_own_checks():
    widgets = [
        {"cn": "QQ号", "name": "qq", "type": "text", "regex": "^[1-9]\\d{4,11}$"},
        {"cn": "区服", "name": "Server", "type": "select", "dict": "电信一区,网通一区\n电信一区"},
        {"cn": "备注", "name": "remark", "type": "textarea", "regex": ""},
        {"cn": "手机", "name": "phone", "type": "text", "regex": "1[3-9]\\d{9}"},
        {"cn": "怪", "name": "odd", "type": "text", "regex": "[\\x{4e00}-\\x{9fa5}]+"},  # PCRE only
        {"cn": "验证", "name": "captcha", "type": "custom"},
    ]
    fields, problem = goods.recharge_spec(goods.widgets_of(widgets))
    assert problem == "" and recharge.parse_spec(list(fields)) == list(fields)
    by = {f["label"]: f for f in fields}
    assert "验证" not in by and all(f["required"] for f in fields)
    assert by["区服"]["kind"] == "choice" and by["区服"]["choices"] == ["电信一区", "网通一区"]
    assert by["区服"]["name"] == "x_" + b"Server".hex()
    assert re.fullmatch(by["QQ号"]["pattern"], "12345") and not re.fullmatch(by["QQ号"]["pattern"], "012345")
    assert re.fullmatch(by["手机"]["pattern"], "tel 13800138000 ok")  # the upstream searches, it does not anchor
    assert "pattern" not in by["怪"] and "pattern" not in by["备注"]
    spec = list(fields)
    assert recharge.validate(spec, {"qq": "123456", "x_536572766572": "网通一区", "remark": "hi",
                                    "phone": "13800138000", "odd": "中文"})


def test_impossible_inputs_are_a_problem():
    for widgets in ([{"name": "区服", "type": "text"}], [{"name": "sku", "type": "text"}],
                    [{"name": f"f{i}", "type": "text"} for i in range(11)]):
        fields, problem = goods.recharge_spec(widgets)
        assert fields == () and problem


def test_variants_costs_and_codes():
    config = "[category]\n月卡=30\n年卡=300\n[category_factory]\n月卡=27\n[sku]\n区服.电信=0\n区服.网通=1.5"
    item = goods.listing(row(config=config, factory_price=0), "c")
    assert item.races == ["月卡", "年卡"] and not item.needs_detail() and item.legacy
    combos = goods.variants(item)
    assert len(combos) == 4 and ("年卡", {"区服": "网通"}) in combos
    assert goods.unit_cost(item, "月卡", {"区服": "网通"}) == Decimal("28.5")
    assert goods.unit_cost(item, "年卡", {"区服": "电信"}) == Decimal(300)  # no price of ours: the list price
    assert goods.sku_name(item, "月卡", {"区服": "网通"}) == "月卡 / 网通"
    assert goods.sku_ref(item, "月卡", {"区服": "网通"}) == "k:G1/月卡?区服=网通"
    plain = goods.listing(row(), "c")
    assert plain.needs_detail() and goods.unit_cost(plain, "", {}) == Decimal("10.00")
    detail = row(factory_price="8.10", config={"category_factory": {}})
    assert goods.unit_cost(plain, "", {}, detail) == Decimal("8.10")
    assert goods.unit_cost(goods.listing(row(price="x"), "c"), "", {}) is None
    assert goods.sku_name(plain, "", {}) == "Goods"


def test_too_many_variants():
    opts = "\n".join(f"颜色.c{i}=0" for i in range(8)) + "\n" + "\n".join(f"尺寸.s{i}=0" for i in range(8))
    item = goods.listing(row(config="[sku]\n" + opts), "c")
    assert goods.variants(item) == []


def test_option_groups_that_cannot_be_sent_back():
    item = goods.listing(row(config="[sku]\na[b].x=0"), "c")
    assert item.problem
