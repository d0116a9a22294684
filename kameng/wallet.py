"""Wallet balances, kept as a ledger.

Every change is a new row with its reason; nothing is ever updated in place.
A row carries the balance after it and a per-user sequence number: the
unique ``(user_id, seq)`` makes two writers that read the same balance
collide in the database instead of both succeeding, and the row lock on the
user serialises them before it comes to that. ``ref`` (unique when set)
makes a credit or debit for one purpose happen once: a refund retried by a
worker that died cannot pay out twice.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow
from kameng.i18n import _
from kameng.ledgers import InsufficientBalance, Ledger  # noqa: F401  (InsufficientBalance: callers catch it here)
from kameng.money import format_minor

REASONS = {
    "admin": _("Adjusted by the shop"),
    "topup": _("Top-up"),
    "order": _("Order payment"),
    "refund": _("Refund"),
    "commission": _("Commission"),
    "withdrawal": _("Withdrawal"),
}


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("user_id", "seq", name="uq_ledger_entries_user_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)  # minor units, negative for a debit
    balance_after: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str | None] = mapped_column(String(96), unique=True, nullable=True)
    note: Mapped[str] = mapped_column(String(255), default="")
    actor: Mapped[str] = mapped_column(String(254), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


def _lock(db, user_id: int) -> None:
    # one writer per wallet. PostgreSQL: FOR NO KEY UPDATE, which an order
    # insert's foreign-key lock on the same user (KEY SHARE) does not block, so
    # two balance orders of one account cannot deadlock (MariaDB: see checkout)
    from kameng.accounts import User

    db.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


LEDGER = Ledger(LedgerEntry, "reason", REASONS, _lock)
_last, balance, existing, entries = LEDGER.last, LEDGER.balance, LEDGER.existing, LEDGER.entries


def post(db, user_id: int, amount: int, currency: str, reason: str, ref: str | None = None, note: str = "",
         actor: str = "system", allow_negative: bool = False) -> LedgerEntry:
    """Add ``amount`` (negative: take) to a user's balance, in the caller's
    transaction. With ``ref``, a second post with the same ref returns the
    first entry and changes nothing. Raises :class:`InsufficientBalance`
    when a debit would take the balance below zero."""
    return LEDGER.post(db, user_id, amount, currency, reason, ref=ref, note=note, actor=actor,
                       allow_negative=allow_negative)


MIN_TOPUP = 100  # minor units


def start_topup(request, user, amount: int, gateway_id: str, channel: str | None = None):
    """Begin a top-up of ``amount`` through a gateway: ``(attempt, action)``.
    The balance is credited when the gateway's notify pays the attempt."""
    from kameng.errors import APIError
    from kameng.payments.service import create_attempt, get_gateway

    gateway = get_gateway(request, gateway_id) if isinstance(gateway_id, str) else None
    if gateway is None:
        raise APIError(422, "payment_method_unavailable", _("This payment method is not available."))
    limit = int(request.registry.settings.get("kameng.wallet.max_topup", 5_000_000))
    if not MIN_TOPUP <= amount <= limit:
        raise APIError(422, "invalid_amount", _("Top up between ${min} and ${max}.", mapping={
            "min": format_minor(MIN_TOPUP, request.shop["currency"]),
            "max": format_minor(limit, request.shop["currency"])}))
    attempt = create_attempt(request, gateway, amount, request.shop["currency"], _topup_subject(request),
                             purpose="topup", channel=channel)
    attempt.user_id = user.id
    from kameng import jobs
    from kameng.orders.service import QUERY, query_delay

    jobs.enqueue(request.db, QUERY, {"attempt_no": attempt.attempt_no, "round": 0}, delay=query_delay(request, 0),
                 dedupe_key=f"query:{attempt.attempt_no}:0")
    from kameng.payments.service import payment_action

    return attempt, payment_action(request, gateway, attempt)


def _topup_subject(request) -> str:
    return request.localizer.translate(_("Balance top-up")) + f" - {request.shop['name']}"


def topup_paid(db, attempt) -> LedgerEntry:
    """Credit a paid top-up, once (the attempt number is the entry's ref);
    the member level rules may then raise the account's level."""
    from kameng import levels

    entry = post(db, attempt.user_id, attempt.amount, attempt.currency, "topup", ref=f"topup:{attempt.attempt_no}",
                 note=attempt.attempt_no, actor=f"gateway:{attempt.gateway}")
    levels.reassess_id(db, attempt.user_id)
    return entry
