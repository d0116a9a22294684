"""Passphrase encryption of a backup, streamed in chunks.

The format (all integers big-endian)::

    header   = MAGIC (8 bytes, "KMGBAK\\x00\\x01")
               log2_n (1) | r (1) | p (1)        scrypt parameters
               salt (16)                         random, per file
               chunk_size (4)                    plaintext bytes per chunk
    chunk i  = AES-256-GCM(key, nonce_i, plaintext_i, aad_i) (ciphertext and 16-byte tag)
    key      = scrypt(passphrase UTF-8, salt, n=2**log2_n, r, p, 32 bytes)
    nonce_i  = i as 12 bytes (i = 0, 1, 2, …)
    aad_i    = header | last_i, last_i one byte: 1 for the final chunk, else 0

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the
last holds fewer (possibly none). That is the STREAM construction: the key
is fresh for each file (random salt), so a counter nonce never repeats; a
chunk cannot be moved (its number is its nonce), and a file cut short after
any chunk is refused, because no chunk but the last decrypts with the
final flag. A wrong passphrase fails on the first chunk.
"""
from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kameng.backup import BackupError

MAGIC = b"KMGBAK\x00\x01"
CHUNK_SIZE = 64 * 1024
TAG = 16
#: 2**17 × r 8 = 128 MiB and about half a second per derivation
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 17, 8, 1
_HEADER = struct.Struct(">8sBBB16sI")
HEADER_SIZE = _HEADER.size  # 31
#: what a reader accepts, so a forged header cannot ask for gigabytes of memory
MAX_LOG2_N, MAX_R, MAX_P, MAX_CHUNK = 20, 32, 16, 16 * 1024 * 1024
MIN_PASSPHRASE = 10


class BackupCryptoError(BackupError):
    pass


def is_encrypted(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupCryptoError(f"the passphrase must be at least {MIN_PASSPHRASE} characters long")


def _derive(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> AESGCM:
    key = Scrypt(salt=salt, length=32, n=2 ** log2_n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return AESGCM(key)


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


class EncryptWriter:
    """A write-only file object: what is written to it goes to ``raw`` encrypted."""

    def __init__(self, raw, passphrase: str, chunk_size: int = CHUNK_SIZE,
                 log2_n: int = SCRYPT_LOG2_N, r: int = SCRYPT_R, p: int = SCRYPT_P):
        self.raw, self.chunk_size = raw, chunk_size
        self.header = _HEADER.pack(MAGIC, log2_n, r, p, os.urandom(16), chunk_size)
        self._aead = _derive(passphrase, self.header[11:27], log2_n, r, p)
        self._buf = bytearray()
        self._counter = 0
        self.closed = False
        raw.write(self.header)

    def _emit(self, data: bytes, last: bool) -> None:
        aad = self.header + (b"\x01" if last else b"\x00")
        self.raw.write(self._aead.encrypt(_nonce(self._counter), bytes(data), aad))
        self._counter += 1

    def write(self, data) -> int:
        self._buf += data
        while len(self._buf) >= self.chunk_size:
            self._emit(self._buf[:self.chunk_size], last=False)
            del self._buf[:self.chunk_size]
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        """Write the final chunk (the rest, shorter than a chunk). Does not close ``raw``."""
        if not self.closed:
            self._emit(self._buf, last=True)
            self._buf = bytearray()
            self.closed = True


class DecryptReader:
    """A read-only file object over an encrypted backup: gives the plaintext,
    each chunk only once it is authenticated. ``read`` raises
    :class:`BackupCryptoError` on a wrong passphrase, a changed byte, or a
    file cut short; ``finished`` is true once the final chunk was read."""

    def __init__(self, raw, passphrase: str):
        self.raw = raw
        header = raw.read(_HEADER.size)
        if len(header) != _HEADER.size or header[:8] != MAGIC:
            raise BackupCryptoError("not an encrypted kameng backup, or its header is damaged")
        _magic, log2_n, r, p, salt, chunk_size = _HEADER.unpack(header)
        if not (10 <= log2_n <= MAX_LOG2_N and 1 <= r <= MAX_R and 1 <= p <= MAX_P and 1 <= chunk_size <= MAX_CHUNK):
            raise BackupCryptoError("the backup's encryption header has parameters this version does not accept")
        self.header, self.chunk_size = header, chunk_size
        self._aead = _derive(passphrase, salt, log2_n, r, p)
        self._counter = 0
        self._buf = b""
        self._pos = 0
        self.finished = False

    def _next_chunk(self) -> None:
        want = self.chunk_size + TAG
        data = b""
        while len(data) < want:  # a pipe may give less than asked
            more = self.raw.read(want - len(data))
            if not more:
                break
            data += more
        last = len(data) < want
        aad = self.header + (b"\x01" if last else b"\x00")
        try:
            plain = self._aead.decrypt(_nonce(self._counter), data, aad)
        except (InvalidTag, ValueError):
            if self._counter == 0:
                raise BackupCryptoError("cannot decrypt the backup: wrong passphrase, or the file is damaged") from None
            raise BackupCryptoError("the backup is damaged or cut short (a part does not decrypt)") from None
        self._counter += 1
        if last:
            if self.raw.read(1):
                raise BackupCryptoError("the backup has unexpected data after its end")
            self.finished = True
        self._buf, self._pos = plain, 0

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if self._pos >= len(self._buf):
                if self.finished:
                    break
                self._next_chunk()
                continue
            take = len(self._buf) - self._pos if n < 0 else min(n - len(out), len(self._buf) - self._pos)
            out += self._buf[self._pos:self._pos + take]
            self._pos += take
        return bytes(out)

    def drain(self) -> None:
        """Read (and authenticate) to the end."""
        while not self.finished:
            self._pos = len(self._buf)
            self._next_chunk()
