"""The docking API's tables (migration 0005).

- :class:`DockKey`: an API credential of one account. The secret is an
  HMAC key, so it cannot be stored as a hash like a bearer token: it is
  encrypted with the shop's key ring (AAD ``dock-key:<key_id>``) and shown
  once, when it is made.
- :class:`DockNonce`: nonces seen in the last ten minutes; the unique
  ``(key_id, nonce)`` refuses a replayed request even from two processes.
- :class:`DockOrder`: a docked order's ``out_order_no`` (unique per account:
  the idempotency key of ``POST /api/v1/dock/orders``) and callback URL.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow

KEY_PREFIX = "dk_"
SECRET_PREFIX = "dks_"


class DockKey(Base):
    __tablename__ = "dock_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    secret: Mapped[str] = mapped_column(Text)  # encrypted with the key ring
    ip_allowlist: Mapped[str] = mapped_column(Text, default="")  # one IP or CIDR a line; empty: any
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class DockNonce(Base):
    __tablename__ = "dock_nonces"
    __table_args__ = (UniqueConstraint("key_id", "nonce", name="uq_dock_nonces_key_nonce"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class DockOrder(Base):
    __tablename__ = "dock_orders"
    __table_args__ = (UniqueConstraint("user_id", "out_order_no", name="uq_dock_orders_user_out_order_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key_id: Mapped[str] = mapped_column(String(32))
    out_order_no: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of what the request asked for: the same out_order_no with another body is a conflict
    request_hash: Mapped[str] = mapped_column(String(64))
    callback_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- keys ------------------------------------------------------------------------------------


def secret_aad(key_id: str) -> str:
    """The AAD that binds an encrypted secret to its key id (a copied
    ciphertext does not decrypt under another key's row)."""
    return f"dock-key:{key_id}"


def new_key_id() -> str:
    """``dk_`` and 24 random letters and digits (~143 bits)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return KEY_PREFIX + "".join(secrets.choice(alphabet) for _ in range(24))


def create_key(db, keyring, user_id: int, name: str = "", ip_allowlist: str = "",
               created_by: str = "") -> tuple[DockKey, str]:
    """A new key for ``user_id``: ``(row, secret)``; the plaintext secret
    exists only in the return value."""
    key_id = new_key_id()
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = DockKey(key_id=key_id, user_id=user_id, name=(name or "")[:100], ip_allowlist=ip_allowlist or "",
                  secret=keyring.encrypt(secret, secret_aad(key_id)), created_by=(created_by or "")[:254],
                  created_at=utcnow())
    db.add(row)
    db.flush()
    return row, secret


def key_secret(keyring, key: DockKey) -> str:
    return keyring.decrypt(key.secret, secret_aad(key.key_id))


def find_key(db, key_id, lock: bool = False) -> DockKey | None:
    if not isinstance(key_id, str) or not key_id.startswith(KEY_PREFIX) or len(key_id) > 32:
        return None
    stmt = select(DockKey).where(DockKey.key_id == key_id)
    return db.scalar(stmt.with_for_update() if lock else stmt)


def keys_of_user(db, user_id: int) -> list[DockKey]:
    return list(db.scalars(select(DockKey).where(DockKey.user_id == user_id).order_by(DockKey.id.desc())))


def request_hash(body: dict) -> str:
    """What "the same order request" means for ``out_order_no``."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


# -- key rotation (``kameng keys rotate``) ----------------------------------------------------


def reencrypt_secrets(session, keyring) -> int:
    """Re-encrypt every dock key secret not under the key ring's current
    key; returns how many. For :mod:`kameng.inventory.rotate`."""
    done = 0
    for key in session.scalars(select(DockKey).with_for_update()):
        if keyring.key_id_of(key.secret) != keyring.current_id:
            key.secret = keyring.encrypt(key_secret(keyring, key), secret_aad(key.key_id))
            done += 1
    return done


def ring_keys_in_use(session, keyring) -> set[str]:
    """The key ring ids dock key secrets are encrypted under (``--drop-old`` must keep them)."""
    return {keyring.key_id_of(s) for s in session.scalars(select(DockKey.secret))}
