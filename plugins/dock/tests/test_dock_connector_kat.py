r"""Known answers for the docking signature (API.md "Docking API"), computed
outside Python with OpenSSL, and the verifier's refusals.

The vectors (secret ``dock-kat-secret-0123456789abcdef``, timestamp 1767225600)::

    KEY='dock-kat-secret-0123456789abcdef'
    BODY='{"out_order_no":"D2026010100000001","quantity":2,"sku":"GAME-100"}'
    BH=$(printf '%s' "$BODY" | openssl dgst -sha256 | awk '{print $NF}')
    printf 'POST\n/api/v1/dock/orders\n\n%s\n1767225600\nkat-nonce-0001' "$BH" | openssl dgst -sha256 -hmac "$KEY"
    EMPTY=$(printf '' | openssl dgst -sha256 | awk '{print $NF}')   # e3b0c442...7852b855
    printf 'GET\n/api/v1/dock/goods\na=1&b=2&b=x%%20y\n%s\n1767225600\nkat-nonce-0002' "$EMPTY" \
        | openssl dgst -sha256 -hmac "$KEY"
"""
from __future__ import annotations

import pytest
from kameng_dock import protocol

KAT_SECRET = "dock-kat-secret-0123456789abcdef"
KAT_TS = "1767225600"
KAT_BODY = b'{"out_order_no":"D2026010100000001","quantity":2,"sku":"GAME-100"}'
KAT_BODY_SHA256 = "c1d364c808bc54faed09bda52d689323132f7692102abf79d19795e2b99eec74"
KAT_POST_SIGNATURE = "9729b2a086d97d77d1c801bfbcde5788c75253691a7aea1a17670bf849a6afd2"
KAT_GET_SIGNATURE = "a7f20b080c1f1826493f1daf050ba2988b220d468e89066a79eeeff38a60e415"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_the_body_hash_is_sha256_hex_of_the_raw_bytes():
    assert protocol.body_hash(KAT_BODY) == KAT_BODY_SHA256
    assert protocol.body_hash(b"") == EMPTY_SHA256


def test_post_vector():
    assert protocol.sign(KAT_SECRET, "POST", "/api/v1/dock/orders", "", KAT_BODY, KAT_TS,
                         "kat-nonce-0001") == KAT_POST_SIGNATURE


def test_get_vector_with_a_query_sorted_as_sent():
    # sent as b=x%20y&a=1&b=2: the pairs stay percent-encoded and are sorted whole
    assert protocol.sign(KAT_SECRET, "GET", "/api/v1/dock/goods", "b=x%20y&a=1&b=2", b"", KAT_TS,
                         "kat-nonce-0002") == KAT_GET_SIGNATURE


def test_the_order_body_the_connector_sends_is_the_vector_body():
    assert protocol.order_body("D2026010100000001", "GAME-100", 2) == KAT_BODY


def test_the_method_is_upper_case_in_the_string():
    assert protocol.sign(KAT_SECRET, "post", "/api/v1/dock/orders", "", KAT_BODY, KAT_TS,
                         "kat-nonce-0001") == KAT_POST_SIGNATURE


@pytest.mark.parametrize("query,expected", [("", ""), ("a=1", "a=1"), ("b=2&a=1", "a=1&b=2"),
                                            ("a=2&a=10", "a=10&a=2"), ("x&a=1", "a=1&x"),
                                            ("a=1&&b=2&", "a=1&b=2"), ("q=%E4%B8%AD&p=+", "p=+&q=%E4%B8%AD")])
def test_sorted_query(query, expected):
    assert protocol.sorted_query(query) == expected


def test_signed_headers_carry_the_vector():
    headers = protocol.signed_headers("kid", KAT_SECRET, "POST", "/api/v1/dock/orders", "", KAT_BODY,
                                      now=int(KAT_TS), nonce="kat-nonce-0001")
    assert headers == {"X-Kameng-Key": "kid", "X-Kameng-Timestamp": KAT_TS, "X-Kameng-Nonce": "kat-nonce-0001",
                       "X-Kameng-Signature": KAT_POST_SIGNATURE}


