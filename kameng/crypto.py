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
import hashlib
import hmac
import os
import re
import secrets
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_LINE = re.compile(r"^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9_=-]{43,44})\Z")


class KeyRingError(Exception):
    pass


class DecryptionError(Exception):
    pass


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key_line() -> str:
    kid = secrets.token_hex(4)
    return f"{kid}:{base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


FINGERPRINT_ID = "fp"


def new_fingerprint_line() -> str:
    return f"{FINGERPRINT_ID}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


def write_key_file(path: str) -> None:
    """Create a key file readable only by its owner (fails if it exists):
    one encryption key and the fingerprint (HMAC) key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_key_line() + "\n" + new_fingerprint_line() + "\n")


def replace_key_file(path: str, lines: list[str]) -> None:
    """Write a key file atomically (same folder, mode 0600, then rename)."""
    tmp = f"{path}.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class KeyRing:
    """The encryption keys (the first one encrypts) and the fingerprint key.

    A key file without an ``fp:`` line (written before fingerprints existed)
    derives its fingerprint key from its oldest key, which ``kameng keys
    rotate`` then writes out explicitly so it never changes.
    """

    def __init__(self, keys: list[tuple[str, bytes]], fingerprint_key: bytes | None = None, path: str | None = None):
        if not keys:
            raise KeyRingError("the key file holds no key")
        self._raw = dict(keys)
        self._keys = {kid: AESGCM(raw) for kid, raw in keys}
        self.current_id = keys[0][0]
        self.key_ids = [kid for kid, _ in keys]
        self.path = path
        self._mtime = os.stat(path).st_mtime_ns if path else None
        self._checked = time.monotonic()
        if fingerprint_key is None:
            fingerprint_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                   info=b"kameng card-key fingerprint").derive(keys[-1][1])
        self._fp_key = fingerprint_key

    def fingerprint(self, text: str) -> str:
        """Keyed hash of a secret: equal secrets, equal fingerprints; no
        way back to the secret without the key file."""
        return hmac.new(self._fp_key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def mac_key(self, purpose: str) -> bytes:
        """A key for keyed hashes of one kind (``purpose``), derived from the
        fingerprint key: it lives only in the key file and never changes."""
        cache = self.__dict__.setdefault("_mac_keys", {})
        if purpose not in cache:
            cache[purpose] = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                  info=b"kameng " + purpose.encode()).derive(self._fp_key)
        return cache[purpose]

    def lines(self) -> list[str]:
        """The key file's lines for this ring (encryption keys, then fp)."""
        enc = [f"{kid}:{base64.urlsafe_b64encode(self._raw[kid]).decode()}" for kid in self.key_ids]
        return enc + [f"{FINGERPRINT_ID}:{base64.urlsafe_b64encode(self._fp_key).decode()}"]

    def reload(self) -> None:
        """Pick up keys another process added (``kameng keys rotate``)."""
        if self.path:
            fresh = KeyRing.from_file(self.path)
            self.__dict__.update(fresh.__dict__)

    @classmethod
    def from_file(cls, path: str) -> "KeyRing":
        try:
            with open(path, encoding="ascii") as fh:
                lines = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
        except OSError as exc:
            raise KeyRingError(f"cannot read key file {path}: {exc.strerror}") from None
        keys, fp = [], None
        for ln in lines:
            m = _LINE.match(ln)
            if not m or len(_b64d(m.group(2))) != 32:
                raise KeyRingError(f"key file {path} has a malformed line")
            if m.group(1) == FINGERPRINT_ID:
                fp = _b64d(m.group(2))
            else:
                keys.append((m.group(1), _b64d(m.group(2))))
        return cls(keys, fp, path)

    def _maybe_reload(self) -> None:
        """At most once a second, notice a key file rewritten by ``kameng
        keys rotate`` and start encrypting under its new key."""
        now = time.monotonic()
        if not self.path or now - self._checked < 1.0:
            return
        self._checked = now
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return
        if mtime != self._mtime:
            self.reload()

    def encrypt(self, plaintext: str, aad: str) -> str:
        self._maybe_reload()
        nonce = os.urandom(12)
        ct = self._keys[self.current_id].encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{self.current_id}${base64.urlsafe_b64encode(nonce + ct).decode()}"

    def key_id_of(self, token: str) -> str:
        return token.split("$", 1)[0]

    def decrypt(self, token: str, aad: str) -> str:
        kid, _, body = token.partition("$")
        aes = self._keys.get(kid)
        if aes is None and self.path:
            self.reload()  # rotated by another process since we started
            aes = self._keys.get(kid)
        if aes is None:
            raise DecryptionError(f"no key {kid!r} in the key file")
        raw = _b64d(body)
        try:
            return aes.decrypt(raw[:12], raw[12:], aad.encode()).decode()
        except (InvalidTag, ValueError):
            raise DecryptionError("ciphertext does not decrypt (wrong key or tampered)") from None
