"""Known-answer tests: PROTOCOLS.md A1.3 (three MD5 vectors, the key printed in
the official V1 doc) and K3 (V2 RSA with the fzlee/alipay test key), checked
against the vector values in ``vectors/kat_epay.json``; plus the negative
cases (a tampered field, the wrong key, uppercase hex, a flipped signature)."""
from __future__ import annotations

import json
import pathlib
from decimal import Decimal

import pytest

from kameng.payments import NotificationRejected
from kameng_epay import config, notify, protocol, provider

HERE = pathlib.Path(__file__).parent / "vectors"
KAT = json.loads((HERE / "kat_epay.json").read_text("utf-8"))
V1 = KAT["epay_v1_md5"]
V2 = KAT["epay_v2_rsa"]
AMP = KAT["epay_v1_md5_amp_key"]
KEY = V1["key"]
SUBMIT_STRING = ("money=1.00&name=VIP会员&notify_url=http://www.pay.com/notify_url.php&out_trade_no=20160806151343349"
                 "&pid=1001&return_url=http://www.pay.com/return_url.php&type=alipay")


def pem(name):
    return (HERE / name).read_text("ascii")


APP_PRIVATE = protocol.load_private_key(pem("alipay-sdk-test-app_private_key.pem"))
APP_PUBLIC = protocol.load_public_key(pem("alipay-sdk-test-app_public_key.pem"))
ALI_PUBLIC = protocol.load_public_key(pem("alipay-sdk-test-ali_public_key.pem"))


# -- A1.3: V1 MD5 ---------------------------------------------------------------------------


def test_submit_sign_string_leaves_out_sign_type_and_the_empty_param():
    assert protocol.sign_content(V1["submit"]["params"]) == SUBMIT_STRING
    assert SUBMIT_STRING == AMP["submit_string"]


def test_submit_sign_known_answer():
    assert protocol.md5_sign(V1["submit"]["params"], KEY) == V1["submit"]["sign"] == "427724b6656aa612cfdbe7a2262036a3"


def test_notify_money_1_and_1_00_sign_differently():
    params = dict(V1["notify_money_1"]["params"])
    assert protocol.md5_sign(params, KEY) == V1["notify_money_1"]["sign"] == "88efc7e7a064a2921e200a02847b7a09"
    params["money"] = "1.00"
    assert protocol.md5_sign(params, KEY) == V1["notify_money_1.00"]["sign"] == "42729bbb004977e3ac0f0a2a639558a0"


def test_the_request_builder_signs_the_submit_vector():
    cfg = config.Config(api_url="https://pay.example/", pid="1001", version="1", key=KEY)
    fields = {k: v for k, v in V1["submit"]["params"].items() if k != "sign_type"}
    signed = provider.v1_sign(cfg, fields)
    assert (signed["sign"], signed["sign_type"]) == (V1["submit"]["sign"], "MD5")


def test_amp_key_variant_known_answers():
    assert protocol.md5_sign(V1["submit"]["params"], KEY, "amp_key") == AMP["submit_sign"]
    assert protocol.md5_sign(V1["notify_money_1"]["params"], KEY, "amp_key") == AMP["notify_money_1_sign"]
    assert AMP["submit_sign"] != V1["submit"]["sign"]


@pytest.mark.parametrize("sign", [V1["notify_money_1"]["sign"], V1["notify_money_1"]["sign"].upper()])
def test_md5_verify_accepts_the_vector_in_either_case(sign):
    assert protocol.md5_verify(V1["notify_money_1"]["params"], sign, KEY)


@pytest.mark.parametrize("change", [{"money": "1.00"}, {"money": "2"}, {"out_trade_no": "20160806151343350"},
                                    {"trade_status": "TRADE_CLOSED"}, {"pid": "1002"}, {"extra": "x"}])
def test_md5_verify_refuses_a_tampered_field(change):
    params = {**V1["notify_money_1"]["params"], **change}
    assert not protocol.md5_verify(params, V1["notify_money_1"]["sign"], KEY)


@pytest.mark.parametrize("key,mode", [("89unJUB8HZ54Hj7x4nUj56HN4nUzUJ8I", "plain"), ("", "plain"), (KEY, "amp_key")])
def test_md5_verify_refuses_the_wrong_key_or_variant(key, mode):
    assert not protocol.md5_verify(V1["notify_money_1"]["params"], V1["notify_money_1"]["sign"], key, mode)


@pytest.mark.parametrize("sign", ["", "88efc7e7a064a2921e200a02847b7a0", "88efc7e7a064a2921e200a02847b7a09 ",
                                  "zzefc7e7a064a2921e200a02847b7a09", None, True, 123,
                                  ["88efc7e7a064a2921e200a02847b7a09"]])
