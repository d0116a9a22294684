"""Fixtures for the acg-faka connector's tests: a fake acg-faka shop on
127.0.0.1 stocked with one goods of each kind, and connectors pointed at it."""
from __future__ import annotations

from decimal import Decimal

import pytest

from kameng import httpclient
from kameng.testing import load_sibling


def _load(name: str):
    return load_sibling(__file__, name, "kameng_acgfaka_tests")


fakeshop = _load("acgfaka_fake")


def stock(fake):
    """The catalogue every test starts from."""
    C = fakeshop.Commodity
    fake.add(C("CARD01", "Steam 充值卡 10元", Decimal("11.00"), Decimal("10.00")),
             {"": ["AAAA-1111-XXXX", "BBBB-2222-YYYY", "CCCC-3333-ZZZZ"]})
    fake.add(C("RACE01", "视频会员", Decimal(0), Decimal(0), category="会员", races={"月卡": "30.00", "年卡": "300"}),
             {"月卡": ["M0001----P0001", "M0002----P0002"]})
    fake.add(C("SKU01", "游戏点券", Decimal("5.00"), Decimal("5.00"), skus={"区服": {"电信区": "0", "网通区": "1.5"}}),
             [("", {"区服": "电信区"}, ["T-1"]), ("", {"区服": "网通区"}, ["W-1", "W-2"])])
    fake.add(C("QQ01", "QQ会员代充", Decimal("12.00"), Decimal("10.00"), category="代充", delivery_way=1, stock=50,
               widget=[{"cn": "QQ号", "name": "qq", "placeholder": "QQ", "type": "text",
                        "regex": "^[1-9]\\d{4,11}$", "error": "QQ号格式不正确"}],
               delivery_message="已受理，10分钟内到账"))
    fake.add(C("MAN01", "人工服务", Decimal("20.00"), Decimal("20.00"), category="代充", delivery_way=1, stock=0))
    fake.add(C("BAD01", "带留言的卡", Decimal("1.00"), Decimal("1.00"),
               widget=[{"cn": "备注", "name": "remark", "type": "text", "regex": ""}]), {"": ["R-1"]})
    return fake


@pytest.fixture
def private_ok(monkeypatch):
    """Let the connector call the fake on 127.0.0.1 over http (as the test settings of an app do)."""
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)


@pytest.fixture
def make_fake():
    made = []

    def start(legacy: bool = False, stocked: bool = True):
        fake = fakeshop.FakeAcgFaka(legacy=legacy).start()
        made.append(fake)
        return stock(fake) if stocked else fake

    yield start
    for fake in made:
        fake.stop()


@pytest.fixture
def fake(make_fake):
    return make_fake()


@pytest.fixture
def make_connector(private_ok):
    from kameng_acgfaka.connector import AcgFakaConnector

    def make(fake, **overrides):
        settings = {"url": fake.url, "app_id": str(fakeshop.APP_ID), "app_key": fakeshop.APP_KEY,
                    "currency": "CNY", "timeout": 5, **overrides}
        return AcgFakaConnector(settings)

    return make


@pytest.fixture
def connector(fake, make_connector):
    return make_connector(fake)
