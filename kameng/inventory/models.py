"""Card keys and import batches."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow

AVAILABLE, RESERVED, SOLD, VOID = "available", "reserved", "sold", "void"
STATES = (AVAILABLE, RESERVED, SOLD, VOID)


class CardKey(Base):
    """One card key. ``secret`` and ``number`` are ciphertexts (AES-GCM,
    bound to ``card:<sku_id>:<fingerprint>``); ``fingerprint`` is an HMAC of
    the plaintext, unique per SKU, so duplicates are found without
    decrypting. ``key_id`` names the key that encrypted the row."""

    __tablename__ = "card_keys"
    __table_args__ = (
        UniqueConstraint("sku_id", "fingerprint", name="uq_card_keys_sku_fingerprint"),
        Index("ix_card_keys_sku_state", "sku_id", "state", "id"),
        Index("ix_card_keys_state_reserved_until", "state", "reserved_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="RESTRICT"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    number: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(10), default=AVAILABLE)
    order_ref: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    reserved_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("key_imports.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sold_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KeyImport(Base):
    """One import run: what came in and what was skipped, for the admin."""

    __tablename__ = "key_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    total: Mapped[int] = mapped_column(Integer, default=0)  # lines in the upload, when known
    lines: Mapped[int] = mapped_column(Integer, default=0)  # lines read so far
    imported: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
