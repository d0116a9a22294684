"""The epusdt signature against known answers: the wiki's official vector
(K1), and create/callback vectors computed for kameng and cross-checked
outside Python with coreutils (the commands are below; each prints the
signature named above it). Plus the negative cases of SECURITY.md B3 #1–4,
8, 16–18, 31 and 32.
"""
from __future__ import annotations

import hashlib
import json
import os
from decimal import Decimal

import pytest

from kameng_usdt import protocol
from kameng_usdt.protocol import Number, ProtocolError

# Cross-check outside Python: paste into a shell; each prints the signature above it.
#
# K1 official -> 1cd4b52df5587cfb1968b0c0c6e156cd
#   printf '%s' 'amount=42&notify_url=http://example.com/notify&order_id=20220201030210321&redirect_url=h' \
#       'ttp://example.com/redirectepusdt_password_xasddawqe' | md5sum
# create -> 6f3469298513204963e577046e21bad4
#   printf '%s' 'amount=28.8&notify_url=https://shop.example/pay/usdt/notify&order_id=P251126120000123456' \
#       '789012345678&redirect_url=https://shop.example/pay/return/P25112612000012345678901234567' \
#       '8epusdt_password_xasddawqe' | md5sum
# wiki_example_paid -> a9a2530ea673dbf920e50ff6a9ce4789
#   printf '%s' 'actual_amount=15.625&amount=100&block_transaction_id=123333333321232132131&order_id=2022' \
#       '123321312321321&status=2&token=TNEns8t9jbWENbStkQdVQtHMGpbsYsQjZK&trade_id=2022032516482' \
#       '08648961728epusdt_password_xasddawqe' | md5sum
# bepusdt_paid_amount_28_80 -> 52b361279a2ff4e1791ede466d6a812b
#   printf '%s' 'actual_amount=4.25&amount=28.8&block_transaction_id=12ef6267b42e43959795cf31808d0cc72b3d' \
#       '0a48953ed19c61d4b6665a341d10&order_id=P251126120000123456789012345678&status=2&token=TR7' \
#       'NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t&trade_id=b3d2477c-d945-41da-96b7-f925bbd1b415epusdt_pass' \
#       'word_xasddawqe' | md5sum
# bepusdt_paid_amount_28_80 as str(float) would sign it -> 1c05aadc61a0123b9a65e9c8745252cf
#   printf '%s' 'actual_amount=4.25&amount=28.80&block_transaction_id=12ef6267b42e43959795cf31808d0cc72b3' \
#       'd0a48953ed19c61d4b6665a341d10&order_id=P251126120000123456789012345678&status=2&token=TR' \
#       '7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t&trade_id=b3d2477c-d945-41da-96b7-f925bbd1b415epusdt_pas' \
#       'sword_xasddawqe' | md5sum
# epusdt_paid_amount_10_0 -> b8d2c3df912e0fe030910baa6810a7b2
#   printf '%s' 'actual_amount=1.3889&amount=10&block_transaction_id=4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d' \
#       '6c5b4a3f2e1d0c9b8a7f6e5d4c3b&order_id=P251126120000987654321098765432&status=2&token=TNE' \
#       'ns8t9jbWENbStkQdVQtHMGpbsYsQjZK&trade_id=202511261200009876543210epusdt_password_xasddaw' \
#       'qe' | md5sum
# epusdt_paid_amount_10_0 as str(float) would sign it -> 8d5caadc77d82c8b361314535954e6fc
#   printf '%s' 'actual_amount=1.3889&amount=10.0&block_transaction_id=4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e' \
#       '7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b&order_id=P251126120000987654321098765432&status=2&token=T' \
#       'NEns8t9jbWENbStkQdVQtHMGpbsYsQjZK&trade_id=202511261200009876543210epusdt_password_xasdd' \
#       'awqe' | md5sum
# bepusdt_waiting_empty_hash -> 07ad729e9c0eb5046428f2b7299c2281
#   printf '%s' 'actual_amount=4.25&amount=28.8&order_id=P251126120000123456789012345678&status=1&token=T' \
#       'R7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t&trade_id=b3d2477c-d945-41da-96b7-f925bbd1b415epusdt_pa' \
#       'ssword_xasddawqe' | md5sum

with open(os.path.join(os.path.dirname(__file__), "vectors", "kat.json"), encoding="utf-8") as _fh:
    VECTORS = json.load(_fh)
K1 = VECTORS["epusdt_official"]
CREATE = VECTORS["create"]
CALLBACKS = {c["name"]: c for c in VECTORS["callbacks"]}
TOKEN = K1["token"]


