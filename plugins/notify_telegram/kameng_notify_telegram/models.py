"""The send log: one row per message the plugin tried to send."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kameng.db import NAMING_CONVENTION, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: a row's ``status``: waiting for its first try, sent, waiting for a retry
#: (Telegram asked to slow down, or was unreachable), or given up
PENDING, SENT, RETRYING, FAILED = "pending", "sent", "retrying", "failed"


class SendLog(Base):
    __tablename__ = "notify_telegram_log"
    __table_args__ = (Index("ix_notify_telegram_log_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    order_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Telegram's description or the transport error; never the bot token
    error: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
