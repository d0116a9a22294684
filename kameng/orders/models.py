"""Orders, their audit trail, and refunds."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow


class Order(Base):
    """One purchase of one SKU. Money in minor units; the price steps that
    led to ``amount`` are kept in ``pricing`` (JSON)."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_status_expires", "status", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_no: Mapped[str] = mapped_column(String(24), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True,
                                                index=True)
    contact: Mapped[str] = mapped_column(String(254), default="", index=True)
    query_password_hash: Mapped[str] = mapped_column(String(255), default="")
    # what was bought, copied so that later catalog edits do not rewrite history
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"), nullable=True)
    sku_id: Mapped[int | None] = mapped_column(ForeignKey("skus.id", ondelete="SET NULL"), nullable=True,
                                               index=True)
    product_type: Mapped[str] = mapped_column(String(20))
    #: ``stock``: from this shop's keys or stock count; ``upstream``: placed at a supplier connection
    fulfilment: Mapped[str] = mapped_column(String(16), default="stock")
    product_name: Mapped[str] = mapped_column(String(200))
    sku_code: Mapped[str] = mapped_column(String(64))
    sku_name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    stock_held: Mapped[int] = mapped_column(Integer, default=0)  # units taken from a counted (non-key) stock
    unit_price: Mapped[int] = mapped_column(Integer)
    subtotal: Mapped[int] = mapped_column(Integer)
    discount: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    pricing: Mapped[str] = mapped_column(Text, default="[]")
    recharge: Mapped[str] = mapped_column(Text, default="{}")
    payment_method: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    paid_attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the attempt that paid it
    # scoped idempotency key ("u<id>:" or "g:" + the client's key) and the request it stood for
    idempotency_key: Mapped[str | None] = mapped_column(String(160), unique=True, nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64), default="")
    held: Mapped[str] = mapped_column(String(255), default="")  # anti-fraud review: why delivery waits
    failure_reason: Mapped[str] = mapped_column(String(255), default="")
    refunded_amount: Mapped[int] = mapped_column(Integer, default=0)
    delivery_note: Mapped[str | None] = mapped_column(Text, nullable=True)  # manual delivery, encrypted
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OrderEvent(Base):
    """The order's audit trail: every transition and every notable action,
    with time, actor and reason. Append-only."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(254), default="system")
    kind: Mapped[str] = mapped_column(String(32))  # status | payment | delivery | refund | note
    from_status: Mapped[str] = mapped_column(String(16), default="")
    to_status: Mapped[str] = mapped_column(String(16), default="")
    message: Mapped[str] = mapped_column(String(500), default="")  # in English, interpolated
    i18n: Mapped[str | None] = mapped_column(Text, nullable=True)  # {"msgid", "mapping"} to translate it again
    public: Mapped[bool] = mapped_column(default=True)  # shown to the buyer


class Refund(Base):
    """Money going back. ``refund_no`` is written before any gateway call,
    so a retried call reuses it and the gateway refunds once."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    refund_no: Mapped[str] = mapped_column(String(32), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"), index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("payment_attempts.id", ondelete="SET NULL"),
                                                   nullable=True)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    destination: Mapped[str] = mapped_column(String(16))  # balance | gateway | manual
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | succeeded | failed
    reason: Mapped[str] = mapped_column(String(255), default="")
    provider_refund_no: Mapped[str] = mapped_column(String(128), default="")
    error: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(254), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