def body_of(name: str) -> bytes:
    return CALLBACKS[name]["body"].encode()


def fields_of(name: str) -> dict:
    return protocol.loads(body_of(name))


# -- K1: the official vector --------------------------------------------------------


@pytest.mark.parametrize("amount", [Number("42"), Number("42.0"), Number("42.00"), "42"])
def test_official_vector(amount):
    params = {**K1["params"], "amount": amount}
    assert protocol.sign_string(params) == K1["string"]
    assert protocol.sign(params, TOKEN) == K1["signature"] == "1cd4b52df5587cfb1968b0c0c6e156cd"


def test_official_vector_negative():
    assert protocol.sign({**K1["params"], "order_id": "20220201030210322"}, TOKEN) != K1["signature"]
    assert protocol.sign(K1["params"], TOKEN + "x") != K1["signature"]
    assert protocol.sign({**K1["params"], "amount": "42.0"}, TOKEN) != K1["signature"]  # a string is signed as sent


def test_empty_and_null_values_are_left_out_and_signature_is_never_signed():
    params = {**K1["params"], "name": "", "address": None, "signature": "whatever"}
    assert protocol.sign_string(params) == K1["string"]


def test_extra_fields_are_signed():
    params = {**K1["params"], "trade_type": "usdt.trc20"}
    assert protocol.sign_string(params) == K1["string"] + "&trade_type=usdt.trc20"


# -- Go's number formatting (B3 #32) ------------------------------------------------------------


@pytest.mark.parametrize("token,go", [
    ("10.0", "10"), ("28.80", "28.8"), ("42", "42"), ("100", "100"), ("0.1", "0.1"), ("15.625", "15.625"),
    ("1.3889", "1.3889"), ("1e2", "100"), ("1E21", "1000000000000000000000"), ("1e-7", "0.0000001"),
    ("0.30000000000000004", "0.30000000000000004"), ("12345678.9", "12345678.9"), ("-0.0", "-0"), ("0", "0"),
])
def test_numbers_render_like_strconv_formatfloat(token, go):
    assert protocol.go_float(token) == go


@pytest.mark.parametrize("name", ["bepusdt_paid_amount_28_80", "epusdt_paid_amount_10_0"])
def test_python_float_formatting_would_fail(name):
    """The regression B3 #32 names: ``str(float)`` writes ``10.0``/``28.8``
    where Go writes ``10``/``28.8``; a verifier built on it refuses real
    callbacks (or, built on the raw token, ``28.80``)."""
    vector = CALLBACKS[name]
    fields = fields_of(name)
    naive = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature" and fields[k] != "")
    assert naive == vector["naive_string"]
    assert hashlib.md5((naive + TOKEN).encode()).hexdigest() == vector["naive_signature"] != vector["signature"]
    py_float = str(float(json.loads(vector["body"])["amount"]))
    assert py_float in ("10.0", "28.8")
    assert protocol.sign_string(fields) == vector["string"]


# -- callbacks ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_callback_vectors_verify(name):
    vector = CALLBACKS[name]
    fields = fields_of(name)
    assert protocol.sign_string(fields) == vector["string"]
    assert protocol.sign(fields, TOKEN) == vector["signature"]
    cb = protocol.verify_callback(fields, TOKEN)
    assert cb.status == vector["status"]
    assert cb.amount == Decimal(vector["amount"])
    assert cb.order_id == json.loads(vector["body"])["order_id"]
    assert cb.trade_id == json.loads(vector["body"])["trade_id"]
    assert cb.raw["signature"] == vector["signature"]


def test_callback_statuses():
    assert protocol.STATUSES == {"1": "pending", "2": "paid", "3": "closed"}


def resign(fields: dict, token: str = TOKEN) -> dict:
    """``fields`` signed again; values the signer cannot write (a boolean, an
    object) are signed the way BEpusdt's ``%v`` would, so only the type check
    can refuse them."""
    fields = dict(fields)
    writable = {k: (v if v is None or isinstance(v, str) else json.dumps(v)) for k, v in fields.items()}
    fields["signature"] = protocol.sign(writable, token)
    return fields


def test_tampered_field_is_refused():
    fields = fields_of("bepusdt_paid_amount_28_80")
    fields["amount"] = Number("28.81")
    with pytest.raises(ProtocolError, match="bad signature"):
        protocol.verify_callback(fields, TOKEN)


