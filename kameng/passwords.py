"""Password hashing with Argon2id (``cryptography``), stored as PHC strings.

Parameters follow OWASP's Argon2id minimum (19 MiB, 2 passes, 1 lane); a hash
made with weaker parameters than the current ones reports ``needs_rehash``.
"""
from __future__ import annotations

import base64
import hmac
import os
import re

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MEMORY_KIB = 19456
ITERATIONS = 2
LANES = 1
_PHC = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)\Z")
MAX_PASSWORD_BYTES = 1024


def _b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, m: int, t: int, p: int, length: int) -> bytes:
    kdf = Argon2id(salt=salt, length=length, iterations=t, lanes=p, memory_cost=m)
    return kdf.derive(password.encode("utf-8")[:MAX_PASSWORD_BYTES])


def hash_password(password: str, memory_kib: int = MEMORY_KIB, iterations: int = ITERATIONS) -> str:
    """A PHC string. Lighter parameters are only for low-value, rate-limited
    secrets (an order's query password), never for account passwords."""
    salt = os.urandom(16)
    digest = _derive(password, salt, memory_kib, iterations, LANES, 32)
    return f"$argon2id$v=19$m={memory_kib},t={iterations},p={LANES}${_b64e(salt)}${_b64e(digest)}"


def verify_password(password: str, encoded: str | None) -> bool:
    """Constant-time check; an empty or malformed hash never verifies."""
    m = _PHC.match(encoded or "")
    if not m:
        return False
    mem, t, p = (int(m.group(i)) for i in (1, 2, 3))
    if mem > 1 << 21 or t > 16 or p > 16:  # refuse absurd costs from a tampered row
        return False
    expected = _b64d(m.group(5))
    actual = _derive(password, _b64d(m.group(4)), mem, t, p, len(expected))
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    m = _PHC.match(encoded or "")
    return not m or (int(m.group(1)), int(m.group(2))) < (MEMORY_KIB, ITERATIONS)


_DUMMY = None


def burn_time(password: str) -> None:
    """Spend the time a real check would take (for unknown accounts)."""
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password("kameng-dummy")
    verify_password(password, _DUMMY)
