"""The plugin's settings on the admin page (validated, the token masked) and
the connection test against the fake server."""
from __future__ import annotations

import pytest

from kameng import httpclient
from kameng.payments import GatewayError
from kameng.pluginhost import configure
from kameng.testing import app_request, set_plugin
from kameng.types import SettingError

from kameng_usdt.gateway import TEST_ORDER_ID, UsdtGateway

TOKEN = "epusdt-test-token-0123456789"  # the fakes' token (conftest.py)


@pytest.fixture
def strict_urls(monkeypatch):
    """URL policy as in production: https only, no private addresses."""
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)


def settings_form(admin_app):
    page = admin_app.get("/admin/plugins/usdt")
    assert page.status_int == 200
    return page.forms["plugin-settings"]


def test_settings_are_saved_and_the_token_is_masked(admin_app, registry):
    form = settings_form(admin_app)
    form["api_url"] = "https://pay.example.com/"
    form["api_token"] = "my-very-secret-epusdt-token"
    form.submit().follow()
    page = admin_app.get("/admin/plugins/usdt")
    assert "my-very-secret-epusdt-token" not in page.text
    form = page.forms["plugin-settings"]
    assert form["api_token"].value == "********" and form["api_url"].value == "https://pay.example.com/"
    form["api_url"] = "https://pay2.example.com"
    form.submit().follow()  # the mask keeps the stored token
    with app_request(registry) as req:
        values = req.plugin_settings("usdt")
    assert values == {"api_url": "https://pay2.example.com", "api_token": "my-very-secret-epusdt-token"}


@pytest.mark.parametrize("url,message", [
    ("http://pay.example.com", "must start with https://"),
    ("https://127.0.0.1:8000", "private or loopback"),
    ("https://10.1.2.3", "private or loopback"),
    ("https://pay.example.com/?token=x", "without a query"),
    ("https://user:pw@pay.example.com", "without a query, fragment or password"),
    ("ftp://pay.example.com", "must be an http(s) URL"),
])
def test_bad_urls_are_refused(admin_app, strict_urls, url, message):
    form = settings_form(admin_app)
    form["api_url"] = url
    form["api_token"] = "a-token"
    bad = form.submit(status=400)
    assert message in bad.text


def test_plain_http_is_allowed_where_the_operator_allows_private_targets(admin_app, registry):
    form = settings_form(admin_app)
    form["api_url"] = "http://127.0.0.1:8000"
    form["api_token"] = "a-token"
    form.submit().follow()
    with app_request(registry) as req:
        assert req.plugin_settings("usdt")["api_url"] == "http://127.0.0.1:8000"


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_token_is_refused(registry, value):
    with pytest.raises(SettingError, match="api_token"), app_request(registry) as req:
        configure(req, "usdt", {"api_url": "https://pay.example.com", "api_token": value})


def test_the_plugin_cannot_be_enabled_without_a_token(admin_app, registry):
    set_plugin(registry, "usdt", api_url="https://pay.example.com")
    from kameng.pluginhost import PluginError, set_enabled

    with pytest.raises(PluginError, match="api_token"), app_request(registry) as req:
        set_enabled(req, "usdt", True)


# -- the connection test ---------------------------------------------------------------


def connection_test(registry, url, token=TOKEN):
    with app_request(registry) as req:
        return UsdtGateway({"api_url": url, "api_token": token}).test_connection(req)


@pytest.mark.parametrize("flavor", ["epusdt", "bepusdt"])
def test_connection_with_the_right_token_makes_no_trade(registry, make_fake, flavor):
    fake = make_fake(flavor)
    assert "API token is right" in connection_test(registry, fake.url)
    [call] = fake.requests
    assert call["sign_ok"] and call["body"]["amount"] == 0.0 and call["body"]["order_id"] == TEST_ORDER_ID
    assert fake.trades == {}


@pytest.mark.parametrize("flavor", ["epusdt", "bepusdt"])
def test_connection_with_a_wrong_token_says_so(registry, make_fake, flavor):
    fake = make_fake(flavor)
    with pytest.raises(GatewayError, match="refused the signature: check the API token") as exc:
        connection_test(registry, fake.url, token="not-the-token")
    assert "not-the-token" not in str(exc.value)
    assert fake.trades == {}


@pytest.mark.parametrize("mode,message", [("garbage", "not JSON"), ("http500", "HTTP 500")])
def test_connection_to_something_else_fails(registry, fake, mode, message):
    fake.mode = mode
    with pytest.raises(GatewayError, match=message):
        connection_test(registry, fake.url)


def test_connection_to_nothing_fails(registry, fake):
    fake.stop()
    with pytest.raises(GatewayError, match="cannot connect"):
        connection_test(registry, fake.url)


def test_connection_refuses_a_private_address_in_production(registry, fake, strict_urls):
    with pytest.raises(GatewayError, match="https://"):
        connection_test(registry, fake.url)


def test_the_gateway_declares_what_it_can_do():
    assert (UsdtGateway.identifier, UsdtGateway.merchant_id_setting) == ("usdt", None)
    assert UsdtGateway.connection_test_supported and not UsdtGateway.refund_supported
    assert not UsdtGateway.close_supported
