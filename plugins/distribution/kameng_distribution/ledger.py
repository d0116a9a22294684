"""Referrers' commission balances, kept as an append-only ledger.

The core's ledger (:mod:`kameng.ledgers`, as the wallet): every change
is a new row with the balance after it and a per-user sequence number.
The row lock on the user's ``distribution_members`` row serialises two
writers of one balance; the unique ``(user_id, seq)`` makes two that
somehow read the same last row collide in the database instead of both
succeeding. ``ref`` (unique when set) makes a posting for one purpose
happen once: a replayed hook or a retried request changes nothing.
"""
from __future__ import annotations

from sqlalchemy import func, select

from kameng.i18n import _
from kameng.ledgers import InsufficientBalance, Ledger  # noqa: F401  (callers catch it here)

from kameng_distribution import members
from kameng_distribution.models import LedgerEntry

KINDS = {
    "commission": _("Commission"),
    "reversal": _("Commission reversed (refund)"),
    "withdrawal": _("Withdrawal"),
    "withdrawal_returned": _("Withdrawal rejected: returned"),
}


def lock(db, user_id: int) -> None:
    """Take the user's ledger lock (their member row, made if missing)."""
    members.ensure(db, user_id)
    db.execute(select(members.Member.user_id).where(members.Member.user_id == user_id).with_for_update())


LEDGER = Ledger(LedgerEntry, "kind", KINDS, lock)
_last, balance, existing, entries = LEDGER.last, LEDGER.balance, LEDGER.existing, LEDGER.entries


def post(db, user_id: int, amount: int, currency: str, kind: str, ref: str | None = None, note: str = "",
         actor: str = "system", allow_negative: bool = False, locked: bool = False) -> LedgerEntry:
    """Add ``amount`` (negative: take) to a user's commission balance in the
    caller's transaction. With ``ref``, a second post with the same ref
    returns the first entry and changes nothing. A debit that would take the
    balance below zero raises :class:`InsufficientBalance` unless
    ``allow_negative`` (a reversal after the money was withdrawn)."""
    return LEDGER.post(db, user_id, amount, currency, kind, ref=ref, note=note, actor=actor,
                       allow_negative=allow_negative, locked=locked)


def totals_by_kind(db, user_id: int) -> dict:
    rows = db.execute(select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount), 0))
                      .where(LedgerEntry.user_id == user_id).group_by(LedgerEntry.kind)).all()
    return {kind: int(total) for kind, total in rows}
