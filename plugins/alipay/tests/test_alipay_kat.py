"""Known answers of the Alipay RSA2 protocol (PROTOCOLS.md appendix K, K4
and K5), computed outside this plugin with the fzlee SDK's public test keys
and cross-checked with ``openssl dgst -sha256 -sign``; and what must not
verify: a tampered field, the wrong key, a signature changed in case."""
import base64
import datetime as dt
import json
import os
from decimal import Decimal

import pytest

from kameng.payments import NotificationRejected
from kameng_alipay import protocol
from kameng_alipay.gateway import AlipayGateway

HERE = os.path.join(os.path.dirname(__file__), "vectors")
with open(os.path.join(HERE, "kat.json"), encoding="utf-8") as _fh:
    KAT = json.load(_fh)
REQUEST, NOTIFY = KAT["alipay_request_rsa2"], KAT["alipay_notify_rsa2"]
#: the notify's own notify_time, so the freshness window holds
NOTIFY_NOW = dt.datetime(2024, 1, 1, 4, 0, 20, tzinfo=dt.timezone.utc)


def pem(name):
    with open(os.path.join(HERE, f"alipay-sdk-test-{name}.pem"), encoding="ascii") as fh:
        return fh.read()


APP_PRIVATE, APP_PUBLIC = pem("app_private_key"), pem("app_public_key")
ALI_PRIVATE, ALI_PUBLIC = pem("ali_private_key"), pem("ali_public_key")

REQUEST_PARAMS = {"app_id": "2016080000000000", "method": "alipay.trade.precreate", "charset": "utf-8",
                  "sign_type": "RSA2", "timestamp": "2024-01-01 12:00:00", "version": "1.0",
                  "notify_url": "https://shop.example/pay/alipay/notify",
                  "biz_content": {"out_trade_no": "T20240101000001", "total_amount": "88.88",
                                  "subject": "Game Card 100"}}


def notify_form() -> dict:
    fields = dict(pair.split("=", 1) for pair in NOTIFY["string"].split("&"))
    return {**fields, "sign_type": "RSA2", "sign": NOTIFY["sign"]}


def gateway(**settings) -> AlipayGateway:
    return AlipayGateway({"app_id": "2016080000000000", "app_private_key": APP_PRIVATE,
                          "alipay_public_key": ALI_PUBLIC, "seller_id": "2088102119685838", **settings})


# -- K4: the request signature ------------------------------------------------------------


def test_k4_request_string_and_signature():
    assert protocol.request_sign_content(REQUEST_PARAMS) == REQUEST["string"]
    assert protocol.rsa2_sign(REQUEST["string"], protocol.load_private_key(APP_PRIVATE)) == REQUEST["sign"]


def test_k4_build_request_signs_the_same():
    when = dt.datetime(2024, 1, 1, 4, 0, 0, tzinfo=dt.timezone.utc)  # 12:00:00 in GMT+8
    biz = REQUEST_PARAMS["biz_content"]
    params = protocol.build_request("2016080000000000", "alipay.trade.precreate", biz,
                                    protocol.load_private_key(APP_PRIVATE),
                                    notify_url="https://shop.example/pay/alipay/notify", now=when)
    assert params["timestamp"] == "2024-01-01 12:00:00"
    assert params["biz_content"] == ('{"out_trade_no":"T20240101000001","total_amount":"88.88",'
                                     '"subject":"Game Card 100"}')
    assert params["sign"] == REQUEST["sign"]


def test_k4_verifies_with_the_app_public_key_only():
    app_public = protocol.load_public_key(APP_PUBLIC)
    assert protocol.rsa2_verify(REQUEST["string"], REQUEST["sign"], app_public)
    assert not protocol.rsa2_verify(REQUEST["string"].replace("88.88", "88.89"), REQUEST["sign"], app_public)
    assert not protocol.rsa2_verify(REQUEST["string"], REQUEST["sign"], protocol.load_public_key(ALI_PUBLIC))


def test_keys_load_as_pem_and_as_bare_base64():
    """Alipay's key tool and backend show keys as one base64 line without PEM armour."""
    bare_private = "".join(line for line in APP_PRIVATE.splitlines() if not line.startswith("-----"))
    bare_public = "".join(line for line in ALI_PUBLIC.splitlines() if not line.startswith("-----"))
    assert protocol.rsa2_sign(REQUEST["string"], protocol.load_private_key(bare_private)) == REQUEST["sign"]
    assert protocol.rsa2_verify(NOTIFY["string"], NOTIFY["sign"], protocol.load_public_key(bare_public))


