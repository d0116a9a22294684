"""The simulated upstream's signed callbacks: sent when a recharge finishes,
verified by ``parse_callback`` over the raw body, refused when forged,
altered, stale or signed with another secret."""
import json
import time
from decimal import Decimal

import pytest
from pyramid.request import Request

from kameng.suppliers.base import CallbackRejected
from kameng.types import UpstreamOrderRequest, UpstreamResult
from kameng_sandbox_supplier import protocol, simulator

SECRET = "sandbox-supplier-test-secret-0123"
KAT_RESULT = UpstreamResult("success", "K20261126000000123456", "SBX00000000000000AB", (), 1, Decimal("48.30"),
                            "simulated recharge of 138****8000 done")
KAT_BODY = (b'{"cost":"48.30","delivered":1,"keys":[],"message":"simulated recharge of 138****8000 done",'
            b'"out_order_no":"K20261126000000123456","status":"success","timestamp":1764115200,'
            b'"upstream_order_no":"SBX00000000000000AB"}')
# printf '%s' "$KAT_BODY" | openssl dgst -sha256 -hmac 'sandbox-supplier-test-secret-0123'
KAT_SIGN = "2e8fcb96a45db6df2a52ea1ce4760456f82989e424203d68a35cce7a1fd7a027"


def callback_request(body: bytes, signature: str | None, method: str = "POST") -> Request:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[protocol.SIGNATURE_HEADER] = signature
    return Request.blank("/supplier/callback/1", method=method, body=body, headers=headers)


def signed(result: UpstreamResult = KAT_RESULT, secret: str = SECRET, now: float | None = None):
    body = protocol.callback_body(result, now=now if now is not None else time.time())
    return body, protocol.sign(body, secret)


def recharge(no="R1", **kw):
    return UpstreamOrderRequest(out_order_no=no, sku="SBX-CMCC-50", quantity=1, recharge={"phone": "13800138000"},
                                **kw)


def test_body_and_signature_known_answer():
    assert protocol.callback_body(KAT_RESULT, now=1764115200) == KAT_BODY
    assert protocol.sign(KAT_BODY, SECRET) == KAT_SIGN
    assert protocol.verify_callback(KAT_BODY, KAT_SIGN, SECRET, now=1764115200 + 300) == KAT_RESULT


def test_a_finished_recharge_calls_back_signed(connector, receiver):
    r = receiver()
    c = connector(seed="cb", processing_seconds=0)
    assert c.place_order(recharge(callback_url=r.url)).status == "processing"
    ((path, headers, body),) = r.wait_for(1)
    assert path == "/supplier/callback/1" and headers["content-type"] == "application/json"
    result = c.parse_callback(callback_request(body, headers[protocol.SIGNATURE_HEADER.lower()]))
    assert result == c.query_order("R1")
    assert result.status == "success" and result.out_order_no == "R1" and result.delivered == 1


def test_a_failed_recharge_calls_back_failed(connector, receiver):
    r = receiver()
    c = connector(seed="cbfail", processing_seconds=0, failure_rate=100)
    c.place_order(recharge(callback_url=r.url))
    ((_path, headers, body),) = r.wait_for(1)
    result = c.parse_callback(callback_request(body, headers[protocol.SIGNATURE_HEADER.lower()]))
    assert result.status == "failed" and result.cost is None
    assert c.balance() == "1000000.00"


def test_a_refused_callback_is_sent_again(connector, receiver, monkeypatch):
    monkeypatch.setattr(simulator, "CALLBACK_RETRY_DELAYS", (0.0, 0.0))
    r = receiver(statuses=[503, 500])
    connector(seed="cbretry", processing_seconds=0).place_order(recharge(callback_url=r.url))
    calls = r.wait_for(3)
    assert len({body for _p, _h, body in calls}) == 1  # the same callback each time


def test_no_callback_without_a_url_or_when_switched_off(connector, loopback):
    connector(seed="quiet", processing_seconds=0).place_order(recharge())
    connector(seed="quiet", processing_seconds=0, poll_only=True).place_order(
        recharge("R2", callback_url="http://127.0.0.1:9/supplier/callback/1"))
    assert simulator.upstream("quiet").timers == []


def test_card_orders_need_no_callback(connector, loopback):
    result = connector(seed="cards").place_order(UpstreamOrderRequest(
        "K1", "SBX-STEAM-50", 1, callback_url="http://127.0.0.1:9/supplier/callback/1"))
    assert result.status == "success" and simulator.upstream("cards").timers == []


