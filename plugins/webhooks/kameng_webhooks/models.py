"""The plugin's tables: endpoints, deliveries (one per event and endpoint,
with the exact body every attempt sends) and attempts (the delivery log).

Their own MetaData with the core's naming convention; the migration in
``migrations/`` creates the same tables on every database."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kameng.db import NAMING_CONVENTION, UTCDateTime, utcnow

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Endpoint(Base):
    __tablename__ = "webhooks_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(1000))
    description: Mapped[str] = mapped_column(String(200), default="")
    #: the subscribed event patterns, space-separated (``order.* stock.low``)
    events: Mapped[str] = mapped_column(String(1000), default="")
    #: the signing secret, encrypted with the shop's key ring (``webhooks:endpoint:<id>``)
    secret: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    secret_rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def event_list(self) -> list[str]:
        return self.events.split()


class Delivery(Base):
    """One event for one endpoint. ``body`` is serialised once: every
    attempt and every resend sends exactly these bytes."""

    __tablename__ = "webhooks_deliveries"
    __table_args__ = (
        Index("ix_webhooks_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhooks_deliveries_status_id", "status", "id"),
        Index("ix_webhooks_deliveries_event", "event"),
        Index("ix_webhooks_deliveries_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the public id (``wh_`` + 32 hex digits): the body's ``id`` and the
    #: ``X-Kameng-Webhook-Id`` header, the same on every attempt
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhooks_endpoints.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    #: automatic attempts this delivery gets (the plugin's ``max_attempts`` when it was made)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    #: automatic attempts made so far (resends are not counted here)
    auto_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: every attempt, automatic or resend
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Attempt(Base):
    """One POST of a delivery: what was sent (headers) and what came back."""

    __tablename__ = "webhooks_attempts"
    __table_args__ = (UniqueConstraint("delivery_pk", "ref", name="uq_webhooks_attempts_delivery_pk_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_pk: Mapped[int] = mapped_column(ForeignKey("webhooks_deliveries.id", ondelete="CASCADE"))
    #: what asked for it: ``auto:<n>`` (the n-th automatic attempt) or
    #: ``resend:<hex>`` (an admin's resend); a job run twice records once
    ref: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    #: the signed ``X-Kameng-Webhook-Timestamp`` (unix seconds)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    #: the request's headers as sent, JSON (a signature, never the secret)
    request_headers: Mapped[str] = mapped_column(Text, default="{}")
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the start of the answer's body
    response_body: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(String(255), default="")
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
