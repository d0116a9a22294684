"""The plugin's tables (prefixed ``coupons_``), with its own MetaData and the
core's naming convention. Money is in minor units of the shop's currency;
percentages are in basis points (``1500`` is 15 %).

Foreign keys into core tables (orders, SKUs) name the core's columns; the
ORM has no relationship to them.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kameng.catalog.models import Sku
from kameng.db import NAMING_CONVENTION, UTCDateTime, utcnow
from kameng.orders.models import Order

#: coupon kinds: a fixed amount off, or a percentage off (with an optional cap)
FIXED, PERCENT = "fixed", "percent"
KINDS = (FIXED, PERCENT)
#: what a coupon or promotion applies to
SCOPES = ("all", "categories", "products", "skus")
PROMOTION_SCOPES = ("all", "categories", "products")
#: a redemption or sale use holds its coupon use (sale units) until the order expires or is cancelled unpaid
USED, RELEASED = "used", "released"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Coupon(Base):
    __tablename__ = "coupons_coupons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))  # as the admin wrote it
    code_key: Mapped[str] = mapped_column(String(64), unique=True)  # upper-cased: codes are case-insensitive
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[int] = mapped_column(Integer)  # minor units (fixed) or basis points (percent)
    max_discount: Mapped[int | None] = mapped_column(Integer, nullable=True)  # percent only
    min_amount: Mapped[int] = mapped_column(Integer, default=0)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: unlimited
    per_buyer: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: unlimited
    used: Mapped[int] = mapped_column(Integer, default=0)
    starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    scope: Mapped[str] = mapped_column(String(12), default="all")
    targets: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of category, product or SKU ids
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    batch: Mapped[str] = mapped_column(String(64), default="", index=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Redemption(Base):
    """One coupon use by one order. ``status`` goes ``used`` → ``released``
    (the order expired or was cancelled unpaid) once, never back."""

    __tablename__ = "coupons_redemptions"
    __table_args__ = (
        UniqueConstraint("coupon_id", "order_id", name="uq_coupons_redemptions_coupon_order"),
        Index("ix_coupons_redemptions_coupon_contact", "coupon_id", "contact_key"),
        Index("ix_coupons_redemptions_coupon_user", "coupon_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons_coupons.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey(Order.__table__.c.id, ondelete="CASCADE"), index=True)
    order_no: Mapped[str] = mapped_column(String(24))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    contact_key: Mapped[str] = mapped_column(String(254), default="")  # the order's contact, case-folded
    amount: Mapped[int] = mapped_column(Integer)  # the discount, minor units (positive)
    status: Mapped[str] = mapped_column(String(10), default=USED)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Promotion(Base):
    """满减 / 满折: tiers ``[{"threshold": minor, "kind": "amount"|"percent", "value": minor|basis points}]``."""

    __tablename__ = "coupons_promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    scope: Mapped[str] = mapped_column(String(12), default="all")
    targets: Mapped[str] = mapped_column(Text, default="[]")
    tiers: Mapped[str] = mapped_column(Text, default="[]")
    starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Sale(Base):
    """A time-limited sale price of one SKU, for at most ``cap`` units."""

    __tablename__ = "coupons_sales"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey(Sku.__table__.c.id, ondelete="CASCADE"), index=True)
    price: Mapped[int] = mapped_column(Integer)  # the sale unit price, minor units
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cap: Mapped[int] = mapped_column(Integer)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SaleUse(Base):
    """Sale units one order took; released once like a :class:`Redemption`."""

    __tablename__ = "coupons_sale_uses"
    __table_args__ = (UniqueConstraint("sale_id", "order_id", name="uq_coupons_sale_uses_sale_order"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("coupons_sales.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey(Order.__table__.c.id, ondelete="CASCADE"), index=True)
    order_no: Mapped[str] = mapped_column(String(24))
    units: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)  # the discount, minor units (positive)
    status: Mapped[str] = mapped_column(String(10), default=USED)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
