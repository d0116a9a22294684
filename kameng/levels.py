"""Member levels (会员等级): named levels with a discount or per-SKU level
prices, assigned by an admin or by rules on what a buyer has spent.

A buyer's level is ``users.level`` (a level's code). It changes in two ways:

- by hand: an admin picks a level (or "no level"); ``users.level_manual``
  is then set and the rules leave the account alone until the admin
  switches it back to automatic (:func:`set_level`);
- by rule: when an order of the buyer is delivered and when a top-up is
  credited, :func:`reassess` looks at the account's totals and moves it to
  the best level (highest ``rank``) whose ``min_paid`` or ``min_topup`` it
  has reached. Rules only ever raise a level, never lower it.

The totals (:func:`totals`):

- *paid*: the amounts of the account's orders in status ``delivered``,
  minus what was refunded of them. A refunded order (all of it) is no longer
  ``delivered`` and counts nothing; a partial refund counts off. An order
  paid from the balance counts like any other.
- *top-ups*: the balance top-ups the account paid through a gateway (ledger
  reason ``topup``). Credits by the shop (``admin``), refunds to the balance
  and commissions are not top-ups.

What a level gives is priced in :func:`kameng.catalog.service.buyer_price`:
the SKU's level price where one is set, else the list price minus the
level's discount (``discount_bp``, rounded half up to the minor unit).
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Integer, String, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from kameng.db import Base, UTCDateTime, utcnow
from kameng.i18n import _

log = logging.getLogger(__name__)


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

    @property
    def by_rule(self) -> bool:
        return self.min_paid is not None or self.min_topup is not None


#: a level's code: like a SKU code, at most 32 characters (users.level holds it)
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")
#: a discount in percent: 0 to 100 with up to two decimals
PERCENT = re.compile(r"^(100(\.0{1,2})?|[0-9]{1,2}(\.[0-9]{1,2})?)\Z")
MAX_NAME = 100
MAX_RANK = 10 ** 6
#: the largest threshold (minor units): every database's INTEGER holds it
MAX_THRESHOLD = 2 ** 31 - 1
#: ``set_level`` code that puts an account back under the rules
AUTOMATIC = None


def _invalid(message, field: str, status: int = 422, code: str = "invalid_request"):
    from kameng.errors import APIError

    return APIError(status, code, message, field=field)


# -- reading ---------------------------------------------------------------------------------------


def all_levels(db) -> list[MemberLevel]:
    """Every level, the lowest rank first."""
    return list(db.scalars(select(MemberLevel).order_by(MemberLevel.rank, MemberLevel.id)))


def get_level(db, code) -> MemberLevel | None:
    if not isinstance(code, str) or not CODE.match(code):
        return None
    return db.scalar(select(MemberLevel).where(MemberLevel.code == code))


def percent_text(bp: int) -> str:
    """Basis points as a percentage without trailing zeros: 500 → ``5``, 1250 → ``12.5``."""
    text = f"{Decimal(int(bp)) / 100:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_percent(text) -> int:
    """``"5"``, ``"12.5"``, ``"12.25 %"`` → basis points; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("not text")
    text = text.strip().removesuffix("%").strip()
    if not PERCENT.match(text):
        raise ValueError("not a percentage from 0 to 100 with up to two decimals")
    return int((Decimal(text) * 100).to_integral_value())


