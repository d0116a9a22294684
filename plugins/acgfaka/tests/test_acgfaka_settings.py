"""The plugin and a connection's settings: registration, the checks on the
shop address, and the key stored encrypted."""
from __future__ import annotations

import json
import sys

import pytest

from kameng import httpclient
from kameng.suppliers import connections
from kameng.testing import app_request, set_plugin
from kameng.types import SettingError
from kameng_acgfaka.connector import AcgFakaConnector

fakeshop = sys.modules["kameng_acgfaka_tests_acgfaka_fake"]  # loaded by conftest.py


def fields():
    return {f.name: f for f in AcgFakaConnector.settings}


def test_the_plugin_offers_the_connector(registry):
    assert registry["kameng.connectors"]["acgfaka"] == ("acgfaka", AcgFakaConnector)


def test_field_checks():
    f = fields()
    assert f["app_id"].parse(" 1001 ") == "1001"
    for bad in ("abc", "10 01", "1" * 19):
        with pytest.raises(SettingError):
            f["app_id"].parse(bad)
    with pytest.raises(SettingError):
        f["app_key"].parse("")
    with pytest.raises(SettingError):
        f["url"].parse("ftp://shop.example.com")
    assert f["currency"].parse("") is None and f["currency"].default == "CNY"
    with pytest.raises(SettingError):
        f["currency"].parse("cny")
    with pytest.raises(SettingError):
        f["timeout"].parse("1")


@pytest.mark.parametrize("url", ["https://shop.example.com/?a=1", "https://user:pw@shop.example.com",
                                 "https://shop.example.com/#top"])
def test_addresses_with_extras_are_refused(url, monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)
    with pytest.raises(SettingError) as info:
        AcgFakaConnector.validate({"url": url})
    assert info.value.field_name == "url"


def test_plain_http_and_private_addresses_are_refused(monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    for url in ("http://shop.example.com", "https://127.0.0.1", "https://10.1.2.3/shop"):
        with pytest.raises(SettingError):
            AcgFakaConnector.validate({"url": url})
    AcgFakaConnector.validate({"url": ""})  # the required check is the field's


def test_a_connection_keeps_the_key_encrypted(registry, fake):
    set_plugin(registry, "acgfaka", enabled=True)
    raw = {"url": fake.url + "/", "app_id": "1001", "app_key": fakeshop.APP_KEY}
    with app_request(registry, actor="admin") as req:
        conn = connections.save_connection(req, None, "acgfaka", "upstream", raw)
        assert fakeshop.APP_KEY not in conn.settings and fakeshop.APP_KEY not in conn.secrets
        assert json.loads(conn.settings)["url"] == fake.url + "/"
        connector = connections.connector_for(req, conn)
        assert connector.url == fake.url and connector.balance() == "100.00"
        assert connector.timeout == 30 and connector.currency == "CNY"
        # a blank or masked key on edit keeps the stored one
        connections.save_connection(req, conn, "acgfaka", "upstream", {**raw, "app_key": connections.SECRET_MASK})
        assert connections.connector_for(req, conn).balance() == "100.00"
