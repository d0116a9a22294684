"""The pure side of the acg-faka protocol: the signature (known answers
computed outside Python), the form, the answer envelope, delivered keys,
SKU codes and recharge field names."""
from __future__ import annotations

import random
import string
import sys
from decimal import Decimal

import pytest

from kameng_acgfaka import protocol as p

fakeshop = sys.modules["kameng_acgfaka_tests_acgfaka_fake"]  # loaded by conftest.py

# The known answers below were computed with coreutils, not Python, from the
# string acg-faka's Str::generateSignature hashes (the app_key is a value
# like any other, then "&key=" and the key itself, urldecoded):
#
#   printf '%s' 'app_id=1001&app_key=acgfakaKATkey0123456789abcdefABCD&key=acgfakaKATkey0123456789abcdefABCD' \
#       | md5sum
#   → 1575a343d35fbe190ca1f6505bc78715
#
#   printf '%s' 'account=user@example.com&app_id=1001&app_key=k3y+Kat%41&card_id=0&contact=K2401011200000012345678'\
#   '&device=0&num=2&race=月卡&request_no=K2401011200000012345678&shared_code=8A7C2B&sku[颜色]=红色'\
#   '&sku[版本]=标准&key=k3y KatA' | md5sum
#   → 4929f6ec27fc67c6282fecd8b5e42080
#
# The second one has everything at once: keys sorted, the empty password
# left out, card_id "0" kept, the nested sku spelled sku[name] in its own
# order, UTF-8 text, and a key with "+" and "%41", which stay as they are
# in the app_key value but are urldecoded (" " and "A") after "&key=".
KAT_CONNECT = ("acgfakaKATkey0123456789abcdefABCD", "1575a343d35fbe190ca1f6505bc78715")
KAT_TRADE_KEY, KAT_TRADE_SIGN = "k3y+Kat%41", "4929f6ec27fc67c6282fecd8b5e42080"
TRADE = {"shared_code": "8A7C2B", "contact": "K2401011200000012345678", "num": 2, "card_id": 0, "device": 0,
         "password": "", "race": "月卡", "request_no": "K2401011200000012345678",
         "sku": {"颜色": "红色", "版本": "标准"}, "account": "user@example.com"}


def test_known_answer_connect():
    key, expected = KAT_CONNECT
    form = p.signed_form({}, "1001", key)
    assert form == {"app_id": "1001", "app_key": key, "sign": expected}


def test_known_answer_trade():
    form = p.signed_form(TRADE, "1001", KAT_TRADE_KEY)
    assert form["sign"] == KAT_TRADE_SIGN
    # what goes on the wire: every field (the empty password too), the sku nested the PHP way
    assert form["password"] == "" and form["card_id"] == "0" and form["num"] == "2"
    assert form["sku[颜色]"] == "红色" and form["sku[版本]"] == "标准" and "sku" not in form
    assert form["app_key"] == KAT_TRADE_KEY


def test_sign_base_is_the_php_string():
    base = p.sign_base({**TRADE, "app_id": "1001", "app_key": KAT_TRADE_KEY, "sign": "ignored"}, KAT_TRADE_KEY)
    assert base.decode() == ("account=user@example.com&app_id=1001&app_key=k3y+Kat%41&card_id=0"
                             "&contact=K2401011200000012345678&device=0&num=2&race=月卡"
                             "&request_no=K2401011200000012345678&shared_code=8A7C2B&sku[颜色]=红色&sku[版本]=标准"
                             "&key=k3y KatA")


def test_php_urldecode():
    assert p.php_urldecode(b"a+b%41%zz%4") == b"a bA%zz%4"
    assert p.php_urldecode(b"%E6%9C%88") == "月".encode()


def test_the_fake_shop_verifies_what_the_connector_signs():
    """The fake recomputes the signature the PHP way (quote_plus, then
    unquote over the whole string): both agree on random forms."""
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + " +%&=?/#[]月卡—~.-_"
    for _ in range(200):
        params = {"".join(rng.choices(string.ascii_lowercase + "_", k=rng.randint(1, 8))):
                  "".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(rng.randint(1, 6))}
        params["sku"] = {"区服": "".join(rng.choices(alphabet, k=4))}
        key = "".join(rng.choices(string.ascii_letters + string.digits, k=32))
        form = p.signed_form(params, "1001", key)
        body = "&".join(f"{fakeshop.quote_plus(k)}={fakeshop.quote_plus(v)}" for k, v in form.items()).encode()
        post = fakeshop.php_post(body)
        assert fakeshop.generate_signature(post, key) == form["sign"]


