"""Append-only balance ledgers: the wallet's (:mod:`kameng.wallet`) and any
a plugin keeps (the distribution plugin's commission balances).

Every change is a new row with the balance after it and a per-account
sequence number: the unique ``(user_id, seq)`` makes two writers that read
the same balance collide in the database instead of both succeeding, and a
row lock (``lock(db, user_id)``, the ledger's own choice of row) serialises
them before it comes to that. ``ref`` (unique when set) makes a posting for
one purpose happen once: a refund retried by a worker that died, or a
replayed hook, cannot pay out twice.

A plugin's ledger is a model with the columns ``user_id``, ``seq``,
``amount``, ``balance_after``, ``currency``, ``ref``, ``note``, ``actor``
and a column naming the kind of entry, and one :class:`Ledger` over it.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import select


class InsufficientBalance(Exception):
    def __init__(self, balance: int, wanted: int):
        super().__init__(f"balance {balance} is less than {wanted}")
        self.balance, self.wanted = balance, wanted


class Ledger:
    """The operations on one ledger ``model``; ``kind_column`` names the
    column that says what an entry is (one of ``kinds``), ``lock(db,
    user_id)`` takes the lock that serialises one account's writers."""

    def __init__(self, model, kind_column: str, kinds: dict, lock: Callable[[object, int], None]):
        self.model, self.kind_column, self.kinds, self.lock = model, kind_column, kinds, lock

    def last(self, db, user_id: int) -> tuple[int, int]:
        """``(seq, balance_after)`` of the account's newest entry, ``(0, 0)`` without one."""
        m = self.model
        row = db.execute(select(m.seq, m.balance_after).where(m.user_id == user_id)
                         .order_by(m.seq.desc()).limit(1)).first()
        return (row[0], row[1]) if row else (0, 0)

    def balance(self, db, user_id: int) -> int:
        return self.last(db, user_id)[1]

    def existing(self, db, ref: str):
        return db.scalar(select(self.model).where(self.model.ref == ref))

    def entries(self, db, user_id: int, limit: int = 50, offset: int = 0) -> list:
        m = self.model
        return list(db.scalars(select(m).where(m.user_id == user_id).order_by(m.seq.desc())
                               .limit(limit).offset(offset)))

    def post(self, db, user_id: int, amount: int, currency: str, kind: str, ref: str | None = None,
             note: str = "", actor: str = "system", allow_negative: bool = False, locked: bool = False):
        """Add ``amount`` (negative: take) to an account's balance, in the
        caller's transaction. With ``ref``, a second post with the same ref
        returns the first entry and changes nothing. A debit that would take
        the balance below zero raises :class:`InsufficientBalance` unless
        ``allow_negative``. ``locked``: the caller holds the account's lock."""
        if kind not in self.kinds:
            raise ValueError(f"unknown ledger {self.kind_column} {kind!r}")
        if amount == 0:
            raise ValueError("a ledger entry moves money")
        if ref is not None and (done := self.existing(db, ref)) is not None:
            return done
        if not locked:
            self.lock(db, user_id)
            if ref is not None and (done := self.existing(db, ref)) is not None:  # a writer before us did it
                return done
        seq, current = self.last(db, user_id)
        if amount < 0 and current + amount < 0 and not allow_negative:
            raise InsufficientBalance(current, -amount)
        entry = self.model(user_id=user_id, seq=seq + 1, amount=amount, balance_after=current + amount,
                           currency=currency, ref=ref, note=note[:255], actor=actor[:254],
                           **{self.kind_column: kind})
        db.add(entry)
        db.flush()
        return entry
