"""Member levels (会员等级): named levels with a discount or per-SKU level
prices, assigned by an admin or by rules on what a buyer has spent."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow


class MemberLevel(Base):
    __tablename__ = "member_levels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: what users.level and SKU level prices (sku_prices.ref) name
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    #: the discount on list prices where a SKU has no level price, in
    #: basis points (500 = 5 %)
    discount_bp: Mapped[int] = mapped_column(Integer, default=0)
    #: reached by rule once the buyer's paid orders add up to this (minor
    #: units), None: not by this rule
    min_paid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: reached by rule once the buyer's top-ups add up to this, None: not by this rule
    min_topup: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: higher is better: rules only ever move a buyer up
    rank: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
