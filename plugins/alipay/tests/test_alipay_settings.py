"""The admin page of the Alipay plugin: what it refuses (keys that do not
parse, Alipay's key mixed up with the app's, plain-http gateway URLs, an
empty key), secrets shown masked, and "test the connection" against the
fake Alipay."""
from __future__ import annotations

import pytest

from kameng import httpclient
from kameng.payments import GatewayError
from kameng.pluginhost import configure
from kameng.testing import app_request, set_plugin
from kameng.types import SettingError
from kameng_alipay import DEFAULT_GATEWAY_URL
from kameng_alipay.gateway import AlipayGateway
from kameng_alipay.testing import APP_ID, SELLER_ID, key_pem

from fake_alipay import FakeAlipay

PAGE = "/admin/plugins/alipay"


def good_settings(**changes) -> dict:
    return {"app_id": APP_ID, "app_private_key": key_pem("app_private_key"),
            "alipay_public_key": key_pem("ali_public_key"), "seller_id": SELLER_ID, **changes}


@pytest.fixture
def fake():
    provider = FakeAlipay().start()
    yield provider
    provider.stop()


@pytest.fixture
def configured(registry, fake):
    set_plugin(registry, "alipay", enabled=True, **good_settings(gateway_url=fake.url))
    return registry


def stored(registry) -> dict:
    with app_request(registry) as req:
        return req.plugin_settings("alipay")


def submit(admin_app, **fields):
    form = admin_app.get(PAGE).forms["plugin-settings"]
    for name, value in fields.items():
        form[name] = value
    return form.submit(status="*")


def test_page_masks_the_private_key_and_shows_the_notify_url(admin_app, configured):
    page = admin_app.get(PAGE)
    private_body = key_pem("app_private_key").splitlines()[1]
    assert private_body not in page.text and "PRIVATE KEY" not in page.text
    form = page.forms["plugin-settings"]
    assert form["app_private_key"].value == "********"
    assert "BEGIN PUBLIC KEY" in form["alipay_public_key"].value  # public: shown so it can be checked
    assert page.html.find(id="notify-url").text == "http://localhost/pay/alipay/notify"
    # saving with the mask keeps the stored key
    assert submit(admin_app, seller_id=SELLER_ID).status_int == 302
    assert stored(configured)["app_private_key"] == key_pem("app_private_key")


def test_defaults(registry):
    assert stored(registry)["gateway_url"] == DEFAULT_GATEWAY_URL


@pytest.mark.parametrize("field,value,message", [
    ("app_private_key", "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----",
     "is not an RSA private key"),
    ("app_private_key", key_pem("app_public_key"), "is not an RSA private key"),
    ("alipay_public_key", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", "is not an RSA public key"),
    ("alipay_public_key", key_pem("app_public_key"), "is your own app public key"),
    ("seller_id", "12345", "has the wrong format"),
    ("app_id", "app-2016", "has the wrong format"),
    ("gateway_url", "ftp://openapi.alipay.com/gateway.do", "must be an http(s) URL"),
])
def test_bad_values_are_refused(admin_app, configured, field, value, message):
    resp = submit(admin_app, **{field: value})
    assert resp.status_int == 400 and message in resp.text
    assert stored(configured) == {**good_settings(gateway_url=stored(configured)["gateway_url"])}


def test_plain_http_gateway_url_refused_unless_private_targets_are_allowed(admin_app, configured, monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    resp = submit(admin_app, gateway_url="http://openapi.alipay.com/gateway.do")
    assert resp.status_int == 400 and "must be an https:// URL" in resp.text
    assert submit(admin_app, gateway_url="https://openapi-sandbox.dl.alipaydev.com/gateway.do").status_int == 302
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)  # the tests' fake Alipay on 127.0.0.1
    assert submit(admin_app, gateway_url="http://127.0.0.1:9/gateway.do").status_int == 302


def test_keys_as_bare_base64_are_accepted(admin_app, configured):
    """What Alipay's key tool and backend show: one base64 line, no armour."""
    bare = "".join(line for line in key_pem("ali_public_key").splitlines() if not line.startswith("-----"))
    assert submit(admin_app, alipay_public_key=bare).status_int == 302
    assert stored(configured)["alipay_public_key"] == bare


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_private_key_is_refused(registry, configured, value):
    with pytest.raises(SettingError) as exc, app_request(registry) as req:
        configure(req, "alipay", {"app_private_key": value})
    assert exc.value.field_name == "app_private_key"


def test_settings_of_a_disabled_plugin_are_still_checked(registry):
    with pytest.raises(SettingError) as exc, app_request(registry) as req:
        configure(req, "alipay", {"app_private_key": "nonsense"})
    assert exc.value.field_name == "app_private_key"
    with app_request(registry) as req:  # one field at a time is fine while it is off
        configure(req, "alipay", {"app_id": APP_ID})


# -- test the connection ------------------------------------------------------------------------


def gateway(fake, **changes) -> AlipayGateway:
    return AlipayGateway(good_settings(**{"gateway_url": fake.url, **changes}))


def test_connection_succeeds_with_good_settings(fake):
    assert "Connected" in gateway(fake).test_connection(None)
    assert fake.count("alipay.trade.query") == 1


@pytest.mark.parametrize("changes,reason", [
    ({"app_private_key": key_pem("ali_private_key")}, "check app_private_key"),  # Alipay cannot verify us
    ({"app_id": "2016080000000999"}, "check app_id"),
    ({"alipay_public_key": key_pem("app_public_key")}, "does not verify"),  # we cannot verify Alipay
])
def test_connection_names_the_wrong_setting(fake, changes, reason):
    with pytest.raises(GatewayError, match=reason) as exc:
        gateway(fake, **changes).test_connection(None)
    assert "PRIVATE" not in str(exc.value)


def test_connection_to_nothing_fails(fake):
    with pytest.raises(GatewayError, match="cannot connect"):
        gateway(fake, gateway_url="http://127.0.0.1:9/gateway.do").test_connection(None)


def test_admin_button(admin_app, configured, fake):
    page = admin_app.get(PAGE).forms["test-connection"].submit().follow()
    assert "Connection test passed" in page.text
    set_plugin(configured, "alipay", app_id="2016080000000999")
    page = admin_app.get(PAGE).forms["test-connection"].submit().follow()
    assert "Connection test failed" in page.text and "isv.invalid-app-id" in page.text