def test_wrong_key_is_refused():
    fields = fields_of("wiki_example_paid")
    with pytest.raises(ProtocolError, match="bad signature"):
        protocol.verify_callback(fields, "another-token")
    with pytest.raises(ProtocolError, match="bad signature"):
        protocol.verify_callback(resign(fields, "another-token"), TOKEN)


def test_unsigned_extra_field_is_refused_and_signed_one_accepted():
    fields = fields_of("wiki_example_paid")
    with pytest.raises(ProtocolError, match="bad signature"):
        protocol.verify_callback({**fields, "fiat": "CNY"}, TOKEN)
    assert protocol.verify_callback(resign({**fields, "fiat": "CNY", "rate": Number("7.2")}), TOKEN).status == "paid"


@pytest.mark.parametrize("value,reason", [
    (None, "missing signature"), ("", "missing signature"),
    (True, "not a string or a number"), (["a" * 32, "b" * 32], "not a string or a number"),
    ({"x": 1}, "not a string or a number"), (Number("12345678901234567890123456789012"), "malformed signature"),
])
def test_signature_types(value, reason):
    """B3 #1–2: a missing, empty, boolean, array or number signature is refused
    before any comparison (PHP's loose ``!=`` accepted ``true``)."""
    fields = fields_of("wiki_example_paid")
    if value is None:
        del fields["signature"]
    else:
        fields["signature"] = value
    with pytest.raises(ProtocolError, match=reason):
        protocol.verify_callback(fields, TOKEN)


def test_uppercase_signature_is_refused():
    """B3 #3: the servers always send lowercase hex; the policy here is strict."""
    fields = fields_of("wiki_example_paid")
    fields["signature"] = fields["signature"].upper()
    with pytest.raises(ProtocolError, match="malformed signature"):
        protocol.verify_callback(fields, TOKEN)


def test_json_signature_types_from_the_wire():
    for raw in ('true', '1', '["a9a2530ea673dbf920e50ff6a9ce4789"]', 'null'):
        body = CALLBACKS["wiki_example_paid"]["body"].replace('"a9a2530ea673dbf920e50ff6a9ce4789"', raw)
        with pytest.raises(ProtocolError):
            protocol.verify_callback(protocol.loads(body.encode()), TOKEN)


def test_duplicate_keys_are_refused():
    """B3 #18: ``amount`` twice; Go would keep the last, so would ``dict``."""
    body = body_of("wiki_example_paid")[:-1] + b',"amount":1}'
    with pytest.raises(ProtocolError, match="twice"):
        protocol.loads(body)
    with pytest.raises(ProtocolError, match="twice"):
        protocol.loads(b'{"a":{"b":1,"b":2}}')


@pytest.mark.parametrize("body", [b'{"amount":NaN}', b'{"amount":Infinity}', b"\xff\xfe{}", b"not json", b"[" * 5000,
                                  b"{" + b" " * protocol.MAX_BODY + b"}"])
def test_bad_bodies(body):
    with pytest.raises(ProtocolError):
        protocol.loads(body)


def test_lone_surrogate_is_refused():
    fields = protocol.loads(b'{"order_id":"\\ud800","signature":"' + b"0" * 32 + b'"}')
    with pytest.raises(ProtocolError, match="not valid text"):
        protocol.verify_callback(fields, TOKEN)


@pytest.mark.parametrize("amount", [Number("1e2"), Number("1E0"), Number("-1"), Number("1.001"), Number("0"),
                                    Number("0.00"), "1e2", " 1.00", "0x10", "NaN", "1,00", "+1", "01.00",
                                    Number("999999999999999.99")])
def test_malformed_amounts_are_refused_even_when_signed(amount):
    """B3 #8."""
    fields = resign({**fields_of("wiki_example_paid"), "amount": amount})
    with pytest.raises(ProtocolError, match="malformed amount"):
        protocol.verify_callback(fields, TOKEN)


@pytest.mark.parametrize("amount,expected", [(Number("100"), "100"), (Number("100.0"), "100"),
                                             (Number("100.00"), "100"), ("100.00", "100.00"), ("100", "100")])
def test_amount_forms_that_pay(amount, expected):
    cb = protocol.verify_callback(resign({**fields_of("wiki_example_paid"), "amount": amount}), TOKEN)
    assert cb.amount == Decimal(expected) == 100


