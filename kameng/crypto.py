"""Encryption of secrets at rest: AES-256-GCM with a key ring read from a
key file outside the database.

The key file has one key a line, ``KEY_ID:BASE64``; the first line is the key
new data is encrypted with, the others still decrypt. Each ciphertext starts
with the id of its key (``KEY_ID$BASE64(nonce || ciphertext)``) so keys can
rotate, and is bound to what it belongs to by associated data (a plugin id, a
row identity), so a ciphertext copied to another row does not decrypt.
"""
from __future__ import annotations

import base64
import os
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_LINE = re.compile(r"^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9_=-]{43,44})$")


class KeyRingError(Exception):
    pass


class DecryptionError(Exception):
    pass


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key_line() -> str:
    kid = secrets.token_hex(4)
    return f"{kid}:{base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def write_key_file(path: str) -> None:
    """Create a key file readable only by its owner (fails if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_key_line() + "\n")


class KeyRing:
    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise KeyRingError("the key file holds no key")
        self._keys = {kid: AESGCM(raw) for kid, raw in keys}
        self.current_id = keys[0][0]

    @classmethod
    def from_file(cls, path: str) -> "KeyRing":
        try:
            with open(path, encoding="ascii") as fh:
                lines = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
        except OSError as exc:
            raise KeyRingError(f"cannot read key file {path}: {exc.strerror}") from None
        keys = []
        for ln in lines:
            m = _LINE.match(ln)
            if not m or len(_b64d(m.group(2))) != 32:
                raise KeyRingError(f"key file {path} has a malformed line")
            keys.append((m.group(1), _b64d(m.group(2))))
        return cls(keys)

    def encrypt(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(12)
        ct = self._keys[self.current_id].encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{self.current_id}${base64.urlsafe_b64encode(nonce + ct).decode()}"

    def key_id_of(self, token: str) -> str:
        return token.split("$", 1)[0]

    def decrypt(self, token: str, aad: str) -> str:
        kid, _, body = token.partition("$")
        aes = self._keys.get(kid)
        if aes is None:
            raise DecryptionError(f"no key {kid!r} in the key file")
        raw = _b64d(body)
        try:
            return aes.decrypt(raw[:12], raw[12:], aad.encode()).decode()
        except (InvalidTag, ValueError):
            raise DecryptionError("ciphertext does not decrypt (wrong key or tampered)") from None
