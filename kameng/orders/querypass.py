"""An order's query password: stored as a keyed hash, checked in constant time.

A guest's query password opens one order's card keys, and nothing else. It
is stored as ``qp1$SALT$HMAC-SHA256(key, SALT ‖ password)``, with a key
derived from the key file (:meth:`KeyRing.mac_key`). A stolen database alone
then gives no way to test guesses offline, and online guesses are rate
limited per address and per order (:mod:`kameng.orders.access`). Whoever
also holds the key file can decrypt the card keys directly, so a slow
password hash would protect nothing more there, while it cost every guest
order about 17 ms of CPU with the interpreter lock held (Argon2id in
``cryptography`` does not release it): a fifth of a core at 10 orders/s.
Account passwords stay Argon2id (:mod:`kameng.passwords`).

Orders placed before this scheme keep their Argon2id hashes, which still verify.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

from kameng import passwords

PREFIX = "qp1$"
PURPOSE = "order query password"


def _mac(keyring, salt: bytes, password: str) -> bytes:
    data = salt + password.encode("utf-8")[:passwords.MAX_PASSWORD_BYTES]
    return hmac.new(keyring.mac_key(PURPOSE), data, hashlib.sha256).digest()


def hash_query_password(keyring, password: str) -> str:
    salt = os.urandom(16)
    return PREFIX + base64.b64encode(salt).decode() + "$" + base64.b64encode(_mac(keyring, salt, password)).decode()


def verify_query_password(keyring, password: str, stored: str | None) -> bool:
    """Whether ``password`` opens ``stored``; an empty or malformed hash never does."""
    stored = stored or ""
    if not stored.startswith(PREFIX):
        return passwords.verify_password(password, stored)  # an older order's Argon2id hash
    try:
        salt_b64, mac_b64 = stored[len(PREFIX):].split("$")
        salt, expected = base64.b64decode(salt_b64, validate=True), base64.b64decode(mac_b64, validate=True)
    except ValueError:
        return False
    return len(expected) == 32 and hmac.compare_digest(_mac(keyring, salt, password), expected)