def test_a_different_key_or_field_changes_the_sign():
    base = p.sign(TRADE, "key-one")
    assert p.sign(TRADE, "key-two") != base
    assert p.sign({**TRADE, "num": 3}, "key-one") != base
    assert p.sign({**TRADE, "password": ""}, "key-one") == base  # empty values are not signed


def test_envelope():
    assert p.read_envelope(b'{"code":200,"msg":"success","data":{"balance":1.50}}') == {"balance": Decimal("1.50")}
    assert p.read_envelope(b'{"code":"200","data":[]}') == []
    with pytest.raises(p.Refusal) as info:
        p.read_envelope('{"code":0,"msg":"<b>库存不足</b>"}'.encode())
    assert info.value.message == "库存不足" and not info.value.duplicate
    with pytest.raises(p.Refusal) as info:
        p.read_envelope(b'{"code":500,"msg":"The request ID already exists"}')
    assert info.value.duplicate
    for garbage in (b"<html>502</html>", b'{"msg":"no code"}', b"[]", b'{"code":true}', b'{"code":200,"code":0}',
                    b"\xff\xfe", b'{"code":200,"data":NaN}'):
        with pytest.raises(p.ProtocolError):
            p.read_envelope(garbage)


def test_messages_are_cleaned_and_never_hold_the_key():
    text = p.clean_message("<script>x</script>密钥 SECRETKEY123 错误\n\t again " + "长" * 500, "SECRETKEY123")
    assert "SECRETKEY123" not in text and "<" not in text and "\n" not in text
    assert len(text) == p.MAX_MESSAGE


@pytest.mark.parametrize("secret,quantity,keys", [
    ("AAAA\nBBBB", 2, ((None, "AAAA"), (None, "BBBB"))),
    ("AAAA\r\nBBBB\r\n", 2, ((None, "AAAA"), (None, "BBBB"))),
    ("n1----s1\nn2----s2", 2, (("n1", "s1"), ("n2", "s2"))),
    ("n1----s1\nonlysecret", 2, ((None, "n1----s1"), (None, "onlysecret"))),
    ("卡号1 密码1\n卡号2 密码2", 2, (("卡号1", "密码1"), ("卡号2", "密码2"))),
    ("卡号1 密码1\n一个 两个 三个", 2, ((None, "卡号1 密码1"), (None, "一个 两个 三个"))),
    ("line one\nline two", 1, ((None, "line one\nline two"),)),
    ("n1----s1", 1, (("n1", "s1"),)),
    ("", 1, ()),
    (None, 1, ()),
    ("很抱歉，有人在你付款之前抢走了商品，请联系客服。", 1, ()),
])
def test_parse_keys(secret, quantity, keys):
    assert p.parse_keys(secret, quantity) == keys


def test_sku_codes_round_trip_and_escape():
    ref = p.SkuRef("k", "A/B:C", "月卡?x", {"区=服": "电信&联通", "b": "%"})
    text = ref.text()
    assert "/" not in text.split(":", 1)[1].split("/")[0]
    assert p.parse_sku(text) == ref
    assert p.parse_sku("k:CARD01") == p.SkuRef("k", "CARD01")
    assert p.parse_sku("m:QQ01/年卡") == p.SkuRef("m", "QQ01", "年卡")
    for bad in ("", "x:CARD01", "k:", "CARD01", "k:A?noequals", "k:A?=v", "k:" + "A" * 130):
        with pytest.raises(p.ProtocolError):
            p.parse_sku(bad)


def test_field_names():
    assert p.field_name("qq") == "qq" and p.upstream_name("qq") == "qq"
    for upstream in ("Account", "game-id", "x_y", "_hidden"):
        name = p.field_name(upstream)
        assert name.startswith("x_") and p.upstream_name(name) == upstream
    for impossible in ("区服", "a.b", "a b", "", "app_key", "request_no", "sku", "1abc", "A" * 20):
        assert p.field_name(impossible) is None
    for never in ("x_zz", "x_", "app_key", "Qq", 3, "x_" + b"app_key".hex()):
        assert p.upstream_name(never) is None


def test_numbers():
    assert p.decimal_of("9.90") == Decimal("9.90") and p.decimal_of(10) == Decimal(10)
    assert p.decimal_of(Decimal("1.5")) == Decimal("1.5")
    for bad in (None, True, "abc", "-1", "NaN", "Infinity", ""):
        assert p.decimal_of(bad) is None
    assert p.int_of("12") == 12 and p.int_of(7) == 7 and p.int_of("-3") == -3
    for bad in (None, False, "1.5", "x", ""):
        assert p.int_of(bad) is None
