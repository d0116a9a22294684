"""The sandbox protocol (API.md), checked against a value computed outside
Python (`openssl dgst -sha256 -hmac`), and its pay page."""
import time
from decimal import Decimal

import pytest

from kameng.payments import NotificationRejected
from kameng_sandbox.gateway import SandboxGateway, sign, signed_fields

SECRET = "sandbox-test-secret-0123456789"
KAT_FIELDS = {"amount": "12.50", "attempt_no": "P20261126000000123456789012345678", "status": "paid",
              "timestamp": "1764115200"}
# printf 'amount=12.50&attempt_no=P20261126000000123456789012345678&status=paid&timestamp=1764115200' \
#   | openssl dgst -sha256 -hmac 'sandbox-test-secret-0123456789'
KAT_SIGN = "231635af0f6779d24553f5e090926a76fc79f981c6b30d9f0c008c41b053fe51"


def test_signature_known_answer():
    assert sign(KAT_FIELDS, SECRET) == KAT_SIGN


def test_verify_accepts_the_known_answer():
    gw = SandboxGateway({"secret": SECRET})
    n = gw.verify({**KAT_FIELDS, "sign": KAT_SIGN}, "CNY", now=1764115200 + 299)
    assert n.amount == Decimal("12.50") and n.status == "paid" and n.currency == "CNY"
    assert n.attempt_no == KAT_FIELDS["attempt_no"]


@pytest.mark.parametrize("change,reason", [
    ({"sign": ""}, "missing field sign"),
    ({"sign": KAT_SIGN.upper()}, "malformed sign"),
    ({"sign": "0" * 64}, "bad signature"),
    ({"amount": "12.51"}, "bad signature"),
    ({"extra": "1"}, "unexpected fields"),
])
def test_verify_rejects(change, reason):
    gw = SandboxGateway({"secret": SECRET})
    with pytest.raises(NotificationRejected, match=reason):
        gw.verify({**KAT_FIELDS, "sign": KAT_SIGN, **change}, "CNY", now=1764115200)


def test_verify_rejects_stale_and_future_timestamps():
    gw = SandboxGateway({"secret": SECRET})
    for skew in (301, -301):
        with pytest.raises(NotificationRejected, match="300 s window"):
            gw.verify({**KAT_FIELDS, "sign": KAT_SIGN}, "CNY", now=1764115200 + skew)


@pytest.mark.parametrize("amount", ["1e2", "-1", "NaN", " 1.00", "0x10", "1.001", "1,00"])
def test_verify_rejects_malformed_amounts(amount):
    gw = SandboxGateway({"secret": SECRET})
    fields = signed_fields("P1", amount, "paid", SECRET)
    with pytest.raises(NotificationRejected, match="malformed amount"):
        gw.verify(fields, "CNY")


def test_wrong_key_is_rejected():
    gw = SandboxGateway({"secret": "another-secret-0123456789"})
    with pytest.raises(NotificationRejected, match="bad signature"):
        gw.verify(signed_fields("P1", "1.00", "paid", SECRET, now=time.time()), "CNY")
