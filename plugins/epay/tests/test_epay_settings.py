"""The admin's plugin page for epay (GET/POST /admin/plugins/epay): what it
refuses (a bad PEM, the merchant's own public key as the platform's, an
http:// or private address unless the shop allows it, an empty key), that
secrets are shown masked, and the "test connection" result, directly and
through the admin button, against the fake platform."""
from __future__ import annotations

import json

import pytest

from kameng import httpclient
from kameng.payments import GatewayError
from kameng.pluginhost import PluginState
from kameng.testing import app_request, set_plugin
from kameng_epay.gateway import EpayGateway
from kameng_epay.testing import TEST_KEY, EpayDriver, key_pem

PAGE = "/admin/plugins/epay"


def form_of(admin_app):
    return admin_app.get(PAGE).forms["plugin-settings"]


def submit(admin_app, **values):
    form = form_of(admin_app)
    for name, value in values.items():
        form[name] = value
    return form.submit(expect_errors=True)


def stored(registry) -> dict:
    with app_request(registry) as req:
        state = req.db.get(PluginState, "epay")
        return json.loads(state.settings) if state is not None else {}


V1 = {"api_url": "https://pay.example.com/", "pid": "1001", "version": "1", "key": TEST_KEY}


def test_the_page_shows_every_setting_and_the_notify_address(admin_app):
    page = admin_app.get(PAGE)
    for name in ("api_url", "pid", "key", "version", "merchant_private_key", "platform_public_key", "channels",
                 "sign_mode"):
        assert f'name="{name}"' in page.text
    assert "http://localhost/pay/epay/notify" in page.text


def test_v1_settings_are_saved_and_the_key_is_shown_masked(admin_app, registry):
    resp = submit(admin_app, **V1)
    assert resp.status_int == 302, resp.text
    assert stored(registry)["pid"] == "1001" and "key" not in stored(registry)  # secrets are stored encrypted
    page = admin_app.get(PAGE)
    assert TEST_KEY not in page.text and page.forms["plugin-settings"]["key"].value == "********"
    # saving again with the mask keeps the key
    assert submit(admin_app, pid="1002").status_int == 302
    with app_request(registry) as req:
        assert req.plugin_settings("epay")["key"] == TEST_KEY


def test_v1_refuses_an_empty_key(admin_app, registry):
    resp = submit(admin_app, **{**V1, "key": ""})
    assert resp.status_int == 400 and "is required for version 1" in resp.text
    assert stored(registry) == {}


def test_a_short_key_is_refused(admin_app):
    resp = submit(admin_app, **{**V1, "key": "short"})
    assert resp.status_int == 400 and "at least 16 characters" in resp.text


@pytest.mark.parametrize("field,value,message", [
    ("pid", "abc", "has the wrong format"),
    ("channels", "alipay, Wx-Pay!", "lowercase letters"),
    ("api_url", "ftp://pay.example.com/", "http(s) URL"),
])
def test_bad_values_are_refused(admin_app, field, value, message):
    resp = submit(admin_app, **{**V1, field: value})
    assert resp.status_int == 400 and message in resp.text


def test_http_and_private_addresses_are_refused_unless_the_shop_allows_them(admin_app, registry, monkeypatch):
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    resp = submit(admin_app, **{**V1, "api_url": "http://pay.example.com/"})
    assert resp.status_int == 400 and "https://" in resp.text
    resp = submit(admin_app, **{**V1, "api_url": "https://127.0.0.1/"})
    assert resp.status_int == 400 and "private or loopback" in resp.text
    assert stored(registry) == {}
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)  # kameng.http.allow_private_targets = true
    assert submit(admin_app, **{**V1, "api_url": "http://127.0.0.1:8080/"}).status_int == 302


def test_v2_needs_both_keys_and_refuses_a_bad_pem(admin_app, registry):
    v2 = {**V1, "version": "2", "key": ""}
    resp = submit(admin_app, **v2)
    assert resp.status_int == 400 and "is required for version 2" in resp.text
    bad = "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----"
    resp = submit(admin_app, **{**v2, "merchant_private_key": bad, "platform_public_key": key_pem("platform_public")})
    assert resp.status_int == 400 and "is not an RSA private key" in resp.text
    resp = submit(admin_app, **{**v2, "merchant_private_key": key_pem("merchant_private"),
                                "platform_public_key": "MIIBIjANBgkq"})
    assert resp.status_int == 400 and "is not an RSA public key" in resp.text
    assert stored(registry) == {}