def test_md5_verify_refuses_malformed_signs_before_comparing(sign):
    assert not protocol.md5_verify(V1["notify_money_1"]["params"], sign, KEY)


def test_whitespace_only_values_are_empty_like_php_trim():
    assert protocol.sign_content({"a": "1", "b": " \t", "c": "", "sign": "x", "sign_type": "MD5"}) == "a=1"


def test_the_kat_notify_verifies_through_the_gateway_path():
    cfg = config.Config(api_url="https://pay.example/", pid="1001", version="1", key=KEY)
    fields = {**V1["notify_money_1"]["params"], "sign": V1["notify_money_1"]["sign"]}
    n = notify.verify(fields, cfg, now=0)
    assert (n.attempt_no, n.provider_trade_no, n.amount, n.currency, n.status, n.merchant_id) == (
        "20160806151343349", "2016080622555342651", Decimal("1"), "CNY", "paid", "1001")
    with pytest.raises(NotificationRejected, match="bad signature"):
        notify.verify({**fields, "money": "1.00"}, cfg, now=0)


# -- K3: V2 SHA256withRSA -------------------------------------------------------------------

V2_PARAMS = {"pid": "1001", "method": "web", "device": "pc", "type": "alipay", "out_trade_no": "20160806151343349",
             "notify_url": "http://www.pay.com/notify_url.php", "return_url": "http://www.pay.com/return_url.php",
             "name": "VIP会员", "money": "1.00", "clientip": "192.168.1.100", "timestamp": "1721206072"}


def test_v2_sign_string_known_answer():
    assert protocol.sign_content({**V2_PARAMS, "sign_type": "RSA"}) == V2["string"]


def test_v2_signature_known_answer():
    assert protocol.rsa_sign_content(V2["string"], APP_PRIVATE) == V2["sign"]
    assert protocol.rsa_sign(V2_PARAMS, APP_PRIVATE) == V2["sign"]


def test_the_v2_request_builder_signs_the_vector():
    cfg = config.Config(api_url="https://pay.example/", pid="1001", version="2", key="", merchant_key=APP_PRIVATE,
                        platform_key=ALI_PUBLIC)
    fields = {k: v for k, v in V2_PARAMS.items() if k not in ("pid", "timestamp")}
    signed = provider.v2_sign(cfg, fields, now=1721206072)
    assert (signed["sign"], signed["sign_type"], signed["timestamp"]) == (V2["sign"], "RSA", "1721206072")


def test_v2_verify_with_the_public_key():
    assert protocol.rsa_verify_content(V2["string"], V2["sign"], APP_PUBLIC)
    assert protocol.rsa_verify({**V2_PARAMS, "sign": V2["sign"], "sign_type": "RSA"}, V2["sign"], APP_PUBLIC)


@pytest.mark.parametrize("change", [{"money": "1"}, {"timestamp": "1721206073"}, {"clientip": "192.168.1.101"},
                                    {"extra": "x"}])
def test_v2_verify_refuses_a_tampered_field(change):
    assert not protocol.rsa_verify({**V2_PARAMS, **change}, V2["sign"], APP_PUBLIC)


def test_v2_verify_refuses_the_wrong_key():
    assert not protocol.rsa_verify_content(V2["string"], V2["sign"], ALI_PUBLIC)


def test_v2_verify_refuses_a_flipped_or_malformed_signature():
    flipped = ("A" if V2["sign"][10] != "A" else "B").join((V2["sign"][:10], V2["sign"][11:]))
    for sign in (flipped, "", V2["sign"][:-4], V2["sign"] + "AAAA", "not base64 at all", None, True, 1):
        assert not protocol.rsa_verify_content(V2["string"], sign, APP_PUBLIC)


def test_keys_load_from_pem_and_from_bare_base64():
    body = "".join(line for line in pem("alipay-sdk-test-app_private_key.pem").splitlines() if "-----" not in line)
    assert protocol.rsa_sign_content(V2["string"], protocol.load_private_key(body)) == V2["sign"]
    pub = "".join(line for line in pem("alipay-sdk-test-app_public_key.pem").splitlines() if "-----" not in line)
    assert protocol.rsa_verify_content(V2["string"], V2["sign"], protocol.load_public_key(pub))


@pytest.mark.parametrize("text", ["", "hello", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
                                  pem("alipay-sdk-test-app_public_key.pem")])
def test_a_bad_private_key_is_refused(text):
    with pytest.raises(protocol.BadKey):
        protocol.load_private_key(text)


def test_a_private_key_is_not_a_public_key():
    with pytest.raises(protocol.BadKey):
        protocol.load_public_key(pem("alipay-sdk-test-app_private_key.pem"))