@pytest.mark.parametrize("text", ["", "not a key",
                                  "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
                                  base64.b64encode(b"x" * 200).decode()])
def test_bad_keys_are_refused(text):
    with pytest.raises(protocol.ProtocolError):
        protocol.load_private_key(text)
    with pytest.raises(protocol.ProtocolError):
        protocol.load_public_key(text)


# -- K5: the notify signature --------------------------------------------------------------


def test_k5_notify_string_and_signature():
    form = notify_form()
    assert protocol.notify_sign_content(form) == NOTIFY["string"]
    assert protocol.rsa2_verify(NOTIFY["string"], NOTIFY["sign"], protocol.load_public_key(ALI_PUBLIC))
    # PKCS#1 v1.5 is deterministic: the fixture's Alipay private key gives the same signature
    assert protocol.rsa2_sign(NOTIFY["string"], protocol.load_private_key(ALI_PRIVATE)) == NOTIFY["sign"]


def test_k5_gateway_accepts_the_known_notify():
    n = gateway().verify(notify_form(), now=NOTIFY_NOW)
    assert n.attempt_no == "T20240101000001" and n.provider_trade_no == "2024010122001400000000000001"
    assert n.amount == Decimal("88.88") and n.currency == "CNY" and n.status == "paid"
    assert n.merchant_id == "2088102119685838"


@pytest.mark.parametrize("field,value", [
    ("total_amount", "88.89"), ("out_trade_no", "T20240101000002"), ("trade_status", "TRADE_FINISHED"),
    ("seller_id", "2088102119685839"), ("subject", "Game Card 1000"), ("extra_field", "1"),
])
def test_k5_tampered_field_fails(field, value):
    with pytest.raises(NotificationRejected, match="bad signature"):
        gateway().verify({**notify_form(), field: value}, now=NOTIFY_NOW)


def test_k5_wrong_key_fails():
    """Verifying with the app's own public key (the usual set-up mistake) fails."""
    with pytest.raises(NotificationRejected, match="bad signature"):
        gateway(alipay_public_key=APP_PUBLIC).verify(notify_form(), now=NOTIFY_NOW)
    resigned = protocol.rsa2_sign(NOTIFY["string"], protocol.load_private_key(APP_PRIVATE))
    with pytest.raises(NotificationRejected, match="bad signature"):
        gateway().verify({**notify_form(), "sign": resigned}, now=NOTIFY_NOW)


@pytest.mark.parametrize("sign", [
    NOTIFY["sign"].swapcase(),  # base64 is case-sensitive
    NOTIFY["sign"].lower(),
    NOTIFY["sign"][:-4] + "AAA=",
    NOTIFY["sign"].replace("+", "-").replace("/", "_"),  # URL-safe alphabet
    NOTIFY["sign"] + "\n",
    " " + NOTIFY["sign"],
])
def test_k5_altered_signature_fails(sign):
    with pytest.raises(NotificationRejected, match="bad signature"):
        gateway().verify({**notify_form(), "sign": sign}, now=NOTIFY_NOW)


@pytest.mark.parametrize("sign_type,reason", [("RSA", "sign_type"), ("rsa2", "sign_type"), ("", "sign_type"),
                                              (None, "sign_type")])
def test_k5_sign_type_must_be_rsa2(sign_type, reason):
    form = notify_form()
    if sign_type is None:
        del form["sign_type"]
    else:
        form["sign_type"] = sign_type
    with pytest.raises(NotificationRejected, match=reason):
        gateway().verify(form, now=NOTIFY_NOW)


def test_k5_missing_or_empty_sign():
    form = notify_form()
    for value in ("", None):
        if value is None:
            del form["sign"]
        else:
            form["sign"] = value
        with pytest.raises(NotificationRejected, match="missing sign"):
            gateway().verify(form, now=NOTIFY_NOW)


def test_k5_empty_fields_take_no_part_but_needed_ones_are_required():
    """The official SDKs skip empty values: an empty extra field still
    verifies; an empty needed field is refused after verification."""
    n = gateway().verify({**notify_form(), "passback_params": ""}, now=NOTIFY_NOW)
    assert n.status == "paid"


def test_k5_other_app_id_is_refused():
    with pytest.raises(NotificationRejected, match="another app_id"):
        gateway(app_id="2016080000000001").verify(notify_form(), now=NOTIFY_NOW)


