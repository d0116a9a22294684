"""An order's query password is kept as a keyed hash (kameng/orders/querypass.py)."""
from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kameng import passwords
from kameng.crypto import KeyRing
from kameng.orders.querypass import hash_query_password, verify_query_password

FP_KEY = bytes(range(32))


def ring(fp=FP_KEY) -> KeyRing:
    return KeyRing([("k1", bytes(32))], fingerprint_key=fp)


def test_the_hash_is_hmac_sha256_under_a_key_derived_from_the_key_file():
    stored = hash_query_password(ring(), "pass1234")
    prefix, salt_b64, mac_b64 = stored.split("$")
    assert prefix == "qp1"
    salt = base64.b64decode(salt_b64)
    # computed here from the definitions, not with the module's own helpers
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kameng order query password").derive(FP_KEY)
    assert base64.b64decode(mac_b64) == hmac.new(key, salt + b"pass1234", hashlib.sha256).digest()
    assert len(salt) == 16 and hash_query_password(ring(), "pass1234") != stored  # salted


def test_right_wrong_tampered_and_foreign_key_file():
    stored = hash_query_password(ring(), "pass1234")
    assert verify_query_password(ring(), "pass1234", stored)
    assert not verify_query_password(ring(), "pass1235", stored)
    assert not verify_query_password(ring(), "", stored)
    # the database alone is not enough: another shop's key file does not verify it
    assert not verify_query_password(ring(fp=bytes(32)), "pass1234", stored)
    prefix, salt_b64, mac_b64 = stored.split("$")
    flipped = base64.b64encode(bytes([base64.b64decode(mac_b64)[0] ^ 1]) + base64.b64decode(mac_b64)[1:]).decode()
    for bad in (f"{prefix}${salt_b64}${flipped}", f"{prefix}${salt_b64}", f"{prefix}$!!$!!", "qp1$", "", None,
                f"{prefix}${salt_b64}${mac_b64[:-4]}"):
        assert not verify_query_password(ring(), "pass1234", bad), bad


def test_orders_placed_before_keep_their_argon2id_hashes():
    old = passwords.hash_password("pass1234", memory_kib=8192, iterations=1)
    assert verify_query_password(ring(), "pass1234", old)
    assert not verify_query_password(ring(), "wrong-one", old)
