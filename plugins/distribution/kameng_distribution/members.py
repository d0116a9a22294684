"""Referral codes and who referred whom.

Every account gets a referral code the first time it needs one (its
referrer page, or registering). A new account is bound to the referrer
whose code it registered with, once; only an admin changes it later. A
referral chain never loops: an account cannot refer itself, nor anyone
above it in its own chain.
"""
from __future__ import annotations

import re
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from kameng.accounts import User
from kameng.db import utcnow

from kameng_distribution.models import Member

#: no 0/O, 1/I/L: a code is read aloud and typed by hand
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
_CODE = re.compile(r"[A-Z0-9]{4,16}")
#: a chain is walked at most this far when looking for a loop (the accounts
#: of a shop, not an attacker's input: every step is a bound account)
MAX_WALK = 100_000


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(raw) -> str | None:
    """A code as typed (spaces, lower case) in its stored form, or None."""
    if not isinstance(raw, str):
        return None
    code = "".join(raw.split()).upper()
    return code if _CODE.fullmatch(code) else None


def get(db, user_id: int) -> Member | None:
    return db.get(Member, user_id)


def ensure(db, user_id: int) -> Member:
    """The user's member row, made with a fresh code if missing. Two
    requests making it at once: the second finds the first's row."""
    member = db.get(Member, user_id)
    if member is not None:
        return member
    for _ in range(10):
        try:
            with db.begin_nested():
                member = Member(user_id=user_id, code=new_code(), bound_via="")
                db.add(member)
                db.flush()
            return member
        except IntegrityError:  # another request made it, or (rarely) the code is taken
            member = db.scalar(select(Member).where(Member.user_id == user_id)
                               .execution_options(populate_existing=True))
            if member is not None:
                return member
    raise RuntimeError("could not make a unique referral code")


def locked(db, user_id: int) -> Member:
    """The user's member row (made if missing), locked and read afresh."""
    ensure(db, user_id)
    return db.scalar(select(Member).where(Member.user_id == user_id).with_for_update()
                     .execution_options(populate_existing=True))


def by_code(db, raw) -> Member | None:
    code = normalize_code(raw)
    if code is None:
        return None
    return db.scalar(select(Member).where(Member.code == code))


def chain(db, user_id: int, depth: int) -> list[int]:
    """The user's referrers, nearest first, at most ``depth`` of them. Stops
    at an account without a referrer, and (defensively) before the user
    or any account already met."""
    out: list[int] = []
    seen = {user_id}
    current = user_id
    while len(out) < depth:
        referrer = db.scalar(select(Member.referrer_id).where(Member.user_id == current))
        if referrer is None or referrer in seen:
            break
        out.append(referrer)
        seen.add(referrer)
        current = referrer
    return out


def would_loop(db, user_id: int, referrer_id: int, lock: bool = False) -> bool:
    """Whether making ``referrer_id`` the referrer of ``user_id`` closes a
    loop: the user is the referrer, or somewhere above it. With ``lock``
    each row walked is locked, so two admins re-binding at once cannot
    close a loop between them (one waits for the other, then sees it)."""
    current, steps = referrer_id, 0
    while current is not None and steps < MAX_WALK:
        if current == user_id:
            return True
        stmt = select(Member.referrer_id).where(Member.user_id == current)
        if lock:
            stmt = stmt.with_for_update()
        current = db.scalar(stmt)
        steps += 1
    return current is not None  # a walk that long is a loop among others: refuse


def bind(db, user_id: int, referrer: Member, via: str) -> bool:
    """Bind a new account to ``referrer``, once. False when it already has
    a referrer, the referrer is the account itself, or it would loop."""
    member = locked(db, user_id)
    if member.referrer_id is not None or referrer.user_id == user_id:
        return False
    if would_loop(db, user_id, referrer.user_id, lock=True):
        return False
    member.referrer_id = referrer.user_id
    member.bound_via = via[:16]
    member.bound_at = utcnow()
    db.flush()
    return True


def set_referrer(db, user_id: int, referrer_id: int | None) -> bool:
    """An admin's change: ``referrer_id`` (or None to unbind). False when
    it would loop."""
    member = locked(db, user_id)
    if referrer_id is not None:
        ensure(db, referrer_id)
        if would_loop(db, user_id, referrer_id, lock=True):
            return False
    member.referrer_id = referrer_id
    member.bound_via = "admin" if referrer_id is not None else ""
    member.bound_at = utcnow() if referrer_id is not None else None
    db.flush()
    return True


def level_ids(user_id: int, level: int):
    """A select of the ids of the accounts ``level`` steps below ``user_id``."""
    stmt = select(Member.user_id).where(Member.referrer_id == user_id)
    for _ in range(level - 1):
        stmt = select(Member.user_id).where(Member.referrer_id.in_(stmt))
    return stmt


def counts(db, user_id: int, levels: int) -> list[int]:
    return [db.scalar(select(func.count()).select_from(level_ids(user_id, n).subquery())) or 0
            for n in range(1, levels + 1)]


def referrals(db, user_id: int, levels: int, limit: int = 100) -> list[dict]:
    """The accounts below ``user_id`` (all levels in use), newest first."""
    rows = []
    for n in range(1, levels + 1):
        ids = level_ids(user_id, n)
        for user, member in db.execute(select(User, Member).join(Member, Member.user_id == User.id)
                                       .where(User.id.in_(ids)).order_by(Member.bound_at.desc()).limit(limit)):
            rows.append({"level": n, "user_id": user.id, "email": mask_email(user.email), "at": member.bound_at})
    rows.sort(key=lambda r: (r["at"] is not None, r["at"]), reverse=True)
    return rows[:limit]


def mask_email(email: str) -> str:
    """``alice@example.com`` → ``a***e@example.com``: enough to recognise
    a friend, not to write to them."""
    local, at, domain = (email or "").rpartition("@")
    if not at:
        return "***"
    masked = local[0] + "***" + (local[-1] if len(local) > 2 else "")
    return f"{masked}@{domain}"