def discounted(price: int, bp: int) -> int:
    """``price`` less ``bp`` basis points, rounded half up to the minor unit,
    never below one minor unit (0.01) and never above ``price``."""
    if bp <= 0:
        return price
    value = (Decimal(price) * (10_000 - min(bp, 10_000)) / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return min(max(int(value), 1), price)


def usage(db, code: str) -> tuple[int, int]:
    """``(accounts, sku_prices)`` that name the level ``code``."""
    from kameng.accounts import User
    from kameng.catalog.models import SkuPrice

    users = db.scalar(select(func.count()).select_from(User).where(User.level == code)) or 0
    prices = db.scalar(select(func.count()).select_from(SkuPrice).where(SkuPrice.kind == "level",
                                                                         SkuPrice.ref == code)) or 0
    return users, prices


# -- the admin's changes ---------------------------------------------------------------------------


def _threshold(value, field: str, currency: str) -> int | None:
    from kameng import money

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _invalid(_("Write an amount like \"100.00\", or leave it empty."), field)
    try:
        minor = money.parse_minor(value.strip(), currency)
    except money.MoneyError:
        raise _invalid(_("Write an amount like \"100.00\", or leave it empty."), field) from None
    if minor > MAX_THRESHOLD:
        raise _invalid(_("The amount is too large."), field)
    return minor


def clean(db, data: dict, currency: str, level: MemberLevel | None = None) -> dict:
    """A level's fields from a form or a JSON body, checked: ``code``,
    ``name``, ``discount`` (percent), ``min_paid`` and ``min_topup``
    (amounts, empty: not by this rule), ``rank``. Raises APIError 422 (or
    409 for a code or rank taken) naming the field."""
    out = {}
    if level is None:
        code = data.get("code")
        if not isinstance(code, str) or not CODE.match(code.strip()):
            raise _invalid(_("The code is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or "
                             "digit."), "code")
        code = code.strip()
        if get_level(db, code) is not None:
            raise _invalid(_("The code ${code} is taken.", mapping={"code": code}), "code", 409, "code_taken")
        out["code"] = code
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME or "\x00" in name:
        raise _invalid(_("Give the level a name of at most ${n} characters.", mapping={"n": MAX_NAME}), "name")
    out["name"] = name.strip()
    discount = data.get("discount", "0")
    if discount is None or (isinstance(discount, str) and not discount.strip()):
        discount = "0"
    if isinstance(discount, int) and not isinstance(discount, bool):
        discount = str(discount)
    try:
        out["discount_bp"] = parse_percent(discount)
    except ValueError:
        raise _invalid(_("The discount is a percentage from 0 to 100 with up to two decimals."),
                       "discount") from None
    out["min_paid"] = _threshold(data.get("min_paid"), "min_paid", currency)
    out["min_topup"] = _threshold(data.get("min_topup"), "min_topup", currency)
    rank = data.get("rank", 0)
    if isinstance(rank, str) and re.fullmatch(r"-?[0-9]{1,7}", rank.strip()):
        rank = int(rank.strip())
    if isinstance(rank, bool) or not isinstance(rank, int) or not -MAX_RANK <= rank <= MAX_RANK:
        raise _invalid(_("The rank is a whole number; a higher rank is a better level."), "rank")
    taken = db.scalar(select(MemberLevel).where(MemberLevel.rank == rank))
    if taken is not None and taken is not level:
        raise _invalid(_("The level ${name} has this rank already: each level needs its own.",
                         mapping={"name": taken.name}), "rank", 409, "rank_taken")
    out["rank"] = rank
    return out


def _detail(level: MemberLevel) -> dict:
    return {"name": level.name, "discount_bp": level.discount_bp, "min_paid": level.min_paid,
            "min_topup": level.min_topup, "rank": level.rank}


def create_level(db, data: dict, currency: str, actor: str) -> MemberLevel:
    from kameng import audit

    values = clean(db, data, currency)
    level = MemberLevel(**values)
    db.add(level)
    db.flush()
    audit.record(db, actor, "level.create", f"level:{level.code}", **_detail(level))
    return level


def update_level(db, level: MemberLevel, data: dict, currency: str, actor: str) -> MemberLevel:
    """Change a level (its code stays: accounts and SKU prices name it)."""
    from kameng import audit

    for name, value in clean(db, data, currency, level).items():
        setattr(level, name, value)
    db.flush()
    audit.record(db, actor, "level.update", f"level:{level.code}", **_detail(level))
    return level


def delete_level(db, level: MemberLevel, actor: str) -> None:
    """Delete a level no account has and no SKU price names; 409 otherwise."""
    from kameng import audit

    users, prices = usage(db, level.code)
    if users or prices:
        raise _invalid(_("${users} accounts have this level and ${prices} SKU prices name it: change those "
                         "first.", mapping={"users": users, "prices": prices}), "code", 409, "level_in_use")
    audit.record(db, actor, "level.delete", f"level:{level.code}", name=level.name)
    db.delete(level)
    db.flush()


# -- the rules -------------------------------------------------------------------------------------


def totals(db, user_id: int) -> tuple[int, int]:
    """``(paid, topup)`` of an account, in minor units (see the module's doc)."""
    from kameng.orders.models import Order
    from kameng.wallet import LedgerEntry

    paid = db.scalar(select(func.coalesce(func.sum(Order.amount - Order.refunded_amount), 0)).where(
        Order.user_id == user_id, Order.status == "delivered")) or 0
    topup = db.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.user_id == user_id, LedgerEntry.reason == "topup")) or 0
    return int(paid), int(topup)


def level_for_totals(db, paid: int, topup: int) -> MemberLevel | None:
    """The best-ranked level whose ``min_paid`` ≤ ``paid`` or ``min_topup`` ≤ ``topup``."""
    return db.scalar(select(MemberLevel).where(or_(
        MemberLevel.min_paid.is_not(None) & (MemberLevel.min_paid <= paid),
        MemberLevel.min_topup.is_not(None) & (MemberLevel.min_topup <= topup)))
        .order_by(MemberLevel.rank.desc(), MemberLevel.id.desc()).limit(1))


