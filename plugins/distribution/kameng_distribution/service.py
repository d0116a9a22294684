"""What the distribution plugin does with money: commissions when an order
is delivered, their reversal when it is refunded, and withdrawals.

Everything runs in the caller's transaction (a hook's, or a view's) and
takes the referrer's ledger lock before it reads a balance.
"""
from __future__ import annotations

import logging
import secrets

from sqlalchemy import func, select, update

from kameng import audit, strictjson, wallet
from kameng.accounts import User
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import MoneyError, format_minor, parse_minor

from kameng_distribution import config, ledger, members
from kameng_distribution.config import FULL, MAX_LEVELS
from kameng_distribution.models import (
    CREDITED,
    PAID_BALANCE,
    PAID_MANUAL,
    PARTIAL,
    PENDING,
    REJECTED,
    REVERSED,
    Commission,
    ProductRate,
    Withdrawal,
)

log = logging.getLogger(__name__)

COOKIE = "kameng_ref"
COOKIE_DAYS = 30
FORM_FIELD = "referral_code"


# -- binding a new account -------------------------------------------------------------------


def typed_code(request) -> str:
    """The referral code typed into the register form (or sent in a JSON
    registration), stripped; "" when none."""
    value = None
    if (request.content_type or "") == "application/json":
        try:
            body = strictjson.loads(request.body)
        except (ValueError, TypeError):
            body = None
        value = body.get(FORM_FIELD) if isinstance(body, dict) else None
    elif request.method == "POST":
        value = request.POST.get(FORM_FIELD)
    return value.replace("\x00", "").strip()[:64] if isinstance(value, str) else ""


def on_registered(request, user) -> None:
    """Bind a new account to its referrer: the code typed into the form
    first, else the referral cookie. A typed code that does not exist
    refuses the registration (the buyer mistyped it); a stale cookie is
    ignored."""
    db = request.db
    typed = typed_code(request)
    if typed:
        referrer = members.by_code(db, typed)
        if referrer is None:
            raise APIError(422, "invalid_referral_code",
                           _("This referral code does not exist. Check it, or leave the field empty."))
        members.bind(db, user.id, referrer, "form")
        return
    cookie = request.cookies.get(COOKIE)
    referrer = members.by_code(db, cookie) if cookie else None
    if referrer is not None:
        members.bind(db, user.id, referrer, "cookie")
    else:
        members.ensure(db, user.id)


# -- commissions -----------------------------------------------------------------------------


def product_rates(db, product_id: int | None) -> ProductRate | None:
    return db.get(ProductRate, product_id) if product_id is not None else None


def effective_rates(db, product_id: int | None, cfg: config.Config) -> list[int]:
    """The rate of each level for a product: its own where set, else the global one."""
    override = product_rates(db, product_id)
    rates = list(cfg.rates)
    if override is not None:
        for n in range(MAX_LEVELS):
            own = getattr(override, f"rate_{n + 1}")
            if own is not None:
                rates[n] = own
    return rates


