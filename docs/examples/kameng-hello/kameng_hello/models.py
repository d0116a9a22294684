"""The plugin's own table. Its own MetaData (never the core's), with the
core's naming convention so constraint names are stable on every database."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kameng.db import NAMING_CONVENTION, UTCDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class HelloVisit(Base):
    __tablename__ = "hello_visits"  # tables are prefixed with the plugin id

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(64), unique=True)  # makes the job idempotent
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