@pytest.mark.parametrize("now,ok", [
    (NOTIFY_NOW, True),
    (dt.datetime(2024, 1, 1, 3, 55, 12, tzinfo=dt.timezone.utc), True),  # our clock 299 s behind
    (dt.datetime(2024, 1, 1, 3, 55, 10, tzinfo=dt.timezone.utc), False),  # 301 s: sent "in the future"
    (dt.datetime(2024, 1, 2, 6, 0, 10, tzinfo=dt.timezone.utc), True),  # a retry 26 h later, just
    (dt.datetime(2024, 1, 2, 6, 0, 12, tzinfo=dt.timezone.utc), False),  # older than any Alipay retry
])
def test_k5_notify_time_window(now, ok):
    if ok:
        assert gateway().verify(notify_form(), now=now).status == "paid"
    else:
        with pytest.raises(NotificationRejected, match="notify_time"):
            gateway().verify(notify_form(), now=now)


# -- sync responses: the raw text is what is signed ----------------------------------------------


def signed_response(method: str, inner: str, key: str = ALI_PRIVATE) -> str:
    sign = protocol.rsa2_sign(inner, protocol.load_private_key(key))
    return f'{{"{protocol.response_key(method)}":{inner},"sign":"{sign}"}}'


INNER = '{"code":"10000","msg":"Success","out_trade_no":"T1","qr_code":"https://qr.alipay.com/bax0{1}"}'


def test_response_verifies_over_the_raw_substring():
    text = signed_response("alipay.trade.precreate", INNER)
    data, verified = protocol.parse_response(text, "alipay.trade.precreate", protocol.load_public_key(ALI_PUBLIC))
    assert verified and data["qr_code"] == "https://qr.alipay.com/bax0{1}"
    # the sign member may come first and whitespace may surround members
    sign = json.loads(text)["sign"]
    text2 = f'{{ "sign" : "{sign}" ,\n "alipay_trade_precreate_response" :{INNER} }}'
    assert protocol.parse_response(text2, "alipay.trade.precreate", protocol.load_public_key(ALI_PUBLIC))[1]


@pytest.mark.parametrize("change", [
    lambda t: t.replace('"code":"10000","msg"', '"code": "10000", "msg"'),  # whitespace
    lambda t: t.replace('"code":"10000","msg":"Success"', '"msg":"Success","code":"10000"'),  # key order
    lambda t: t.replace("T1", "T2"),
])
def test_response_reserialised_or_tampered_fails(change):
    text = change(signed_response("alipay.trade.precreate", INNER))
    with pytest.raises(protocol.ProtocolError, match="does not verify"):
        protocol.parse_response(text, "alipay.trade.precreate", protocol.load_public_key(ALI_PUBLIC))


def test_response_signed_with_another_key_fails():
    text = signed_response("alipay.trade.precreate", INNER, key=APP_PRIVATE)
    with pytest.raises(protocol.ProtocolError, match="does not verify"):
        protocol.parse_response(text, "alipay.trade.precreate", protocol.load_public_key(ALI_PUBLIC))


def test_response_for_another_method_or_malformed():
    public = protocol.load_public_key(ALI_PUBLIC)
    text = signed_response("alipay.trade.query", INNER)
    with pytest.raises(protocol.ProtocolError, match="no response object"):
        protocol.parse_response(text, "alipay.trade.precreate", public)
    twice = '{"alipay_trade_precreate_response":{},"alipay_trade_precreate_response":{}}'
    for bad in ("", "[]", "<html>", '{"a":1} x', twice):
        with pytest.raises(protocol.ProtocolError):
            protocol.parse_response(bad, "alipay.trade.precreate", public)


def test_response_without_sign_is_unverified():
    text = '{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}}'
    data, verified = protocol.parse_response(text, "alipay.trade.query", protocol.load_public_key(ALI_PUBLIC))
    assert not verified and data["sub_code"] == "isv.invalid-app-id"


def test_braces_and_quotes_inside_strings_do_not_cut_the_substring():
    inner = '{"code":"10000","msg":"Success","subject":"a } \\" { b","out_trade_no":"T1"}'
    text = signed_response("alipay.trade.query", inner)
    data, verified = protocol.parse_response(text, "alipay.trade.query", protocol.load_public_key(ALI_PUBLIC))
    assert verified and data["subject"] == 'a } " { b'
