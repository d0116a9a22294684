"""The signature scheme, in one place (docs/webhooks.md describes it for receivers).

    X-Kameng-Webhook-Signature: v1=<hex HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")>

``secret`` is the endpoint's secret string as shown in the admin (ASCII,
``whsec_`` included), ``id`` the delivery id (``X-Kameng-Webhook-Id``),
``timestamp`` the unix seconds of this attempt (``X-Kameng-Webhook-Timestamp``)
and ``body`` the request body's exact bytes.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "v1"
SECRET_PREFIX = "whsec_"
HEADER_ID = "X-Kameng-Webhook-Id"
HEADER_TIMESTAMP = "X-Kameng-Webhook-Timestamp"
HEADER_SIGNATURE = "X-Kameng-Webhook-Signature"
#: what a receiver should accept between its clock and the timestamp
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """32 random bytes, hex: ``whsec_`` and 64 hex digits."""
    return SECRET_PREFIX + secrets.token_hex(32)


def signed_payload(delivery_id: str, timestamp: int | str, body: bytes) -> bytes:
    return f"{delivery_id}.{timestamp}.".encode() + body


def sign(secret: str, delivery_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Kameng-Webhook-Signature`` value: ``v1=`` and lowercase hex."""
    mac = hmac.new(secret.encode("utf-8"), signed_payload(delivery_id, timestamp, body), hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(secret: str, headers, body: bytes, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does (also used by the tests' fake receiver): the
    timestamp within ``tolerance`` of ``now``, and one ``v1=`` value of the
    signature header equal, in constant time, to the expected one.
    ``headers`` is a mapping with case-insensitive lookup or plain names."""
    def get(name):
        value = headers.get(name)
        if value is None:
            value = headers.get(name.lower())
        return value if isinstance(value, str) else ""

    delivery_id, timestamp, header = get(HEADER_ID), get(HEADER_TIMESTAMP), get(HEADER_SIGNATURE)
    if not delivery_id or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, delivery_id, timestamp, body)
    ok = False
    for part in header.split(","):
        # compare every candidate (no early exit), each in constant time
        ok |= hmac.compare_digest(part.strip().encode("ascii", "replace"), expected.encode("ascii"))
    return ok
