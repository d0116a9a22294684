"""Callbacks from the upstream (SECURITY.md B3 #53, #54): verified over the
bytes that arrived with this connection's key, in time, once; everything
else is :class:`CallbackRejected`. The fake upstream signs them with its own
code (``dock_fake.signed``)."""
from __future__ import annotations

import json
import time

import pytest
from dock_fake import signed
from dock_helpers import CALLBACK_URL, KEY_ID, SECRET, as_request, make_connector

from kameng.suppliers.base import CallbackRejected
from kameng.types import UpstreamOrderRequest


@pytest.fixture
def order(connector, fake):
    """A direct recharge the upstream has just finished."""
    connector.place_order(UpstreamOrderRequest("D3000", "TOP-30", 1, callback_url=CALLBACK_URL))
    return fake.finish("D3000", "delivered", send=False)


def parse(connector, url, headers, body, method="POST"):
    return connector.parse_callback(as_request(url, headers, body, method))


def rejected(connector, reason, url, headers, body, method="POST"):
    with pytest.raises(CallbackRejected, match=reason):
        parse(connector, url, headers, body, method)


def test_a_signed_callback_reports_the_order(connector, fake, order):
    r = parse(connector, *fake.callback_message(order))
    assert (r.status, r.out_order_no, r.upstream_order_no, str(r.cost)) == ("success", "D3000", "UP00000001",
                                                                            "29.40")


def test_a_card_order_callback_carries_its_keys(connector, fake):
    connector.place_order(UpstreamOrderRequest("D3001", "GC-10", 2, callback_url=CALLBACK_URL))
    r = parse(connector, *fake.callback_message(fake.orders[(KEY_ID, "D3001")]))
    assert r.keys == (("N-GC-10-0", "S-GC-10-0"), ("N-GC-10-1", "S-GC-10-1"))


def test_a_refund_callback_is_failed(connector, fake):
    connector.place_order(UpstreamOrderRequest("D3002", "TOP-30", 1, callback_url=CALLBACK_URL))
    order = fake.finish("D3002", "refunded", send=False)
    assert parse(connector, *fake.callback_message(order)).status == "failed"


def test_an_upper_case_signature_is_the_same_signature(connector, fake, order):
    url, headers, body = fake.callback_message(order)
    headers["X-Kameng-Signature"] = headers["X-Kameng-Signature"].upper()
    assert parse(connector, url, headers, body).status == "success"


def test_a_replay_is_refused(connector, fake, order):
    message = fake.callback_message(order)
    parse(connector, *message)
    rejected(connector, "nonce was used already", *message)
    # a fresh signature of the same news is accepted (the core applies it once)
    assert parse(connector, *fake.callback_message(order)).status == "success"


def test_a_replay_to_another_connection_with_the_same_key_is_refused_too(connector, fake, order):
    message = fake.callback_message(order)
    parse(connector, *message)
    rejected(make_connector(fake), "nonce was used already", *message)


@pytest.mark.parametrize("skew", [-301, 301, -100000])
def test_a_stale_or_future_callback_is_refused(connector, fake, order, skew):
    rejected(connector, "300 s", *fake.callback_message(order, ts=int(time.time()) + skew))


def test_a_callback_for_another_key_is_refused(connector, fake, order):
    fake.add_account("dk_other", "other-secret-0123456789")
    message = fake.callback_message(order, key_id="dk_other", secret="other-secret-0123456789")
    rejected(connector, "another key", *message)


def test_a_callback_signed_with_another_secret_is_refused(connector, fake, order):
    rejected(connector, "bad signature", *fake.callback_message(order, secret=SECRET + "x"))


def test_a_tampered_body_is_refused(connector, fake, order):
    url, headers, body = fake.callback_message(order)
    rejected(connector, "bad signature", url, headers, body.replace(b'"delivered"', b'"refunded"'))
    rejected(connector, "bad signature", url, headers, body + b"\n")
    reformatted = json.dumps(json.loads(body), indent=1).encode()
    rejected(connector, "bad signature", url, headers, reformatted)


def test_the_path_and_query_are_signed(connector, fake, order):
    url, headers, body = fake.callback_message(order)
    rejected(connector, "bad signature", url.replace("/7", "/8"), headers, body)
    rejected(connector, "bad signature", url + "?status=delivered", headers, body)


def test_a_signed_query_is_verified_as_sent(connector, fake, order):
    order["callback_url"] = CALLBACK_URL + "?b=2&a=x%20y"
    assert parse(connector, *fake.callback_message(order)).status == "success"


@pytest.mark.parametrize("header", ["X-Kameng-Key", "X-Kameng-Timestamp", "X-Kameng-Nonce", "X-Kameng-Signature"])
@pytest.mark.parametrize("value", [None, ""])
def test_missing_or_empty_headers_are_refused(connector, fake, order, header, value):
    url, headers, body = fake.callback_message(order)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    rejected(connector, f"missing header {header}", url, headers, body)


def test_an_unsigned_callback_is_refused(connector, fake, order):
    url, _headers, body = fake.callback_message(order)
    rejected(connector, "missing header", url, {"Content-Type": "application/json"}, body)


def test_only_post(connector, fake, order):
    url, headers, _body = fake.callback_message(order)
    rejected(connector, "is a POST", url, headers, b"", method="GET")


def test_a_validly_signed_body_with_a_key_twice_is_refused(connector, order):
    body = (b'{"out_order_no":"D3000","order_no":"UP00000001","status":"failed","amount":"29.40",'
            b'"status":"delivered","keys":[]}')
    rejected(connector, "appears twice", CALLBACK_URL, signed(KEY_ID, SECRET, "POST", CALLBACK_URL, body), body)


@pytest.mark.parametrize("body,reason", [(b"<html>", "not JSON"), (b"[]", "not a JSON object"),
                                         (b'{"out_order_no":"D3000"}', "order_no is missing"),
                                         (b'{"out_order_no":"D3000","order_no":"U1","status":"done","amount":"1"}',
                                          "unknown status")])
def test_a_validly_signed_body_that_is_not_an_order_is_refused(connector, body, reason):
    rejected(connector, reason, CALLBACK_URL, signed(KEY_ID, SECRET, "POST", CALLBACK_URL, body), body)


def test_a_huge_callback_is_refused_before_reading(connector):
    body = b" " * (300 * 1024)
    rejected(connector, "too large", CALLBACK_URL, signed(KEY_ID, SECRET, "POST", CALLBACK_URL, body), body)


def test_a_connection_without_a_secret_refuses_everything(fake, order):
    rejected(make_connector(fake, secret=""), "no key id or secret", *fake.callback_message(order))


def test_the_reply(connector):
    assert connector.callback_ack(True) == (200, "success", "text/plain")
    assert connector.callback_ack(False)[0] == 400


def test_refusal_messages_hold_no_secrets(connector, fake, order):
    url, headers, body = fake.callback_message(order, secret=SECRET + "x")
    with pytest.raises(CallbackRejected) as exc:
        parse(connector, url, headers, body)
    assert SECRET not in str(exc.value) and headers["X-Kameng-Signature"] not in str(exc.value)
