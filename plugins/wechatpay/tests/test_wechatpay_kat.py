"""Known answers for WeChat Pay API v3 (PROTOCOLS.md A3, Appendix K6–K8),
recomputed by the plugin's own code, and what must fail when one byte of
them changes.

K6: the Authorization signature of a GET and of a POST (self-computed with
wechatpay-go's test key). K7: a payment callback end to end, AES-256-GCM
(self-computed). K8: wechatpay-go's own vectors: the signer's ``source``,
notify_test's callback (AES-128-GCM: a 16-byte key) and utils/aes_test.
"""
import base64
import json
import os
from decimal import Decimal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kameng.payments import NotificationRejected
from kameng.types import SettingError
from pyramid.request import Request

from kameng_wechatpay import protocol, testing
from kameng_wechatpay.gateway import WechatPayGateway
from kameng_wechatpay.settings import validate

HERE = os.path.join(os.path.dirname(__file__), "vectors")
with open(os.path.join(HERE, "wechatpay_kat.json"), encoding="utf-8") as fh:
    KAT = json.load(fh)
with open(os.path.join(HERE, "wechatpay-go-test-private-key.pem"), "rb") as fh:
    TEST_KEY = serialization.load_pem_private_key(fh.read(), password=None)
with open(os.path.join(HERE, "wechatpay-go-test-platform-cert.pem"), "rb") as fh:
    CERT_PEM = fh.read().decode()
CERT = x509.load_pem_x509_certificate(CERT_PEM.encode())
STRANGER = testing.stranger_key()


def test_the_test_key_and_certificate_are_one_pair():
    assert protocol.serial_text(CERT.serial_number) == "D7CE59D1F522D701"
    assert CERT.public_key().public_numbers() == TEST_KEY.public_key().public_numbers()


# -- K6 / K8: signing ------------------------------------------------------------------------


def test_k8_wechatpay_go_signer_source():
    vec = KAT["wechat_go_official"]["signer_test"]
    assert protocol.sign(TEST_KEY, vec["message"].encode()) == vec["signature"]
    assert protocol.verify(CERT.public_key(), b"source", vec["signature"])
    assert not protocol.verify(CERT.public_key(), b"Source", vec["signature"])


def test_k6a_authorization_get():
    vec = KAT["wechat_auth_get"]
    message = protocol.request_message("GET", "/v3/certificates", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242",
                                       b"")
    assert message == vec["message"].encode() and message.endswith(b"\n\n")
    assert protocol.sign(TEST_KEY, message) == vec["signature"]
    header = protocol.authorization("1900009191", "F5765756002FDD77", TEST_KEY, "GET", "/v3/certificates", b"",
                                    timestamp="1554208460", nonce="593BEC0C930BF1AFEB40B4A08C8FB242")
    assert header == ('WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
                      f'signature="{vec["signature"]}",timestamp="1554208460",serial_no="F5765756002FDD77"')
    assert protocol.parse_authorization(header)["signature"] == vec["signature"]


def test_k6b_authorization_post_signs_the_exact_body():
    vec = KAT["wechat_auth_post"]
    body = vec["body"].encode()
    message = protocol.request_message(vec["method"], vec["path"], vec["timestamp"], vec["nonce"], body)
    assert protocol.sign(TEST_KEY, message) == vec["signature"]
    # the plugin's own serialisation of the same request gives these exact bytes
    assert protocol.dumps(json.loads(vec["body"])) == body
    header = protocol.authorization("1230000109", "F5765756002FDD77", TEST_KEY, "POST", vec["path"], body,
                                    timestamp=vec["timestamp"], nonce=vec["nonce"])
    assert f'signature="{vec["signature"]}"' in header


@pytest.mark.parametrize("change", ["method", "path", "timestamp", "nonce", "body", "spaces"])
def test_k6b_any_change_breaks_the_signature(change):
    vec = KAT["wechat_auth_post"]
    parts = {"method": vec["method"], "url": vec["path"], "timestamp": vec["timestamp"], "nonce": vec["nonce"],
             "body": vec["body"].encode()}
    if change == "method":
        parts["method"] = "post"
    elif change == "path":
        parts["url"] += "?mchid=1230000109"
    elif change == "timestamp":
        parts["timestamp"] = "1704081601"
    elif change == "nonce":
        parts["nonce"] = parts["nonce"].lower()
    elif change == "body":
        parts["body"] = parts["body"].replace(b"8888", b"8889")
    else:  # the same JSON, serialised differently: another message
        parts["body"] = json.dumps(json.loads(vec["body"])).encode()
    assert not protocol.verify(TEST_KEY.public_key(), protocol.request_message(**parts), vec["signature"])
    assert protocol.verify(TEST_KEY.public_key(), protocol.request_message(
        vec["method"], vec["path"], vec["timestamp"], vec["nonce"], vec["body"].encode()), vec["signature"])