def test_a_replayed_callback_reports_the_same_thing(connector):
    """The connector keeps no state: a replay inside the window verifies and
    says exactly what the original said (the core's terminal states are
    sticky, so it changes nothing), and a replay outside it is refused."""
    c = connector()
    now = time.time()
    body, sign = signed(now=now)
    first = c.parse_callback(callback_request(body, sign))
    assert c.parse_callback(callback_request(body, sign)) == first
    with pytest.raises(CallbackRejected, match="300 s window"):
        protocol.verify_callback(body, sign, SECRET, now=now + 301)
    # replayed at another connection (another secret): refused
    with pytest.raises(CallbackRejected, match="bad signature"):
        connector(secret="another-connection-secret-987").parse_callback(callback_request(body, sign))


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_stale_and_future_callbacks_are_refused(connector, skew):
    body, sign = signed(now=time.time() + skew)
    with pytest.raises(CallbackRejected, match="300 s window"):
        connector().parse_callback(callback_request(body, sign))


def test_a_callback_just_inside_the_window_is_accepted(connector):
    body, sign = signed(now=time.time() - 290)
    assert connector().parse_callback(callback_request(body, sign)) == KAT_RESULT


def _forge(body: bytes, **changes) -> bytes:
    data = json.loads(body)
    data.update(changes)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def test_forged_callbacks_are_refused(connector):
    c = connector()
    body, sign = signed()
    for forged in (_forge(body, status="failed"), _forge(body, out_order_no="K999"), body + b" ", body[:-1]):
        with pytest.raises(CallbackRejected, match="bad signature"):
            c.parse_callback(callback_request(forged, sign))
    with pytest.raises(CallbackRejected, match="bad signature"):
        c.parse_callback(callback_request(body, protocol.sign(body, "a-guessed-secret-0000")))


@pytest.mark.parametrize("signature,reason", [(None, "missing signature"), ("", "missing signature"),
                                              ("0" * 63, "malformed signature"), ("zz" * 32, "malformed signature")])
def test_unsigned_callbacks_are_refused(connector, signature, reason):
    body, _sign = signed()
    with pytest.raises(CallbackRejected, match=reason):
        connector().parse_callback(callback_request(body, signature))


def test_an_uppercase_signature_is_refused(connector):
    body, sign = signed()
    with pytest.raises(CallbackRejected, match="malformed signature"):
        connector().parse_callback(callback_request(body, sign.upper()))


def test_a_connection_without_a_secret_refuses_everything(connector):
    body, sign = signed(secret="")  # signed with the empty key
    for secret in ("", None):
        c = connector(secret=secret)
        with pytest.raises(CallbackRejected, match="no secret"):
            c.parse_callback(callback_request(body, sign))


def test_callbacks_come_by_post(connector):
    body, sign = signed()
    with pytest.raises(CallbackRejected, match="POST"):
        connector().parse_callback(callback_request(body, sign, method="PUT"))


def _signed_raw(text: str) -> tuple[bytes, str]:
    body = text.encode()
    return body, protocol.sign(body, SECRET)


def _fields(**changes) -> dict:
    data = json.loads(protocol.callback_body(KAT_RESULT, now=time.time()))
    data.update(changes)
    return data


def _changed(**changes):
    return lambda data: {**data, **changes}


# each case changes a callback made when the test runs: a timestamp taken at
# collection would be outside the 300 s window by the time a long suite gets here
@pytest.mark.parametrize("change,reason", [
    (_changed(extra=1), "unexpected or missing fields"),
    (lambda data: {k: v for k, v in data.items() if k != "cost"}, "unexpected or missing fields"),
    (_changed(status="paid"), "unknown status"),
    (_changed(timestamp="1764115200"), "malformed timestamp"),
    (_changed(timestamp=True), "malformed timestamp"),
    (_changed(out_order_no=""), "malformed out_order_no"),
    (_changed(out_order_no="K 1"), "malformed out_order_no"),
    (_changed(cost="1e3"), "malformed cost"),
    (_changed(cost=48.3), "malformed cost"),
    (_changed(delivered=-1), "malformed delivered"),
    (_changed(keys=[{"secret": ""}]), "malformed keys"),
    (_changed(keys="SANDBOX-AAAA"), "malformed keys"),
    (_changed(message=7), "malformed message"),
])
def test_malformed_but_signed_callbacks_are_refused(connector, change, reason):
    body, sign = _signed_raw(json.dumps(change(_fields())))
    with pytest.raises(CallbackRejected, match=reason):
        connector().parse_callback(callback_request(body, sign))


def test_a_key_sent_twice_is_refused_even_when_signed(connector):
    text = protocol.callback_body(KAT_RESULT, now=time.time()).decode()
    body, sign = _signed_raw(text[:-1] + ',"status":"failed"}')
    with pytest.raises(CallbackRejected, match="twice"):
        connector().parse_callback(callback_request(body, sign))


def test_callbacks_carry_keys_when_there_are_keys(connector):
    result = UpstreamResult("partial", "K1", "SBX1", ((None, "SANDBOX-AAAA-BBBB-CCCC"), ("SBX1", "SANDBOX-X")), 2,
                            Decimal("10.00"), "")
    body, sign = signed(result)
    assert connector().parse_callback(callback_request(body, sign)) == result