def test_v2_refuses_the_merchants_own_public_key_as_the_platforms(admin_app):
    resp = submit(admin_app, **{**V1, "version": "2", "merchant_private_key": key_pem("merchant_private"),
                                "platform_public_key": key_pem("merchant_public")})
    assert resp.status_int == 400 and "platform public key" in resp.text


def test_v2_keys_are_saved_the_private_one_masked(admin_app, registry):
    private = key_pem("merchant_private")
    resp = submit(admin_app, **{**V1, "version": "2", "key": "", "merchant_private_key": private,
                                "platform_public_key": key_pem("platform_public")})
    assert resp.status_int == 302, resp.text
    page = admin_app.get(PAGE)
    assert "PRIVATE KEY" not in page.text and "BEGIN PUBLIC KEY" in page.text
    with app_request(registry) as req:
        assert req.plugin_settings("epay")["merchant_private_key"] == private


def test_keys_pasted_as_bare_base64_are_accepted(admin_app):
    bare = {name: "".join(line for line in key_pem(name).splitlines() if "-----" not in line)
            for name in ("merchant_private", "platform_public")}
    resp = submit(admin_app, **{**V1, "version": "2", "merchant_private_key": bare["merchant_private"],
                                "platform_public_key": bare["platform_public"]})
    assert resp.status_int == 302, resp.text


def test_enabling_without_settings_is_refused(admin_app, registry):
    from kameng.pluginhost import PluginError

    with pytest.raises(PluginError):
        set_plugin(registry, "epay", enabled=True)


# -- test connection -----------------------------------------------------------------------


@pytest.fixture
def fake(fakes, request):
    return fakes(*getattr(request, "param", ("1", "plain")))


def gateway_for(fake, **overrides) -> EpayGateway:
    return EpayGateway({**EpayDriver(fake.version, fake.sign_mode, api_url=fake.url).settings(), **overrides})


@pytest.mark.parametrize("fake", [("1", "plain"), ("1", "amp_key"), ("2", "plain")], indirect=True)
def test_test_connection_passes_with_the_right_settings(fake):
    message = gateway_for(fake).test_connection(None).interpolate()
    assert "1001" in message
    assert fake.calls == (["api/merchant/info"] if fake.version == "2" else ["api.php?act=order"])


def test_test_connection_names_a_wrong_key_without_repeating_it(fake):
    wrong = "WrongKeyWrongKeyWrongKey12345678"
    with pytest.raises(GatewayError, match="商户密钥错误") as exc:
        gateway_for(fake, key=wrong).test_connection(None)
    assert wrong not in str(exc.value) and TEST_KEY not in str(exc.value)


def test_v1_test_connection_cannot_see_the_sign_mode(fakes):
    # act=order authenticates by the key itself (V1 has no harmless signed call), so a wrong sign_mode
    # shows only at the first payment: the docs say so
    fake = fakes("1", "amp_key")
    assert "1001" in gateway_for(fake, sign_mode="plain").test_connection(None).interpolate()


@pytest.mark.parametrize("fake", [("2", "plain")], indirect=True)
def test_v2_test_connection_fails_on_the_wrong_platform_key(fake):
    from kameng_epay import protocol

    fake.platform_private = protocol.load_private_key(key_pem("merchant_private"))
    with pytest.raises(GatewayError, match="does not verify"):
        gateway_for(fake).test_connection(None)


def test_test_connection_when_the_platform_is_down(fake):
    fake.stop()
    with pytest.raises(GatewayError, match="cannot connect"):
        gateway_for(fake).test_connection(None)


def test_the_admin_button_shows_the_result(admin_app, registry, fake):
    set_plugin(registry, "epay", **EpayDriver("1", api_url=fake.url).settings())
    page = admin_app.get(PAGE)
    resp = page.forms["test-connection"].submit().follow()
    assert "Connection test passed" in resp.text and "1001" in resp.text
    set_plugin(registry, "epay", key="WrongKeyWrongKeyWrongKey12345678")
    resp = admin_app.get(PAGE).forms["test-connection"].submit().follow()
    assert "Connection test failed" in resp.text and "商户密钥错误" in resp.text
