"""The distribution plugin's tables (own MetaData, the core's naming convention).

- ``distribution_members``: one row per account that has a referral code or
  a referrer. The row is also the account's lock for its commission ledger.
- ``distribution_rates``: commission rates of one product, per level,
  overriding the global ones.
- ``distribution_commissions``: what one order earned one referrer at one
  level, and how much of it a refund took back.
- ``distribution_ledger``: every change of a referrer's commission balance,
  append-only, with the balance after it (like the core's wallet).
- ``distribution_withdrawals``: requests to pay the balance out.

Rates are stored in hundredths of a percent (``2.5`` % is 250); money in
minor units (分).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kameng.accounts import User
from kameng.catalog.models import Product
from kameng.db import NAMING_CONVENTION, UTCDateTime, utcnow
from kameng.orders.models import Order

# the core's tables are in another MetaData: foreign keys name their columns
USERS_ID = User.__table__.c.id
ORDERS_ID = Order.__table__.c.id
PRODUCTS_ID = Product.__table__.c.id


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Member(Base):
    __tablename__ = "distribution_members"

    user_id: Mapped[int] = mapped_column(ForeignKey(USERS_ID, ondelete="RESTRICT"), primary_key=True,
                                         autoincrement=False)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    referrer_id: Mapped[int | None] = mapped_column(ForeignKey(USERS_ID, ondelete="SET NULL"), nullable=True,
                                                    index=True)
    #: how the referrer was bound: ``cookie``, ``form`` or ``admin``
    bound_via: Mapped[str] = mapped_column(String(16), default="")
    bound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProductRate(Base):
    __tablename__ = "distribution_rates"

    product_id: Mapped[int] = mapped_column(ForeignKey(PRODUCTS_ID, ondelete="CASCADE"), primary_key=True,
                                            autoincrement=False)
    # hundredths of a percent; None: the global rate of that level
    rate_1: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rate_2: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rate_3: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(254), default="")


CREDITED = "credited"
PARTIAL = "partially_reversed"
REVERSED = "reversed"


class Commission(Base):
    __tablename__ = "distribution_commissions"
    __table_args__ = (UniqueConstraint("order_id", "level", name="uq_distribution_commissions_order_level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey(ORDERS_ID, ondelete="RESTRICT"))
    order_no: Mapped[str] = mapped_column(String(24), index=True)
    buyer_id: Mapped[int | None] = mapped_column(ForeignKey(USERS_ID, ondelete="SET NULL"), nullable=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey(USERS_ID, ondelete="RESTRICT"), index=True)
    level: Mapped[int] = mapped_column(Integer)
    base: Mapped[int] = mapped_column(Integer)  # the order's paid amount
    rate: Mapped[int] = mapped_column(Integer)  # hundredths of a percent
    amount: Mapped[int] = mapped_column(Integer)  # credited
    reversed_amount: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(20), default=CREDITED)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LedgerEntry(Base):
    __tablename__ = "distribution_ledger"
    __table_args__ = (UniqueConstraint("user_id", "seq", name="uq_distribution_ledger_user_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(USERS_ID, ondelete="RESTRICT"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)  # minor units, negative for a debit
    balance_after: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    #: commission | reversal | withdrawal | withdrawal_returned
    kind: Mapped[str] = mapped_column(String(24))
    ref: Mapped[str | None] = mapped_column(String(96), unique=True, nullable=True)
    note: Mapped[str] = mapped_column(String(255), default="")
    actor: Mapped[str] = mapped_column(String(254), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


PENDING = "pending"
PAID_BALANCE = "paid_balance"
PAID_MANUAL = "paid_manual"
REJECTED = "rejected"


class Withdrawal(Base):
    __tablename__ = "distribution_withdrawals"
    __table_args__ = (Index("ix_distribution_withdrawals_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    withdrawal_no: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(USERS_ID, ondelete="RESTRICT"), index=True)
    amount: Mapped[int] = mapped_column(Integer)  # taken from the commission balance
    fee: Mapped[int] = mapped_column(Integer)
    net: Mapped[int] = mapped_column(Integer)  # amount - fee: what is paid out
    currency: Mapped[str] = mapped_column(String(8))
    payee: Mapped[str] = mapped_column(String(200), default="")  # where to pay by hand (Alipay account …)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    note: Mapped[str] = mapped_column(String(255), default="")  # the admin's: transfer number, reason
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str] = mapped_column(String(254), default="")