@pytest.mark.parametrize("change,reason", [
    ({"status": Number("4")}, "unknown status"), ({"status": "paid"}, "unknown status"),
    ({"order_id": ""}, "missing field order_id"), ({"order_id": "a&b=c"}, "malformed order_id"),
    ({"order_id": Number("123")}, "order_id is not a string"), ({"trade_id": ""}, "missing field trade_id"),
    ({"amount": ""}, "missing field amount"), ({"block_transaction_id": ""}, "missing field block_transaction_id"),
    ({"token": Number("1")}, "token is not a string"), ({"extra": True}, "not a string or a number"),
    ({"a&b": "x"}, "not a plain name"), ({"nested": {"x": "y"}}, "not a string or a number"),
])
def test_signed_but_wrong_fields(change, reason):
    fields = resign({**fields_of("wiki_example_paid"), **change})
    with pytest.raises(ProtocolError, match=reason):
        protocol.verify_callback(fields, TOKEN)


def test_waiting_and_expired_callbacks_are_reported_not_paid():
    """B3 #31: BEpusdt sends status 1 every minute and 3 on expiry, validly signed."""
    assert protocol.verify_callback(fields_of("bepusdt_waiting_empty_hash"), TOKEN).status == "pending"
    expired = resign({**fields_of("bepusdt_waiting_empty_hash"), "status": Number("3")})
    assert protocol.verify_callback(expired, TOKEN).status == "closed"


def test_no_token_configured_refuses_everything():
    with pytest.raises(ProtocolError, match="no API token"):
        protocol.verify_callback(fields_of("wiki_example_paid"), "")


# -- the create request ---------------------------------------------------------------------


def test_create_request_vector():
    body = protocol.create_request(CREATE["order_id"], Decimal(CREATE["amount"]), CREATE["notify_url"],
                                   CREATE["redirect_url"], CREATE["token"])
    assert body == CREATE["body"].encode()
    sent = protocol.loads(body)
    assert protocol.sign_string(sent) == CREATE["string"]
    assert sent["signature"] == CREATE["signature"]


@pytest.mark.parametrize("amount,token", [("10.00", "10"), ("28.80", "28.8"), ("0.01", "0.01"), ("1234.50", "1234.5")])
def test_create_amounts_are_written_the_go_way(amount, token):
    assert protocol.amount_number(Decimal(amount)) == token


def test_created_answers():
    wiki = (b'{"status_code":200,"message":"success","data":{"trade_id":"202203271648380592218340","order_id":"9",'
            b'"amount":53,"actual_amount":7.9104,"token":"TNEns8t9jbWENbStkQdVQtHMGpbsYsQjZK",'
            b'"expiration_time":1648381192,"payment_url":"http://example.com/pay/checkout-counter/'
            b'202203271648380592218340"},"request_id":"b1344d70-ff19-4543-b601-37abfb3b3686"}')
    created = protocol.parse_created(wiki, "9")
    assert created.payment_url.endswith("/202203271648380592218340")
    assert (created.actual_amount, created.address) == ("7.9104", "TNEns8t9jbWENbStkQdVQtHMGpbsYsQjZK")
    with pytest.raises(ProtocolError, match="another order"):
        protocol.parse_created(wiki, "10")
    bep = (b'{"status_code":200,"message":"success","data":{"fiat":"CNY","trade_id":"b3d2477c","order_id":"O1",'
           b'"amount":"28.88","actual_amount":"4.25","token":"TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",'
           b'"expiration_time":1200,"status":1,"payment_url":"https://pay.example/pay/checkout-counter/b3d2477c"},'
           b'"request_id":""}')
    assert protocol.parse_created(bep, "O1").actual_amount == "4.25"


@pytest.mark.parametrize("body,reason", [
    (b'{"status_code":401,"message":"\\u7b7e\\u540d\\u8ba4\\u8bc1\\u9519\\u8bef","data":null}', "status_code 401"),
    (b'{"status_code":10002,"message":"exists"}', "status_code 10002"),
    (b'{"status_code":200,"message":"success","data":{}}', "no payment_url"),
    (b'{"status_code":200,"data":{"payment_url":"javascript:alert(1)"}}', "no payment_url"),
    (b'{"status_code":"200","data":{}}', "no status_code"),
    (b'<html>502 Bad Gateway</html>', "not JSON"),
])
def test_refused_or_garbled_answers(body, reason):
    with pytest.raises(ProtocolError, match=reason):
        protocol.parse_created(body, "O1")


def test_signature_refusals_are_recognised():
    assert protocol.signature_refused(401, "签名认证错误")  # epusdt
    assert protocol.signature_refused(400, "签名错误")  # BEpusdt
    assert not protocol.signature_refused(400, "请求参数错误：Key: 'createReq.Amount' failed on the 'required' tag")
