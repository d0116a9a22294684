"""The gateway's notify reader on its own (no shop): what verifies, what is
refused and why, for V1 (plain and amp_key) and V2, built by the same driver
the conformance kit uses (SECURITY.md B3 #1-#5, #8, #16-#18, #20)."""
from __future__ import annotations

import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from pyramid.request import Request

from kameng.payments import NotificationRejected
from kameng.testing.gateways import MISSING
from kameng_epay.gateway import EpayGateway
from kameng_epay import protocol
from kameng_epay.testing import TEST_KEY, EpayDriver, key_pem

from epay_helpers import FLAVOUR_IDS, FLAVOURS


@pytest.fixture(params=FLAVOURS, ids=FLAVOUR_IDS)
def driver(request):
    return EpayDriver(*request.param)


def as_request(n) -> Request:
    url = n.path + ("?" + urlencode(n.query) if n.query else "")
    if n.form or n.body is not None:
        body = n.body if n.body is not None else urlencode(n.form).encode()
        return Request.blank(url, method="POST", body=body,
                             content_type=n.content_type or "application/x-www-form-urlencoded")
    return Request.blank(url)


def parse(driver, n, **settings):
    return EpayGateway({**driver.settings(), **settings}).parse_notification(as_request(n))


def rejected(driver, n, reason, **settings):
    with pytest.raises(NotificationRejected, match=reason):
        parse(driver, n, **settings)


def notify(driver, **kw):
    return driver.notify("P26112600000000000000000000000001", kw.pop("amount", "1.00"), trade_no="2026112612345",
                         **kw)


def test_a_signed_notify_is_reported_as_it_arrived(driver):
    n = parse(driver, notify(driver, extra={"param": "x y", "buyer": "b@example.com"}))
    assert (n.attempt_no, n.provider_trade_no, n.amount, n.currency, n.status, n.merchant_id) == (
        "P26112600000000000000000000000001", "2026112612345", Decimal("1.00"), "CNY", "paid", "1001")
    assert n.raw["param"] == "x y" and n.raw["buyer"] == "b@example.com" and "sign" in n.raw


@pytest.mark.parametrize("amount", ["1.00", "1", "1.0", "12.5", "0.01"])
def test_money_is_read_as_sent(driver, amount):
    assert parse(driver, notify(driver, amount=amount)).amount == Decimal(amount)


@pytest.mark.parametrize("status", ["pending", "failed", "TRADE_CLOSED", "TRADE_FINISHED", "trade_success"])
def test_only_trade_success_is_paid(driver, status):
    assert parse(driver, notify(driver, status=status)).status == "pending"


def test_a_post_form_notify_is_accepted_too(driver):
    n = notify(driver)
    assert parse(driver, n.with_(method="POST", query=(), form=n.query)).status == "paid"


def test_a_json_body_is_refused(driver):
    n = notify(driver)
    rejected(driver, n.with_(method="POST", query=(), body=b'{"sign": true}', content_type="application/json"),
             "not a form")


@pytest.mark.parametrize("value,reason", [(MISSING, "missing sign"), ("", "missing sign"),
                                          (["a", "b"], "more than once"), (True, "bad signature"),
                                          (12345, "bad signature")])
def test_bad_signs_are_refused(driver, value, reason):
    rejected(driver, driver.with_signature(notify(driver), value), reason)


def test_an_array_sign_is_refused():
    driver = EpayDriver("1")
    n = notify(driver)
    rejected(driver, n.with_(query=tuple((k + "[]" if k == "sign" else k, v) for k, v in n.query)), "field name")


def test_the_wrong_key_is_refused(driver):
    rejected(driver, notify(driver, wrong_key=True), "bad signature")


def test_an_unsigned_extra_field_is_refused_and_a_signed_one_verifies(driver):
    rejected(driver, driver.with_unsigned_field(notify(driver), "api_trade_no", "X1"), "bad signature")
    assert parse(driver, notify(driver, extra={"api_trade_no": "X1", "future_field": "y"})).status == "paid"


def test_parameter_pollution_is_refused(driver):
    rejected(driver, driver.with_duplicate(notify(driver)), "more than once")
    n = notify(driver)
    rejected(driver, n.with_(method="POST", form=(("money", "1.00"),)), "more than once")


def test_empty_required_fields_are_refused(driver):
    for name, n in driver.empty_fields("P1", "1.00", "T1"):
        rejected(driver, n, f"missing field {name}")


def test_malformed_amounts_are_refused_even_when_signed(driver):
    for amount in driver.malformed_amounts():
        with pytest.raises(NotificationRejected):
            parse(driver, notify(driver, amount=amount))


def test_uppercase_md5_is_accepted():
    driver = EpayDriver("1")
    n = notify(driver)
    upper = n.with_(query=tuple((k, v.upper() if k == "sign" else v) for k, v in n.query))
    assert parse(driver, upper).status == "paid"


@pytest.mark.parametrize("skew", [330, -330, 3600])
def test_v2_refuses_stale_and_future_timestamps(skew):
    driver = EpayDriver("2")
    rejected(driver, notify(driver, timestamp=int(time.time()) - skew), "300 s window")


@pytest.mark.parametrize("skew", [270, -270])
def test_v2_takes_a_timestamp_within_300_seconds(skew):
    driver = EpayDriver("2")
    assert parse(driver, notify(driver, timestamp=int(time.time()) - skew)).status == "paid"


def test_v2_refuses_a_notify_without_timestamp():
    driver = EpayDriver("2")
    fields = {**driver.fields("P1", "1.00", "T1"), "sign_type": "RSA"}
    fields["sign"] = protocol.rsa_sign(fields, protocol.load_private_key(key_pem("platform_private")))
    rejected(driver, driver.request(fields), "timestamp")


def test_v2_takes_the_cashiers_md5_notify_only_with_the_md5_key():
    v1, v2 = EpayDriver("1"), EpayDriver("2")
    md5_notify = notify(v1)  # what the platform sends for a submit.php trade
    rejected(v2, md5_notify, "no MD5 key")
    assert parse(v2, md5_notify, key=TEST_KEY).status == "paid"


def test_v1_refuses_an_rsa_notify():
    v1, v2 = EpayDriver("1"), EpayDriver("2")
    rejected(v1, notify(v2), "version 1")


def test_an_unknown_sign_type_is_refused(driver):
    n = notify(driver)
    rejected(driver, n.with_(query=tuple((k, "SHA1" if k == "sign_type" else v) for k, v in n.query)), "sign_type")


def test_an_unconfigured_gateway_refuses_everything():
    driver = EpayDriver("1")
    with pytest.raises(NotificationRejected, match="not configured"):
        EpayGateway({}).parse_notification(as_request(notify(driver)))


def test_the_reply_is_what_the_platform_looks_for():
    gw = EpayGateway({})
    assert gw.ack(True) == (200, "success", "text/plain")
    status, body, _ = gw.ack(False)
    assert not EpayDriver().accepted(status, body.encode())