def test_fresh_nonces():
    a = protocol.signed_headers("kid", KAT_SECRET, "GET", "/x", now=1)
    b = protocol.signed_headers("kid", KAT_SECRET, "GET", "/x", now=1)
    assert a["X-Kameng-Nonce"] != b["X-Kameng-Nonce"] and len(a["X-Kameng-Nonce"]) >= 32


# -- verifying (what callbacks go through) --------------------------------------------------------

def headers(**change):
    h = {"X-Kameng-Key": "kid", "X-Kameng-Timestamp": KAT_TS, "X-Kameng-Nonce": "kat-nonce-0001",
         "X-Kameng-Signature": KAT_POST_SIGNATURE}
    for name, value in change.items():
        name = "X-Kameng-" + name.capitalize()
        if value is None:
            h.pop(name)
        else:
            h[name] = value
    return h


def verify(h, now=int(KAT_TS), body=KAT_BODY, path="/api/v1/dock/orders", query="", secret=KAT_SECRET,
           key_id="kid", method="POST"):
    return protocol.verify(h, key_id, secret, method, path, query, body, now=now)


def test_the_vector_verifies():
    v = verify(headers())
    assert (v.key_id, v.timestamp, v.nonce) == ("kid", int(KAT_TS), "kat-nonce-0001")


def test_an_upper_case_signature_verifies_too():
    verify(headers(signature=KAT_POST_SIGNATURE.upper()))


@pytest.mark.parametrize("now", [int(KAT_TS) - 300, int(KAT_TS) + 300])
def test_300_seconds_either_way_is_in_time(now):
    verify(headers(), now=now)


@pytest.mark.parametrize("kw,reason", [
    ({"h": headers(signature=None)}, "missing header X-Kameng-Signature"),
    ({"h": headers(signature="")}, "missing header X-Kameng-Signature"),
    ({"h": headers(key=None)}, "missing header X-Kameng-Key"),
    ({"h": headers(nonce=None)}, "missing header X-Kameng-Nonce"),
    ({"h": headers(timestamp=None)}, "missing header X-Kameng-Timestamp"),
    ({"h": headers(key="other")}, "another key"),
    ({"h": headers(), "key_id": "kid2"}, "another key"),
    ({"h": headers(), "now": int(KAT_TS) + 301}, "300 s"),
    ({"h": headers(), "now": int(KAT_TS) - 301}, "300 s"),
    ({"h": headers(timestamp="1767225600.0")}, "malformed X-Kameng-Timestamp"),
    ({"h": headers(timestamp="-1")}, "malformed X-Kameng-Timestamp"),
    ({"h": headers(nonce="has space")}, "malformed X-Kameng-Nonce"),
    ({"h": headers(signature=KAT_POST_SIGNATURE[:-1])}, "malformed X-Kameng-Signature"),
    ({"h": headers(signature="z" * 64)}, "malformed X-Kameng-Signature"),
    ({"h": headers(signature=KAT_GET_SIGNATURE)}, "bad signature"),
    ({"h": headers(), "secret": KAT_SECRET + "x"}, "bad signature"),
    ({"h": headers(), "body": KAT_BODY + b" "}, "bad signature"),
    ({"h": headers(), "path": "/api/v1/dock/orders/"}, "bad signature"),
    ({"h": headers(), "query": "x=1"}, "bad signature"),
    ({"h": headers(), "method": "PUT"}, "bad signature"),
    ({"h": headers(nonce="kat-nonce-0003")}, "bad signature"),
    ({"h": headers(), "secret": ""}, "no key id or secret"),
])
def test_refusals(kw, reason):
    with pytest.raises(protocol.ProtocolError, match=reason):
        verify(**kw)
