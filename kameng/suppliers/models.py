"""Supplier connections, the SKUs they fulfil, the orders placed upstream
and the log of every sync."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow

# upstream order states (PROTOCOLS.md A5, normalised)
NEW, SUBMITTING, PROCESSING, SUCCESS, FAILED, PARTIAL, UNKNOWN = (
    "new", "submitting", "processing", "success", "failed", "partial", "unknown")
TERMINAL = (SUCCESS, FAILED, PARTIAL)
PRICE_MODES = ("fixed", "markup", "margin")


class SupplierConnection(Base):
    """An account at an upstream: a connector plugin and its settings."""

    __tablename__ = "supplier_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))  # the plugin id
    name: Mapped[str] = mapped_column(String(100))
    settings: Mapped[str] = mapped_column(Text, default="{}")  # JSON, the non-secret fields
    secrets: Mapped[str] = mapped_column(Text, default="")  # encrypted JSON
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    health: Mapped[str] = mapped_column(String(16), default="unknown")  # unknown | ok | error
    health_message: Mapped[str] = mapped_column(String(255), default="")
    checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sync_interval: Mapped[int] = mapped_column(Integer, default=600)  # seconds
    last_sync_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: hours an upstream order may take before it is given up (and refunded when never placed)
    deadline_minutes: Mapped[int] = mapped_column(Integer, default=60)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SkuUpstream(Base):
    """A SKU fulfilled by an upstream, and how its sale price follows the cost."""

    __tablename__ = "sku_upstreams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("supplier_connections.id", ondelete="CASCADE"),
                                               index=True)
    upstream_goods: Mapped[str] = mapped_column(String(128), default="")
    upstream_sku: Mapped[str] = mapped_column(String(128))
    cost: Mapped[int] = mapped_column(Integer, default=0)  # minor units, per unit
    upstream_stock: Mapped[int | None] = mapped_column(Integer, nullable=True)
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the sync hid the SKU (sold out or stopped upstream): it shows it again when back
    hidden_by_sync: Mapped[bool] = mapped_column(Boolean, default=False)
    price_mode: Mapped[str] = mapped_column(String(16), default="fixed")  # fixed | markup | margin
    price_value: Mapped[str] = mapped_column(String(32), default="0")  # percent or amount, decimal text
    price_step: Mapped[int] = mapped_column(Integer, default=1)  # round the sale price up to this many minor units
    synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UpstreamOrder(Base):
    """An order placed at an upstream for one of ours. ``out_order_no`` is
    written before the first call and never changes, so a retry can only
    ever find the same upstream order."""

    __tablename__ = "upstream_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("supplier_connections.id", ondelete="RESTRICT"),
                                               index=True)
    out_order_no: Mapped[str] = mapped_column(String(40), unique=True)
    upstream_sku: Mapped[str] = mapped_column(String(128))
    upstream_order_no: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default=NEW)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    cost: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: when the deadline passed with the supplier's answer still open (the shop was told)
    overdue_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SyncLog(Base):
    """What one sync (or import) of a connection changed."""

    __tablename__ = "supplier_sync_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("supplier_connections.id", ondelete="CASCADE"),
                                               index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), default="sync")  # sync | import
    changes: Mapped[str] = mapped_column(Text, default="[]")  # JSON [{sku, field, from, to}]
    error: Mapped[str] = mapped_column(String(255), default="")