def credit_order(request, order) -> list[Commission]:
    """Credit the buyer's referrers for a delivered order, once per level.
    A guest order earns nothing; nor does an account its own purchase."""
    if order.user_id is None or order.amount <= 0:
        return []
    db = request.db
    cfg = config.read(request)
    referrers = members.chain(db, order.user_id, cfg.levels)
    if not referrers:
        return []
    rates = effective_rates(db, order.product_id, cfg)
    done = {c.level: c for c in db.scalars(select(Commission).where(Commission.order_id == order.id))}
    left = order.amount - sum(c.amount for c in done.values())  # never more than the order paid, in all
    made = []
    for level, beneficiary_id in enumerate(referrers, start=1):
        rate = rates[level - 1]
        if level in done or rate <= 0:
            continue
        beneficiary = db.get(User, beneficiary_id)
        if beneficiary is None or not beneficiary.is_active:
            continue
        amount = min(order.amount * rate // FULL, left)
        if amount <= 0:
            continue
        left -= amount
        commission = Commission(order_id=order.id, order_no=order.order_no, buyer_id=order.user_id,
                                beneficiary_id=beneficiary_id, level=level, base=order.amount, rate=rate,
                                amount=amount, reversed_amount=0, currency=order.currency, status=CREDITED)
        db.add(commission)
        db.flush()
        ledger.post(db, beneficiary_id, amount, order.currency, "commission",
                    ref=f"commission:{order.order_no}:{level}", note=order.order_no)
        made.append(commission)
        log.info("commission_credited", extra={"order_no": order.order_no, "level": level,
                                               "beneficiary": beneficiary_id, "amount": amount})
    if made and order.refunded_amount:  # money already went back before delivery: take its share now
        reverse_order(request, order)
    return made


def reverse_order(request, order) -> int:
    """Take back the refunded share of an order's commissions: for each,
    ``floor(commission × refunded / paid)`` in all, less what was taken
    back before; a full refund takes it all. The balance may go below
    zero when the referrer already withdrew. Returns the amount reversed now."""
    db = request.db
    rows = list(db.scalars(select(Commission).where(Commission.order_id == order.id)
                           .order_by(Commission.level).with_for_update()))
    if not rows or order.amount <= 0:
        return 0
    refunded = min(max(order.refunded_amount, 0), order.amount)
    total = 0
    for c in rows:
        target = c.amount if refunded >= order.amount else c.amount * refunded // order.amount
        delta = target - c.reversed_amount
        if delta <= 0:
            continue
        ledger.post(db, c.beneficiary_id, -delta, c.currency, "reversal", ref=f"reversal:{c.id}:{target}",
                    note=order.order_no, allow_negative=True)
        c.reversed_amount = target
        c.status = REVERSED if target >= c.amount else PARTIAL
        total += delta
        log.info("commission_reversed", extra={"order_no": order.order_no, "level": c.level,
                                               "beneficiary": c.beneficiary_id, "amount": delta})
    db.flush()
    return total


# -- withdrawals -----------------------------------------------------------------------------


def new_withdrawal_no() -> str:
    return utcnow().strftime("W%y%m%d%H%M%S") + f"{secrets.randbelow(10 ** 12):012d}"


def parse_amount(text, currency: str) -> int:
    try:
        return parse_minor((text or "").strip(), currency)
    except MoneyError:
        raise APIError(422, "invalid_amount", _("Enter an amount such as 50.00.")) from None


def request_withdrawal(request, user, amount: int, payee: str = "") -> Withdrawal:
    """A referrer asks for ``amount`` of their commission balance. The amount
    is taken from the balance at once (held), so it cannot be asked twice;
    the fee is kept by the shop and the rest paid out once an admin approves."""
    db = request.db
    cfg = config.read(request)
    currency = request.shop["currency"]
    if amount <= 0 or amount < cfg.min_withdrawal:
        raise APIError(422, "below_minimum", _("The smallest withdrawal is ${min}.",
                                               mapping={"min": format_minor(cfg.min_withdrawal, currency)}))
    fee = cfg.fee_of(amount)
    if amount - fee <= 0:
        raise APIError(422, "invalid_amount", _("After the fee nothing would be left to pay out."))
    ledger.lock(db, user.id)
    balance = ledger.balance(db, user.id)
    if balance < amount:
        raise APIError(409, "insufficient_balance", _("Your commission balance (${balance}) is not enough.",
                                                      mapping={"balance": format_minor(balance, currency)}))
    withdrawal = Withdrawal(withdrawal_no=new_withdrawal_no(), user_id=user.id, amount=amount, fee=fee,
                            net=amount - fee, currency=currency, payee=(payee or "").strip()[:200],
                            status=PENDING, note="")
    db.add(withdrawal)
    db.flush()
    ledger.post(db, user.id, -amount, currency, "withdrawal", ref=f"withdrawal:{withdrawal.withdrawal_no}",
                note=withdrawal.withdrawal_no, actor=user.email, locked=True)
    log.info("withdrawal_requested", extra={"withdrawal_no": withdrawal.withdrawal_no, "user_id": user.id,
                                            "amount": amount})
    return withdrawal


ACTIONS = ("approve_balance", "paid_manual", "reject")


def decide(request, withdrawal_no: str, action: str, note: str, actor: str) -> Withdrawal:
    """An admin's decision on a pending withdrawal, once: pay the net amount
    to the account's shop balance, record it as paid by hand (``note``: the
    transfer number), or reject it (``note``: the reason; the whole amount
    goes back to the commission balance)."""
    db = request.db
    note = (note or "").strip()[:255]
    if action not in ACTIONS:
        raise APIError(404, "not_found", _("Not found."))
    withdrawal = db.scalar(select(Withdrawal).where(Withdrawal.withdrawal_no == withdrawal_no).with_for_update()
                           .execution_options(populate_existing=True))
    if withdrawal is None:
        raise APIError(404, "not_found", _("Not found."))
    if action == "paid_manual" and not note:
        raise APIError(422, "note_required", _("Write how it was paid, e.g. the transfer number."))
    if action == "reject" and not note:
        raise APIError(422, "reason_required", _("Give the reason for the rejection."))
    status = {"approve_balance": PAID_BALANCE, "paid_manual": PAID_MANUAL, "reject": REJECTED}[action]
    moved = db.execute(update(Withdrawal).where(Withdrawal.id == withdrawal.id, Withdrawal.status == PENDING)
                       .values(status=status, note=note, decided_at=utcnow(), decided_by=actor[:254])
                       .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        raise APIError(409, "already_decided", _("This withdrawal has already been decided."))
    db.refresh(withdrawal)
    if action == "approve_balance":
        wallet.post(db, withdrawal.user_id, withdrawal.net, withdrawal.currency, "commission",
                    ref=f"distribution:{withdrawal.withdrawal_no}", note=withdrawal.withdrawal_no, actor=actor)
    elif action == "reject":
        ledger.post(db, withdrawal.user_id, withdrawal.amount, withdrawal.currency, "withdrawal_returned",
                    ref=f"withdrawal-returned:{withdrawal.withdrawal_no}", note=withdrawal.withdrawal_no, actor=actor)
    audit.record(db, actor, f"distribution.withdrawal.{action}", withdrawal.withdrawal_no,
                 amount=withdrawal.amount, net=withdrawal.net, note=note)
    log.info("withdrawal_decided", extra={"withdrawal_no": withdrawal.withdrawal_no, "action": action})
    return withdrawal


def pending_withdrawals(db) -> int:
    return db.scalar(select(func.count()).select_from(Withdrawal).where(Withdrawal.status == PENDING)) or 0
