"""The plugin's tables: the risk log, captcha challenges (on PostgreSQL and
MariaDB without Redis) and per-product purchase limits. Own MetaData, the
core's naming convention."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kameng.db import NAMING_CONVENTION, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RiskEvent(Base):
    """One refusal (``verdict`` ``deny``) or order held for review
    (``review``). Written in a transaction of its own after the request,
    so a refused (rolled back) request still leaves its row."""

    __tablename__ = "antifraud_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(20))  # order | login | register | lookup | password_reset | coupon
    verdict: Mapped[str] = mapped_column(String(10))  # deny | review
    code: Mapped[str] = mapped_column(String(20), default="")  # rate_limited | blocked | captcha_required
    rule: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(64), default="", index=True)
    contact: Mapped[str] = mapped_column(String(254), default="")  # masked: a***e@example.com
    #: keyed hash of the normalised contact: the admin finds rows by the full contact without storing it
    contact_hash: Mapped[str] = mapped_column(String(64), default="", index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(String(255), default="")


class CaptchaChallenge(Base):
    """A captcha's answer, kept until it is used once or expires (5 minutes)."""

    __tablename__ = "antifraud_captchas"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    answer: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class ProductLimit(Base):
    """At most ``max_quantity`` units of a product per buyer (account or
    contact), within ``window_days`` (0: ever). The foreign key to
    ``products.id`` (ON DELETE CASCADE) is made by the migration."""

    __tablename__ = "antifraud_product_limits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(Integer, unique=True)
    max_quantity: Mapped[int] = mapped_column(Integer)
    window_days: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
