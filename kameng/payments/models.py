"""Payment attempts and the log of every notify received."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow

PENDING, PAID, FAILED, CLOSED = "pending", "paid", "failed", "closed"


class PaymentAttempt(Base):
    """One try at paying: its ``attempt_no`` is the merchant order number the
    gateway sees. Paying again (another gateway, another amount) is a new row."""

    __tablename__ = "payment_attempts"
    __table_args__ = (UniqueConstraint("gateway", "provider_trade_no", name="uq_payment_attempts_provider_trade"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt_no: Mapped[str] = mapped_column(String(32), unique=True)
    gateway: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    purpose: Mapped[str] = mapped_column(String(32), default="order")  # order | topup | gateway_test
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"), nullable=True,
                                                 index=True)
    # a top-up: whose balance it fills
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    subject: Mapped[str] = mapped_column(String(255), default="")
    amount: Mapped[int] = mapped_column(Integer)  # minor units
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    provider_trade_no: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    #: what the provider answered when the payment was created (a pay URL,
    #: a QR text), kept so a reload shows the same thing without asking again
    action: Mapped[str | None] = mapped_column(Text, nullable=True)


class PaymentNotice(Base):
    """Every notify received, verified or not, redacted (no signatures, no keys)."""

    __tablename__ = "payment_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    gateway: Mapped[str] = mapped_column(String(64))
    attempt_no: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(255), default="")
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    payload: Mapped[str] = mapped_column(Text, default="{}")