def reassess(db, user, actor: str = "system") -> str | None:
    """Move ``user`` up to the level its totals reach; the new level's code,
    or None when nothing changed. Never lowers a level, and leaves an
    account whose level an admin set by hand alone. Call it in the
    transaction that changed the totals."""
    from kameng import audit
    from kameng.accounts import User

    if user is None or user.level_manual or getattr(user, "role", "buyer") == "admin":
        return None
    if db.scalar(select(MemberLevel.id).where(or_(MemberLevel.min_paid.is_not(None),
                                                  MemberLevel.min_topup.is_not(None))).limit(1)) is None:
        return None  # no level is reached by rule: nothing to add up
    paid, topup = totals(db, user.id)
    target = level_for_totals(db, paid, topup)
    if target is None or target.code == user.level:
        return None
    current = get_level(db, user.level) if user.level else None
    if current is not None and current.rank >= target.rank:
        return None
    # lock the account and read it again: a concurrent delivery that raised
    # the level first is seen, and never lowered by this one (PostgreSQL:
    # FOR NO KEY UPDATE, the wallet's own lock on the row)
    user = db.scalar(select(User).where(User.id == user.id).with_for_update(key_share=True)
                     .execution_options(populate_existing=True))
    if user.level_manual:
        return None
    current = get_level(db, user.level) if user.level else None
    if user.level == target.code or (current is not None and current.rank >= target.rank):
        return None
    before = user.level
    user.level = target.code
    audit.record(db, actor, "user.level", f"user:{user.id}", level=target.code, previous=before, by="rule",
                 paid=paid, topup=topup)
    log.info("member_level_raised", extra={"user_id": user.id, "level": target.code, "previous": before})
    return target.code


def reassess_id(db, user_id: int | None, actor: str = "system") -> str | None:
    from kameng.accounts import User

    if user_id is None:
        return None
    return reassess(db, db.get(User, user_id), actor=actor)


def set_level(db, user, code, actor: str) -> None:
    """An admin's choice: a level's code (fixed by hand), ``""`` (no level,
    fixed by hand) or :data:`AUTOMATIC` (``None``: back under the rules,
    which then decide at once from the account's totals)."""
    from kameng import audit

    before = (user.level, bool(user.level_manual))
    if code is AUTOMATIC:
        user.level, user.level_manual = None, False
    elif code == "":
        user.level, user.level_manual = None, True
    else:
        level = get_level(db, code)
        if level is None:
            raise _invalid(_("There is no member level ${code}.", mapping={"code": str(code)[:32]}), "level")
        user.level, user.level_manual = level.code, True
    db.flush()
    if (user.level, bool(user.level_manual)) != before:
        audit.record(db, actor, "user.level", f"user:{user.id}", level=user.level, previous=before[0],
                     by="hand" if user.level_manual else "automatic")
    if code is AUTOMATIC:  # the rules decide at once, from the account's totals
        reassess(db, user, actor=actor)


# -- what the buyer sees ---------------------------------------------------------------------------


def level_info(db, user, currency: str = "CNY") -> dict | None:
    """The account's level for its overview page: ``{"code", "name",
    "discount" (percent text), "manual", "paid", "topup", "next"}``; ``next``
    is the next level up that rules give (``{"code", "name", "discount",
    "paid_missing", "topup_missing"}``, missing amounts in minor units or
    None where that rule does not lead there), None when there is none or the
    level is set by hand. None when the shop has no levels."""
    levels = all_levels(db)
    if not levels:
        return None
    current = next((lv for lv in levels if lv.code == user.level), None)
    paid, topup = totals(db, user.id)
    info = {"code": current.code if current else None, "name": current.name if current else None,
            "discount": percent_text(current.discount_bp) if current else "0",
            "discount_bp": current.discount_bp if current else 0, "manual": bool(user.level_manual),
            "paid": paid, "topup": topup, "next": None}
    if not user.level_manual:
        above = [lv for lv in levels if lv.by_rule and (current is None or lv.rank > current.rank)]
        if above:
            nxt = above[0]
            info["next"] = {
                "code": nxt.code, "name": nxt.name, "discount": percent_text(nxt.discount_bp),
                "paid_missing": max(nxt.min_paid - paid, 0) if nxt.min_paid is not None else None,
                "topup_missing": max(nxt.min_topup - topup, 0) if nxt.min_topup is not None else None}
    return info