def test_signature_case_and_encoding_matter():
    sig = KAT["wechat_auth_get"]["signature"]
    message = KAT["wechat_auth_get"]["message"].encode()
    key = CERT.public_key()
    assert protocol.verify(key, message, sig)
    for bad in (sig.lower(), sig.upper(), sig[:-4], sig + "AA==", sig.replace("+", "-").replace("/", "_"),
                " " + sig, "", "not base64!"):
        assert not protocol.verify(key, message, bad), bad
    assert not protocol.verify(STRANGER.public_key(), message, sig)


# -- K7: the AES-256 callback, end to end through the gateway ---------------------------------

K7 = KAT["wx_callback_aes256"]
K7_NOW = 1704081611


def k7_settings(**changes):
    return testing.settings(**{"apiv3_key": K7["apiv3_key"], "platform_certificates": CERT_PEM, **changes})


def k7_request(body=None, headers=None, drop=(), query=""):
    hdrs = {**K7["headers"], **(headers or {})}
    for name in drop:
        hdrs.pop(name)
    return Request.blank("/pay/wechatpay/notify" + query, method="POST",
                         body=K7["body"].encode() if body is None else body,
                         headers={"Content-Type": "application/json", **hdrs})


@pytest.fixture
def at_k7_time(monkeypatch):
    monkeypatch.setattr(protocol, "clock", lambda: K7_NOW + 5)


def test_k7_body_is_the_vector():
    import hashlib

    assert hashlib.sha256(K7["body"].encode()).hexdigest() == K7["body_sha256"]


def test_k7_callback_end_to_end(at_k7_time):
    n = WechatPayGateway(k7_settings()).parse_notification(k7_request())
    assert n.attempt_no == "T20240101000001" and n.provider_trade_no == "4200000000202401010000000001"
    assert n.amount == Decimal("88.88") and isinstance(n.amount, Decimal) and str(n.amount) == "88.88"
    assert (n.currency, n.status, n.merchant_id) == ("CNY", "paid", "1230000109")
    assert "ciphertext" not in json.dumps(n.raw) and "Signature" not in json.dumps(n.raw)


def test_k7_decrypts_to_the_documented_transaction():
    resource = json.loads(K7["body"])["resource"]
    plain = protocol.decrypt_resource(K7["apiv3_key"].encode(), resource)
    assert plain.decode() == K7["plaintext"]
    tx = protocol.transaction(protocol.loads(plain))
    assert (tx.out_trade_no, tx.trade_state, tx.amount, tx.currency) == ("T20240101000001", "SUCCESS",
                                                                        Decimal("88.88"), "CNY")


def test_k7_serial_in_lower_case_names_the_same_certificate(at_k7_time):
    gw = WechatPayGateway(k7_settings())
    n = gw.parse_notification(k7_request(headers={"Wechatpay-Serial": "d7ce59d1f522d701"}))
    assert n.status == "paid"


def _reserialised():
    return json.dumps(json.loads(K7["body"]), ensure_ascii=False, indent=1).encode()


