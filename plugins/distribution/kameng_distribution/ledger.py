"""Referrers' commission balances, kept as an append-only ledger.

The same design as the core's wallet (:mod:`kameng.wallet`): every change
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

from kameng_distribution import members
from kameng_distribution.models import LedgerEntry

KINDS = {
    "commission": _("Commission"),
    "reversal": _("Commission reversed (refund)"),
    "withdrawal": _("Withdrawal"),
    "withdrawal_returned": _("Withdrawal rejected: returned"),
}


class InsufficientBalance(Exception):
    def __init__(self, balance: int, wanted: int):
        super().__init__(f"balance {balance} is less than {wanted}")
        self.balance, self.wanted = balance, wanted


def _last(db, user_id: int) -> tuple[int, int]:
    row = db.execute(select(LedgerEntry.seq, LedgerEntry.balance_after).where(LedgerEntry.user_id == user_id)
                     .order_by(LedgerEntry.seq.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (0, 0)


def balance(db, user_id: int) -> int:
    return _last(db, user_id)[1]


def existing(db, ref: str) -> LedgerEntry | None:
    return db.scalar(select(LedgerEntry).where(LedgerEntry.ref == ref))


def lock(db, user_id: int) -> None:
    """Take the user's ledger lock (their member row, made if missing)."""
    members.ensure(db, user_id)
    db.execute(select(members.Member.user_id).where(members.Member.user_id == user_id).with_for_update())


def post(db, user_id: int, amount: int, currency: str, kind: str, ref: str | None = None, note: str = "",
         actor: str = "system", allow_negative: bool = False, locked: bool = False) -> LedgerEntry:
    """Add ``amount`` (negative: take) to a user's commission balance in the
    caller's transaction. With ``ref``, a second post with the same ref
    returns the first entry and changes nothing. A debit that would take the
    balance below zero raises :class:`InsufficientBalance` unless
    ``allow_negative`` (a reversal after the money was withdrawn)."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    if amount == 0:
        raise ValueError("a ledger entry moves money")
    if ref is not None and (done := existing(db, ref)) is not None:
        return done
    if not locked:
        lock(db, user_id)
        if ref is not None and (done := existing(db, ref)) is not None:  # a writer before us did it
            return done
    seq, current = _last(db, user_id)
    if current + amount < 0 and amount < 0 and not allow_negative:
        raise InsufficientBalance(current, -amount)
    entry = LedgerEntry(user_id=user_id, seq=seq + 1, amount=amount, balance_after=current + amount,
                        currency=currency, kind=kind, ref=ref, note=note[:255], actor=actor[:254])
    db.add(entry)
    db.flush()
    return entry


def entries(db, user_id: int, limit: int = 50, offset: int = 0) -> list[LedgerEntry]:
    return list(db.scalars(select(LedgerEntry).where(LedgerEntry.user_id == user_id)
                           .order_by(LedgerEntry.seq.desc()).limit(limit).offset(offset)))


def totals_by_kind(db, user_id: int) -> dict:
    rows = db.execute(select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount), 0))
                      .where(LedgerEntry.user_id == user_id).group_by(LedgerEntry.kind)).all()
    return {kind: int(total) for kind, total in rows}
