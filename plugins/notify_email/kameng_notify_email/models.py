"""The plugin's tables: the send log (one row per email, the unit of
exactly-once queuing and of retries), the edited templates and the
per-event switches. Own MetaData, the core's naming convention."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kameng.db import NAMING_CONVENTION, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


QUEUED, SENDING, SENT, FAILED, SKIPPED = "queued", "sending", "sent", "failed", "skipped"
STATUSES = (QUEUED, SENDING, SENT, FAILED, SKIPPED)


class Message(Base):
    """One email: queued when the event arrives, sent by the job
    ``notify_email.send``. It never holds the email's text (the body is
    rendered when it is sent, card keys included): only what it takes to
    render it again."""

    __tablename__ = "notify_email_messages"
    __table_args__ = (Index("ix_notify_email_messages_status", "status"),
                      Index("ix_notify_email_messages_order_no", "order_no"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: one email per (event, order, refund, recipient) for the events that happen once
    #: per order; a fresh token for the others (each emission is its own email)
    dedupe_key: Mapped[str] = mapped_column(String(191), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    #: buyer | admin | account | test
    audience: Mapped[str] = mapped_column(String(16))
    order_no: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: the full address (needed to send again); pages and logs show it masked
    recipient: Mapped[str] = mapped_column(String(254), default="")
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: why it failed or was skipped: no secrets (no password, no key, no link)
    error: Mapped[str] = mapped_column(String(500), default="")
    #: the event's data as JSON, without links (an order's link is made
    #: afresh when the email is sent) and without card keys
    data: Mapped[str] = mapped_column(Text, default="{}")
    #: what must not be readable in the database: the link of a password
    #: reset, encrypted with the shop's key; emptied once the email is sent
    secret: Mapped[str] = mapped_column(Text, default="")
    resend_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Template(Base):
    """A merchant's version of one event's email in one language (absent:
    the default shipped in the code is used)."""

    __tablename__ = "notify_email_templates"
    __table_args__ = (UniqueConstraint("event", "language", name="uq_notify_email_templates_event_language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Switch(Base):
    """An event the merchant turned off (or on again). Absent: on."""

    __tablename__ = "notify_email_switches"

    event: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