def _tampered_ciphertext():
    body = json.loads(K7["body"])
    ct = base64.b64decode(body["resource"]["ciphertext"])
    body["resource"]["ciphertext"] = base64.b64encode(ct[:10] + bytes([ct[10] ^ 1]) + ct[11:]).decode()
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("case,kw,reason", [
    ("body re-serialised", {"body": _reserialised()}, "bad signature"),
    ("one byte of body", {"body": K7["body"].replace("8gHV", "8gHW").encode()}, "bad signature"),
    ("ciphertext tampered", {"body": _tampered_ciphertext()}, "bad signature"),
    ("timestamp changed", {"headers": {"Wechatpay-Timestamp": "1704081612"}}, "bad signature"),
    ("nonce changed", {"headers": {"Wechatpay-Nonce": "NonceForCallbackKAT0000000000002"}}, "bad signature"),
    ("signature lower case", {"headers": {"Wechatpay-Signature": K7["headers"]["Wechatpay-Signature"].lower()}},
     "bad signature"),
    ("probe", {"headers": {"Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + K7["headers"]["Wechatpay-Signature"]}},
     "probe"),
    ("signature type", {"headers": {"Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA4096"}}, "Signature-Type"),
    ("signature type lower case", {"headers": {"Wechatpay-Signature-Type": "wechatpay2-sha256-rsa2048"}},
     "Signature-Type"),
    ("unknown serial", {"headers": {"Wechatpay-Serial": "D7CE59D1F522D702"}}, "no platform certificate"),
    ("public key id not ours", {"headers": {"Wechatpay-Serial": "PUB_KEY_ID_0000"}}, "no platform certificate"),
    ("missing signature", {"drop": ["Wechatpay-Signature"]}, "Wechatpay-Signature is missing"),
    ("missing timestamp", {"drop": ["Wechatpay-Timestamp"]}, "Wechatpay-Timestamp is missing"),
    ("missing nonce", {"drop": ["Wechatpay-Nonce"]}, "Wechatpay-Nonce is missing"),
    ("missing serial", {"drop": ["Wechatpay-Serial"]}, "Wechatpay-Serial is missing"),
    ("missing signature type", {"drop": ["Wechatpay-Signature-Type"]}, "Signature-Type"),
    ("a query string", {"query": "?out_trade_no=T2"}, "no query parameters"),
])
def test_k7_rejections(at_k7_time, case, kw, reason):
    gw = WechatPayGateway(k7_settings())
    with pytest.raises(NotificationRejected, match=reason):
        gw.parse_notification(k7_request(**kw))


def test_k7_wrong_apiv3_key_or_aad_does_not_decrypt(at_k7_time):
    gw = WechatPayGateway(k7_settings(apiv3_key="ThisIsA32ByteAPIv3KeyForTests!!?"))
    with pytest.raises(NotificationRejected, match="does not decrypt"):
        gw.parse_notification(k7_request())
    resource = json.loads(K7["body"])["resource"]
    for field, value in (("associated_data", "transactioN"), ("associated_data", ""), ("nonce", "fixedNonce13")):
        with pytest.raises(protocol.ProtocolError, match="does not decrypt"):
            protocol.decrypt_resource(K7["apiv3_key"].encode(), {**resource, field: value})
    with pytest.raises(protocol.ProtocolError, match="AEAD_AES_256_GCM"):
        protocol.decrypt_resource(K7["apiv3_key"].encode(), {**resource, "algorithm": "AEAD_AES_128_GCM"})


def test_k7_wrong_platform_key_or_stale_time(monkeypatch):
    other = testing.settings(apiv3_key=K7["apiv3_key"], platform_certificates="")  # only the public key
    monkeypatch.setattr(protocol, "clock", lambda: K7_NOW)
    with pytest.raises(NotificationRejected):
        WechatPayGateway(other).parse_notification(k7_request())
    for now in (K7_NOW + 301, K7_NOW - 301):
        monkeypatch.setattr(protocol, "clock", lambda now=now: now)
        with pytest.raises(NotificationRejected, match="300 s"):
            WechatPayGateway(k7_settings()).parse_notification(k7_request())
    for now in (K7_NOW + 300, K7_NOW - 300):
        monkeypatch.setattr(protocol, "clock", lambda now=now: now)
        assert WechatPayGateway(k7_settings()).parse_notification(k7_request()).status == "paid"


def test_k7_another_appid_is_rejected(at_k7_time):
    with pytest.raises(NotificationRejected, match="another appid"):
        WechatPayGateway(k7_settings(appid="wx0000000000000000")).parse_notification(k7_request())


# -- K8: wechatpay-go's notify_test (AES-128) and aes_test ------------------------------------


def test_k8_notify_test_vector():
    vec = KAT["wechat_go_notify_test"]
    keys = protocol.PlatformKeys(certificates={CERT.serial_number: CERT.public_key()})
    body = vec["body"].encode()
    assert protocol.check_signed(vec["headers"], body, keys.find, now=vec["now"], require_type=False) == \
        "D7CE59D1F522D701"
    plain = protocol.decrypt_resource(vec["apiv3_key"].encode(), json.loads(body)["resource"])
    assert plain.decode() == vec["plaintext"]
    # ... and a callback must name its signature type; this vector's headers do not
    with pytest.raises(protocol.ProtocolError, match="Signature-Type"):
        protocol.check_signed(vec["headers"], body, keys.find, now=vec["now"])
    with pytest.raises(protocol.ProtocolError, match="bad signature"):
        protocol.check_signed(vec["headers"], body + b" ", keys.find, now=vec["now"], require_type=False)
    with pytest.raises(protocol.ProtocolError, match="300 s"):
        protocol.check_signed(vec["headers"], body, keys.find, now=vec["now"] + 301, require_type=False)


def test_k8_aes_test_vector():
    vec = KAT["wechat_go_official"]["aes_test"]
    assert protocol.decrypt(vec["key"].encode(), vec["nonce"], vec["aad"], vec["ciphertext"]) == b"Hello World"
    assert protocol.encrypt(vec["key"].encode(), vec["nonce"], vec["aad"], b"Hello World") == vec["ciphertext"]
    for key, nonce, aad in ((b"testAPIv3Key0001", vec["nonce"], vec["aad"]), (vec["key"].encode(), "wCq51qZv4Yfh",
                            vec["aad"]), (vec["key"].encode(), vec["nonce"], vec["aad"][:-1])):
        with pytest.raises(protocol.ProtocolError, match="does not decrypt"):
            protocol.decrypt(key, nonce, aad, vec["ciphertext"])


def test_the_settings_require_a_32_byte_key_the_primitive_does_not():
    for key in ("testMchAPIv3Key0", "ThisIsA32ByteAPIv3KeyForTests!!", "ThisIsA32ByteAPIv3KeyForTests!!é"):
        with pytest.raises(SettingError) as err:
            validate({"apiv3_key": key})
        assert err.value.field_name == "apiv3_key"
    validate({"apiv3_key": K7["apiv3_key"]})


# -- reading amounts and states ---------------------------------------------------------------


@pytest.mark.parametrize("total,yuan", [(8888, "88.88"), (1, "0.01"), (100, "1"), (0, "0"),
                                        (12345678901, "123456789.01")])
def test_fen_to_yuan_is_exact(total, yuan):
    assert protocol.fen_to_yuan(total) == Decimal(yuan)


@pytest.mark.parametrize("total", [True, False, 100.0, 1e-2, "100", "1.00", -1, None, [100], 10 ** 13])
def test_malformed_totals(total):
    with pytest.raises(protocol.ProtocolError):
        protocol.fen_to_yuan(total)


@pytest.mark.parametrize("state,status", [("SUCCESS", "paid"), ("NOTPAY", "pending"), ("USERPAYING", "pending"),
                                          ("CLOSED", "closed"), ("REVOKED", "closed"), ("PAYERROR", "failed"),
                                          ("REFUND", "closed")])
def test_trade_states(state, status):
    tx = testing.transaction("P1", 100, "4200", state=state)
    assert protocol.transaction(tx).status == status


def test_unknown_or_lower_case_state_is_rejected():
    for state in ("success", "PAID", ""):
        with pytest.raises(protocol.ProtocolError):
            protocol.transaction(testing.transaction("P1", 100, "4200", state=state))


def test_an_unpaid_query_answer_without_currency_reads():
    tx = {"mchid": "1", "appid": "wx", "out_trade_no": "P1", "trade_state": "NOTPAY",
          "amount": {"total": 100, "payer_currency": "CNY"}}
    got = protocol.transaction(tx)
    assert (got.status, got.currency, got.transaction_id) == ("pending", "CNY", "")
    tx["trade_state"] = "SUCCESS"  # a paid one must say everything
    with pytest.raises(protocol.ProtocolError):
        protocol.transaction(tx)


def test_json_keys_twice_are_rejected():
    with pytest.raises(protocol.ProtocolError, match="twice"):
        protocol.loads(b'{"amount":{"total":100,"total":1}}')
    for bad in (b'{"a":NaN}', b'{"a":Infinity}', b"\xff", b"{"):
        with pytest.raises(protocol.ProtocolError):
            protocol.loads(bad)
