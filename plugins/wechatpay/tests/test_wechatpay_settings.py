"""The WeChat Pay settings on the admin plugin page, their checks, and the
connection test against the fake WeChat Pay."""
import pytest
from kameng import httpclient
from kameng.payments import GatewayError
from kameng.pluginhost import PluginError, configure, set_enabled
from kameng.testing import app_request, set_plugin
from kameng.types import SettingError

from kameng_wechatpay import testing
from kameng_wechatpay.gateway import WechatPayGateway

PAGE = "/admin/plugins/wechatpay"


def submit(admin_app, status, **values):
    form = admin_app.get(PAGE).forms["plugin-settings"]
    for name, value in values.items():
        form[name] = value
    return form.submit(status=status)


def stored(registry) -> dict:
    with app_request(registry) as req:
        return req.plugin_settings("wechatpay")


def second_certificate_pem() -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = testing.stranger_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_the_page_saves_valid_settings_and_masks_secrets(admin_app, registry):
    page = admin_app.get(PAGE)
    assert "/pay/wechatpay/notify" in page.text and "test-connection" in page.text
    good = testing.settings(api_url="https://api.mch.weixin.qq.com")
    submit(admin_app, 302, **good)
    assert stored(registry)["apiv3_key"] == testing.APIV3_KEY
    page = admin_app.get(PAGE)
    assert testing.APIV3_KEY not in page.text
    private_body = good["merchant_private_key"].splitlines()[1]
    assert private_body not in page.text
    form = page.forms["plugin-settings"]
    assert form["apiv3_key"].value != testing.APIV3_KEY and form["mchid"].value == testing.MCHID
    # saving again with the masked secrets keeps them
    form.submit(status=302)
    assert stored(registry)["merchant_private_key"] == good["merchant_private_key"]


@pytest.mark.parametrize("field,value", [
    ("merchant_private_key", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----"),
    ("merchant_private_key", testing.public_pem(testing.merchant_key())),
    ("platform_public_key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
    ("platform_certificates", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
    ("platform_certificates", testing.public_pem(testing.merchant_key())),
    ("apiv3_key", "too-short-key"),
    ("apiv3_key", "ThisIsA32ByteAPIv3KeyForTests!!é"),
    ("mchid", "abc"),
    ("merchant_serial_no", "not-hex!"),
    ("platform_public_key_id", "KEY_1"),
    ("api_url", "https://api.mch.weixin.qq.com/v3"),
    ("api_url", "ftp://api.mch.weixin.qq.com"),
    ("channels", "native,jsapi"),
])
def test_bad_values_are_refused_and_nothing_is_stored(admin_app, registry, field, value):
    resp = submit(admin_app, 400, **{**testing.settings(api_url="https://api.mch.weixin.qq.com"), field: value})
    assert 'class="error"' in resp.text or "error" in resp.text
    assert stored(registry)["mchid"] is None


def test_a_public_key_needs_its_id_and_the_reverse(admin_app, registry):
    good = testing.settings(api_url="https://api.mch.weixin.qq.com")
    submit(admin_app, 400, **{**good, "platform_public_key_id": ""})
    submit(admin_app, 400, **{**good, "platform_public_key": ""})
    submit(admin_app, 302, **{**good, "platform_public_key": "", "platform_public_key_id": ""})


def test_several_platform_certificates_are_taken(admin_app, registry):
    bundle = testing.platform_certificate_pem() + "\n" + second_certificate_pem()
    submit(admin_app, 302, **{**testing.settings(api_url="https://api.mch.weixin.qq.com"),
                              "platform_certificates": bundle})
    gw = WechatPayGateway(stored(registry))
    keys = gw.client().keys
    assert len(keys.certificates) == 2


def test_http_urls_are_refused_unless_private_targets_are_allowed(admin_app, registry, monkeypatch):
    settings = testing.settings(api_url="http://api.mch.weixin.qq.com")
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", False)
    resp = submit(admin_app, 400, **settings)
    assert "https://" in resp.text
    monkeypatch.setattr(httpclient, "ALLOW_PRIVATE", True)
    submit(admin_app, 302, **settings)


def test_an_empty_key_is_refused_once_enabled(registry):
    with pytest.raises(PluginError), app_request(registry) as req:
        set_enabled(req, "wechatpay", True)  # nothing configured yet
    set_plugin(registry, "wechatpay", enabled=True, **testing.settings())
    for name in ("apiv3_key", "merchant_private_key", "mchid", "appid", "merchant_serial_no"):
        with pytest.raises(SettingError) as err, app_request(registry) as req:
            configure(req, "wechatpay", {name: ""})
        assert err.value.field_name == name
    assert stored(registry)["apiv3_key"] == testing.APIV3_KEY


def test_the_connection_test_passes_against_wechat_pay(fake):
    message = WechatPayGateway(testing.settings(api_url=fake.url)).test_connection(None)
    assert "accepted the merchant signature" in message and "D7CE59D1F522D701" in message
    assert [c[:2] for c in fake.calls] == [("GET", c[1]) for c in fake.calls]
    assert fake.calls[0][1].startswith("/v3/pay/transactions/out-trade-no/KMTEST") and fake.calls[0][2] == 404
    only_public_key = testing.settings(api_url=fake.url, platform_certificates="")
    fake.calls.clear()
    assert "public key" in WechatPayGateway(only_public_key).test_connection(None)
    assert len(fake.calls) == 1


@pytest.mark.parametrize("setup,reason", [
    (lambda fake: setattr(fake, "merchant_public_key", testing.stranger_key().public_key()), "401"),
    (lambda fake: setattr(fake, "mchid", "1999999999"), "401"),
    (lambda fake: setattr(fake, "apiv3_key", "AnotherAPIv3KeyOf32BytesForTest!"), "APIv3 key"),
    (lambda fake: setattr(fake, "fault", "500"), "SYSTEM_ERROR"),
    (lambda fake: setattr(fake, "fault", "badsig"), "did not verify"),
])
def test_the_connection_test_says_what_is_wrong(fake, setup, reason):
    setup(fake)
    with pytest.raises(GatewayError, match=reason) as err:
        WechatPayGateway(testing.settings(api_url=fake.url)).test_connection(None)
    assert testing.APIV3_KEY not in str(err.value)


def test_the_connection_test_refuses_incomplete_settings():
    with pytest.raises(GatewayError, match="apiv3_key"):
        WechatPayGateway({"mchid": "1230000109"}).test_connection(None)


def test_the_admin_button_runs_the_connection_test(admin_app, registry, fake):
    set_plugin(registry, "wechatpay", **testing.settings(api_url=fake.url))
    page = admin_app.get(PAGE)
    page.forms["test-connection"].submit(status=302)
    assert "Connection test passed" in admin_app.get(PAGE).text
    fake.merchant_public_key = testing.stranger_key().public_key()
    admin_app.get(PAGE).forms["test-connection"].submit(status=302)
    assert "Connection test failed" in admin_app.get(PAGE).text
