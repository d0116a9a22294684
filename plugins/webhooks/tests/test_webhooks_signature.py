"""The signature: a known answer, the scheme computed independently, and a
receiver verifying a real delivery the way docs/webhooks.md tells it to."""
from __future__ import annotations

import hashlib
import hmac
import re
import time

import pytest

from kameng_webhooks import __version__, signing

from webhooks_helpers import (attempts, deliveries, emit, expected_signature, make_endpoint, receiver_verifies,
                              run_all)

SECRET = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
ID = "wh_00112233445566778899aabbccddeeff"
TS = 1700000000
BODY = ('{"id":"wh_00112233445566778899aabbccddeeff","event":"order.paid","created_at":"2023-11-14T22:13:20+00:00",'
        '"data":{"order_no":"K1","amount":"12.50","product":"月卡"}}').encode()
#: computed outside Python: printf '%s' "$ID.$TS.$BODY" | openssl dgst -sha256 -hmac "$SECRET"
KNOWN = "v1=cd2d39077d35d1bc35892ddc09a1c5466da6e3bf97648928c5b470a19bf1a499"


def test_known_answer():
    assert signing.sign(SECRET, ID, TS, BODY) == KNOWN
    assert signing.sign(SECRET, ID, str(TS), BODY) == KNOWN


def test_scheme_matches_an_independent_computation():
    independent = hmac.new(SECRET.encode(), f"{ID}.{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, ID, TS, BODY) == "v1=" + independent
    # every part is signed: a change anywhere changes the signature
    assert signing.sign(SECRET, ID, TS + 1, BODY) != KNOWN
    assert signing.sign(SECRET, ID[:-1] + "0", TS, BODY) != KNOWN
    assert signing.sign(SECRET, ID, TS, BODY.replace(b"12.50", b"12.51")) != KNOWN
    assert signing.sign(SECRET[:-1] + "0", ID, TS, BODY) != KNOWN


def test_new_secrets_are_32_random_bytes():
    a, b = signing.new_secret(), signing.new_secret()
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", a) and a != b


def test_verify_refuses_stale_future_and_tampered():
    headers = {"X-Kameng-Webhook-Id": ID, "X-Kameng-Webhook-Timestamp": str(TS),
               "X-Kameng-Webhook-Signature": KNOWN}
    assert signing.verify(SECRET, headers, BODY, now=TS + 299)
    assert not signing.verify(SECRET, headers, BODY, now=TS + 301)
    assert not signing.verify(SECRET, headers, BODY, now=TS - 301)
    assert not signing.verify(SECRET, headers, BODY + b" ", now=TS)
    assert not signing.verify("whsec_" + "0" * 64, headers, BODY, now=TS)
    assert not signing.verify(SECRET, {**headers, "X-Kameng-Webhook-Signature": KNOWN.upper()}, BODY, now=TS)
    assert not signing.verify(SECRET, {**headers, "X-Kameng-Webhook-Signature": ""}, BODY, now=TS)
    assert not signing.verify(SECRET, {**headers, "X-Kameng-Webhook-Timestamp": "17e8"}, BODY, now=TS)
    # several values (a receiver may list more): one matching is enough
    assert signing.verify(SECRET, {**headers, "X-Kameng-Webhook-Signature": "v1=00, " + KNOWN}, BODY, now=TS)


@pytest.mark.parametrize("doc", ["webhooks.md", "webhooks.zh_CN.md"])
def test_the_docs_example_verifies_and_refuses(doc):
    """The receiver's example in the guide, run as written."""
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[3] / "docs" / doc
    code = re.search(r"```python\n(# receiver\.py.*?)```", path.read_text(encoding="utf-8"), re.DOTALL).group(1)
    ns: dict = {}
    exec(compile(code, "receiver.py", "exec"), ns)
    now = time.time()
    ts = str(int(now))
    sig = expected_signature(SECRET, ID, ts, BODY)
    headers = {"X-Kameng-Webhook-Id": ID, "X-Kameng-Webhook-Timestamp": ts, "X-Kameng-Webhook-Signature": sig}
    assert ns["verify"](SECRET, headers, BODY) is True
    old = str(int(now) - 301)
    assert ns["verify"](SECRET, {**headers, "X-Kameng-Webhook-Timestamp": old,
                                 "X-Kameng-Webhook-Signature": expected_signature(SECRET, ID, old, BODY)},
                        BODY) is False
    assert ns["verify"](SECRET, headers, BODY.replace(b"K1", b"K2")) is False
    assert ns["verify"](SECRET, {**headers, "X-Kameng-Webhook-Signature": "v1=" + "0" * 64}, BODY) is False
    assert ns["verify"](SECRET, {k: v for k, v in headers.items() if k != "X-Kameng-Webhook-Id"}, BODY) is False


def test_a_real_delivery_verifies_at_the_receiver(wh, receiver):
    r = receiver()
    _eid, secret = make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "K100", "amount": "9.90", "product": "会员"})
    run_all(wh)
    assert len(r.received) == 1
    got = r.received[0]
    assert receiver_verifies(secret, got)
    headers = got.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"kameng-webhooks/{__version__}"
    assert re.fullmatch(r"wh_[0-9a-f]{32}", headers["x-kameng-webhook-id"])
    assert abs(int(headers["x-kameng-webhook-timestamp"]) - time.time()) < 60
    assert headers["x-kameng-webhook-signature"] == expected_signature(
        secret, headers["x-kameng-webhook-id"], headers["x-kameng-webhook-timestamp"], got.body)
    # the body is what was stored, byte for byte
    (d,) = deliveries(wh)
    assert got.body == d.body.encode("utf-8")
    import json

    doc = json.loads(got.body)
    assert doc["id"] == d.delivery_id == headers["x-kameng-webhook-id"]
    assert doc["event"] == "order.paid" and doc["data"]["product"] == "会员"
    assert doc["created_at"].endswith("+00:00")
    assert [a.ok for a in attempts(wh, d.delivery_id)] == [True]
    # another secret does not verify it
    assert not receiver_verifies("whsec_" + "1" * 64, got)
