"""Reading the platform's answers: JSON numbers kept as the text PHP signed,
V2 answers believed only with a good signature and a fresh timestamp, and
payment links that kameng refuses to open."""
from __future__ import annotations

import json
import time

import pytest

from kameng.httpclient import HttpResponse
from kameng.payments import GatewayError
from kameng_epay import protocol, provider
from kameng_epay.config import Config
from kameng_epay.gateway import EpayGateway, cut_name
from kameng_epay.testing import key_pem

PLATFORM = protocol.load_private_key(key_pem("platform_private"))
CFG = Config(api_url="https://pay.example/", pid="1001", version="2", key="",
             merchant_key=protocol.load_private_key(key_pem("merchant_private")),
             platform_key=protocol.load_public_key(key_pem("platform_public")))


def answer(data: dict, key=PLATFORM, now=None) -> dict:
    """A V2 answer as ``ApiHelper::load_api`` makes it, decoded as kameng decodes it."""
    data = {**data, "timestamp": str(int(time.time() if now is None else now)), "sign_type": "RSA"}
    data["sign"] = protocol.rsa_sign(protocol.signed_fields_of(data), key)
    return provider.decode(HttpResponse(200, {}, json.dumps(data).encode()))


def test_a_signed_fresh_answer_is_believed():
    data = answer({"code": 0, "pid": 1001, "money": "1.00", "status": "1", "flag": True, "none": None})
    assert provider.v2_verified(CFG, data) is data


def test_an_answer_signed_by_another_key_is_refused():
    with pytest.raises(GatewayError, match="does not verify"):
        provider.v2_verified(CFG, answer({"code": 0, "pid": 1001}, key=CFG.merchant_key))


def test_a_tampered_answer_is_refused():
    data = answer({"code": 0, "status": "0"})
    data["status"] = "1"
    with pytest.raises(GatewayError, match="does not verify"):
        provider.v2_verified(CFG, data)


@pytest.mark.parametrize("skew", [-400, 400])
def test_an_answer_with_a_stale_or_future_timestamp_is_refused(skew):
    with pytest.raises(GatewayError, match="300 s"):
        provider.v2_verified(CFG, answer({"code": 0}, now=time.time() + skew))


def test_an_error_answer_is_unsigned_and_only_read_as_a_refusal():
    data = {"code": "-1", "msg": "订单号不存在"}
    assert provider.v2_verified(CFG, data) is data


def test_numbers_keep_the_text_php_signed():
    raw = b'{"code":0,"pid":1001,"money":12.5,"refundmoney":100.0,"ok":true,"no":false,"list":[1]}'
    data = provider.decode(HttpResponse(200, {}, raw))
    assert protocol.signed_fields_of(data) == {"code": "0", "pid": "1001", "money": "12.5", "refundmoney": "100",
                                                "ok": "1"}


@pytest.mark.parametrize("status,body,message", [
    (500, b"oops", "HTTP 500"), (200, b"<html>", "not JSON"), (200, b"[1, 2]", "not a JSON object"),
    (200, b"\xff\xfe", "not JSON"),
])
def test_bad_answers_are_gateway_errors(status, body, message):
    with pytest.raises(GatewayError, match=message):
        provider.decode(HttpResponse(status, {}, body))


def test_provider_messages_are_cut_to_one_short_line():
    assert provider.clean_message("a\nb\t c" + "x" * 500) == ("a b c" + "x" * 500)[:160]
    assert provider.clean_message(None) == provider.clean_message(["x"]) == "no message"


@pytest.mark.parametrize("link", ["javascript:alert(1)", "data:text/html,x", "//evil.example/", "http://a b"])
def test_payment_links_kameng_will_not_open(link):
    v1 = Config(api_url="https://pay.example/", pid="1001", version="1", key="k" * 32)
    with pytest.raises(GatewayError, match="will not open"):
        EpayGateway({}).action_from(v1, {}, {"payurl": link})


def test_wallet_app_links_are_opened():
    v1 = Config(api_url="https://pay.example/", pid="1001", version="1", key="k" * 32)
    action = EpayGateway({}).action_from(v1, {}, {"urlscheme": "alipays://platformapi/startapp?x=1"})
    assert (action.kind, action.url) == ("redirect", "alipays://platformapi/startapp?x=1")


def test_the_name_is_cut_at_127_bytes_without_breaking_a_character():
    name = cut_name("会员" * 100)
    assert name == "会员" * 21 and len(name.encode()) == 126  # 42 characters of 3 bytes; a 43rd would not fit
    assert cut_name("  a\n b ") == "a b" and cut_name("") == "order"
