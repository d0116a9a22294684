"""The plugin as kameng loads it, and a connection's settings: the URL
policy of :func:`kameng.httpclient.check_url`, the key id and the secret."""
from __future__ import annotations

from importlib.metadata import entry_points

import kameng_dock
import pytest
from kameng_dock.connector import DockConnector, _base_url

from kameng import httpclient
from kameng.suppliers.base import SupplierConnector
from kameng.types import SettingError


@pytest.fixture
def strict_urls(monkeypatch):
    """URL policy as in production: https only, no private addresses."""
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)


def test_the_entry_point_and_the_hook():
    [ep] = [ep for ep in entry_points(group="kameng") if ep.name == "dock"]
    assert ep.load() is kameng_dock
    assert kameng_dock.kameng_supplier_connectors() == [DockConnector]
    assert kameng_dock.PLUGIN.settings == ()  # the settings are per connection, on the connector


def test_the_connector_declares_the_contract():
    assert issubclass(DockConnector, SupplierConnector)
    assert (DockConnector.identifier, DockConnector.callbacks, DockConnector.currency) == ("dock", True, "CNY")
    fields = {f.name: f for f in DockConnector.settings}
    assert list(fields) == ["url", "key_id", "secret"]
    assert all(f.required for f in fields.values())
    assert fields["secret"].secret and not fields["key_id"].secret and fields["url"].type == "url"


def test_the_app_loads_the_plugin(make_app):
    host = make_app().registry["kameng.plugins"]
    assert host.get("dock").module is kameng_dock


@pytest.mark.parametrize("name,value,message", [
    ("url", "", "is required"), ("url", "ftp://x.example", r"http\(s\) URL"), ("key_id", "", "is required"),
    ("key_id", "a b", "wrong format"), ("secret", "", "is required")])
def test_field_parsing(name, value, message):
    field = {f.name: f for f in DockConnector.settings}[name]
    with pytest.raises(SettingError, match=message):
        field.parse(value)


@pytest.mark.parametrize("url,message", [
    ("http://upstream.example", "must start with https://"),
    ("https://127.0.0.1:8000", "private or loopback"),
    ("https://10.1.2.3", "private or loopback"),
    ("https://[::1]", "private or loopback"),
    ("https://8.8.8.8/?key=x", "without a query"),
    ("https://user:pw@8.8.8.8", "without a query, fragment or password"),
    ("https://8.8.8.8/#x", "without a query"),
])
def test_bad_urls_are_refused(strict_urls, url, message):
    with pytest.raises(SettingError, match=message) as exc:
        DockConnector.validate({"url": url, "key_id": "k", "secret": "s"})
    assert exc.value.field_name == "url"


def test_good_urls_pass(strict_urls):
    for url in ("https://8.8.8.8", "https://8.8.8.8/shop/", ""):
        DockConnector.validate({"url": url, "key_id": "k", "secret": "s"})


def test_loopback_is_allowed_only_when_the_operator_allows_private_targets():
    DockConnector.validate({"url": "http://127.0.0.1:8000"})  # the conftest allows it, as the tests' ini does


@pytest.mark.parametrize("url,base", [("https://a.example", "https://a.example"),
                                      ("https://a.example/", "https://a.example"),
                                      ("https://a.example/shop/", "https://a.example/shop"),
                                      ("https://a.example/api/v1/dock", "https://a.example"),
                                      ("https://a.example/shop/api/v1/dock/", "https://a.example/shop"),
                                      (" https://a.example ", "https://a.example")])
def test_the_base_url(url, base):
    assert _base_url(url) == base
