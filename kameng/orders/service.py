"""The order lifecycle after checkout: payment, delivery, expiry, refunds.

Every function runs in the caller's transaction and takes the order's row
lock first, so two workers, a notify and an admin never act on one order
at once. Work that happens after commit (delivery, refunds through a
gateway, notifications) is queued as jobs in the same transaction: a crash
at any point loses nothing and repeats nothing.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import secrets

from sqlalchemy import and_, delete, func, select, update

from kameng import jobs, wallet
from kameng.accounts import User
from kameng.audit import actor_of
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.i18n import _
from kameng.inventory import service as inventory
from kameng.inventory.models import RESERVED, SOLD, VOID, CardKey
from kameng.money import format_minor
from kameng.notifications import emit
from kameng.orders import states
from kameng.orders.checkout import NEW_ORDERS, access_token, out_of_stock, take_counted_stock
from kameng.orders.models import Order, Refund
from kameng.orders.states import CANCELLED, DELIVERED, DELIVERING, EXPIRED, FAILED, PAID, PENDING, REFUNDED
from kameng.payments.models import CLOSED as ATTEMPT_CLOSED
from kameng.payments.models import PAID as ATTEMPT_PAID
from kameng.payments.models import PENDING as ATTEMPT_PENDING
from kameng.payments.models import PaymentAttempt
from kameng.types import PaymentAction

log = logging.getLogger(__name__)

DELIVER = "kameng.orders.deliver"
REFUND = "kameng.orders.refund"
EXPIRE = "kameng.orders.expire"
QUERY = "kameng.payments.query"
CLOSE = "kameng.payments.close"
#: reserved keys of a paid order are kept this long for its delivery job
PAID_HOLD = dt.timedelta(days=30)
#: how often (seconds after the attempt) an unanswered payment is queried
QUERY_ROUNDS = (300, 900, 1800, 3600)
BALANCE = "balance"


# -- reading -------------------------------------------------------------------------------


def get(db, order_no, lock: bool = False) -> Order | None:
    if not isinstance(order_no, str) or not order_no.isdigit() or len(order_no) > 24:
        return None
    stmt = select(Order).where(Order.order_no == order_no)
    return db.scalar(stmt.with_for_update() if lock else stmt)


def order_url(request, order: Order, token: bool = True) -> str:
    """The buyer's page for ``order`` on the public base URL (for emails and
    gateways); with the access token, it opens without a password."""
    query = {"token": access_token(request, order.order_no)} if token else {}
    return request.public_url("order", order_no=order.order_no, _query=query)


def event_data(request, order: Order) -> dict:
    """What notification plugins receive about an order: never keys."""
    return {"order_no": order.order_no, "status": order.status, "product": order.product_name,
            "sku": order.sku_code, "sku_name": order.sku_name, "quantity": order.quantity,
            "amount": format_minor(order.amount, order.currency), "currency": order.currency,
            "contact": order.contact, "user_id": order.user_id, "url": order_url(request, order),
            "reason": order.failure_reason}


def keyed(order: Order) -> bool:
    """The order's goods are card keys from this shop's own stock (a
    supplier's keys arrive with its answer instead)."""
    return order.product_type == "card_key" and order.fulfilment != "upstream"


def keys_of(request, order: Order) -> list[dict]:
    """The plaintext keys sold to ``order`` (only call for someone allowed to see them)."""
    if order.status not in (DELIVERED, REFUNDED) or order.product_type != "card_key":
        return []
    keyring = request.registry["kameng.keyring"]
    rows = request.db.scalars(select(CardKey).where(CardKey.order_ref == order.order_no, CardKey.state == SOLD)
                              .order_by(CardKey.id))
    out = []
    for key in rows:
        number, secret = inventory.reveal(keyring, key)
        out.append({"id": key.id, "number": number, "secret": secret})
    return out


def delivery_text(request, order: Order) -> str | None:
    """What an admin typed when delivering a manual order, decrypted."""
    if not order.delivery_note:
        return None
    return request.registry["kameng.keyring"].decrypt(order.delivery_note, f"order:{order.order_no}")


def events_of(db, order: Order, public_only: bool = True) -> list:
    from kameng.orders.models import OrderEvent

    stmt = select(OrderEvent).where(OrderEvent.order_id == order.id)
    if public_only:
        stmt = stmt.where(OrderEvent.public.is_(True))
    return list(db.scalars(stmt.order_by(OrderEvent.id)))


def attempts_of(db, order: Order) -> list[PaymentAttempt]:
    return list(db.scalars(select(PaymentAttempt).where(PaymentAttempt.order_id == order.id)
                           .order_by(PaymentAttempt.id)))


def refunds_of(db, order: Order) -> list[Refund]:
    return list(db.scalars(select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)))


# -- payment -------------------------------------------------------------------------------


def start_payment(request, order: Order, method: str, channel: str | None = None,
                  actor: str | None = None) -> tuple[PaymentAttempt | None, PaymentAction | None]:
    """Begin paying a pending order with ``method`` (a gateway, or ``balance``).

    A gateway gets an attempt (re-used when the same gateway, channel and
    amount are asked again) and returns what the buyer must do; the balance
    pays at once. Raises :class:`APIError` when the order cannot be paid."""
    from kameng.payments.service import get_gateway, payment_action

    attempt = open_attempt(request, order, method, channel, actor)
    if method == BALANCE:
        return attempt, None
    return attempt, payment_action(request, get_gateway(request, method), attempt)


def open_attempt(request, order: Order, method: str, channel: str | None = None,
                 actor: str | None = None) -> PaymentAttempt:
    """The checks and the attempt of :func:`start_payment`, without asking
    the provider anything (the conformance kit pays such attempts by notify)."""
    from kameng.orders.checkout import check_payment_method
    from kameng.risk import RiskVerdict, refusal
    from kameng.risk import fold as risk_verdict
    from kameng.payments.service import create_attempt, get_gateway

    if order.status != PENDING or order.expires_at <= utcnow():
        raise APIError(409, "order_not_payable", _("This order can no longer be paid."))
    user = request.db.get(User, order.user_id) if order.user_id else None
    check_payment_method(request, method, channel, user)
    verdict = risk_verdict(request.hooks.kameng_risk_check_payment(request=request, order=order, gateway_id=method))
    if verdict.action == "deny":
        if not verdict.user_message and verdict.code in ("", "blocked"):
            verdict = RiskVerdict(action="deny", code="blocked", user_message=_(
                "This payment cannot be made. Contact the shop if you think this is a mistake."))
        raise refusal(request, verdict)
    if verdict.action == "review" and not order.held:
        order.held = "; ".join(verdict.reasons)[:255] or "review"
    if method == BALANCE:
        attempt = pay_with_balance(request, order, user, actor=actor or user.email)
        order.payment_method, order.channel = method, None
        return attempt
    gateway = get_gateway(request, method)
    order.payment_method, order.channel = method, channel
    attempt = None
    if order.id not in request.db.info.get(NEW_ORDERS, ()):  # an order made in this transaction has none
        attempt = request.db.scalar(select(PaymentAttempt).where(
            PaymentAttempt.order_id == order.id, PaymentAttempt.gateway == method,
            PaymentAttempt.status == ATTEMPT_PENDING, PaymentAttempt.amount == order.amount,
            (PaymentAttempt.channel == channel) if channel else PaymentAttempt.channel.is_(None)))
    if attempt is None:
        attempt = create_attempt(request, gateway, order.amount, order.currency,
                                 f"{order.product_name} {order.sku_name} x{order.quantity}", purpose="order",
                                 channel=channel, order_id=order.id)
        request.db.info.get(NEW_ORDERS, set()).discard(order.id)  # it has one now
        states.note(request.db, order, "payment", f"{method}: {attempt.attempt_no}", actor=actor or "buyer",
                    public=False)
        # a new attempt number: its key cannot be taken yet (no savepoint needed)
        jobs.enqueue(request.db, QUERY, {"attempt_no": attempt.attempt_no, "round": 0}, delay=query_delay(request, 0),
                     dedupe_key=f"query:{attempt.attempt_no}:0", new_key=True)
    return attempt


def pay_with_balance(request, order: Order, user, actor: str) -> PaymentAttempt:
    from kameng.payments.service import new_attempt_no

    if user is None or user.id != order.user_id:
        raise APIError(422, "payment_method_unavailable", _("Sign in to pay with your balance."))
    try:
        entry = wallet.post(request.db, user.id, -order.amount, order.currency, "order", ref=f"order:{order.order_no}",
                            note=order.order_no, actor=actor)
    except wallet.InsufficientBalance as exc:
        raise APIError(409, "insufficient_balance", _("Your balance (${balance}) is not enough for this order.",
                                                      mapping={"balance": format_minor(exc.balance, order.currency)}),
                       balance=format_minor(exc.balance, order.currency)) from None
    attempt = PaymentAttempt(attempt_no=new_attempt_no(), gateway=BALANCE, purpose="order", order_id=order.id,
                             subject=order.product_name[:255], amount=order.amount, currency=order.currency,
                             status=ATTEMPT_PAID, provider_trade_no=f"ledger:{entry.id}", paid_at=utcnow(),
                             created_by=actor[:254])
    request.db.add(attempt)
    request.db.flush()
    mark_paid(request, order, attempt, actor=actor, reason=_("Paid from balance"))
    return attempt


def query_delay(request, round_no: int) -> float:
    scale = float(request.registry.settings.get("kameng.payments.query_delay_scale", 1.0))
    return QUERY_ROUNDS[min(round_no, len(QUERY_ROUNDS) - 1)] * scale


def attempt_paid(request, attempt: PaymentAttempt) -> None:
    """The core's reaction to a payment attempt that just became paid (in
    the notify's transaction). Exactly once per attempt."""
    _drop_queries(request.db, attempt)
    order = request.db.scalar(select(Order).where(Order.id == attempt.order_id).with_for_update())
    if order is None:
        return
    actor = f"gateway:{attempt.gateway}"
    if order.status == PENDING:
        mark_paid(request, order, attempt, actor=actor)
    elif order.status in (EXPIRED, CANCELLED):
        late_payment(request, order, attempt, actor)
    else:
        # the order was already paid through another attempt: this money goes back
        states.note(request.db, order, "payment", _("A second payment (${no}) arrived and is refunded.",
                                                     mapping={"no": attempt.attempt_no}), actor=actor)
        create_refund(request, order, attempt.amount, "duplicate payment", actor=actor, attempt=attempt)
        emit(request.db, "payment.duplicate", event_data(request, order))


def _drop_queries(db, attempt: PaymentAttempt) -> None:
    """A paid attempt needs no more reconciliation: its queued query job
    goes now, in this transaction, instead of running later for nothing."""
    keys = [f"query:{attempt.attempt_no}:{n}" for n in range(len(QUERY_ROUNDS))]
    db.execute(delete(jobs.Job).where(jobs.Job.dedupe_key.in_(keys), jobs.Job.status == jobs.QUEUED)
               .execution_options(synchronize_session=False))


def attempt_failed(request, attempt: PaymentAttempt) -> None:
    order = request.db.scalar(select(Order).where(Order.id == attempt.order_id))
    if order is not None and order.status == PENDING:
        states.note(request.db, order, "payment", _("The payment failed; you can try again."),
                    actor=f"gateway:{attempt.gateway}")


def mark_paid(request, order: Order, attempt: PaymentAttempt | None, actor: str, reason: str = "",
              deliver_now: bool = True) -> None:
    states.transition(request.db, order, PAID, actor=actor, reason=reason)
    order.paid_attempt_id = attempt.id if attempt is not None else None
    _hold_for_delivery(request.db, order)
    request.hooks.kameng_order_paid(request=request, order=order, payment=attempt)
    emit(request.db, "order.paid", event_data(request, order))
    log.info("order_paid", extra={"order_no": order.order_no, "gateway": attempt.gateway if attempt else "none"})
    if deliver_now:
        start_delivery(request, order)


def start_delivery(request, order: Order) -> None:
    """Hand a paid order over, in the payment's transaction when that is
    quick and local, else through the delivery job.

    Card keys from the shop's own stock were reserved with the order: selling
    them is a few statements, so the buyer gets them in the same commit as
    the payment (no wait for a worker, no window where money is in and the
    order undelivered). Upstream orders, hand-fulfilled goods and held
    orders go to the job, which may call out or wait. If the quick path
    fails, its savepoint is rolled back and the job takes over."""
    if order.status == PAID and not order.held and order.fulfilment == "stock" and order.product_type == "card_key":
        try:
            with request.db.begin_nested():
                deliver(request, order)
        except Exception:  # the savepoint is rolled back; a broken transaction fails the enqueue below
            log.exception("delivery_deferred", extra={"order_no": order.order_no})
        if order.status != PAID:
            return
    jobs.enqueue(request.db, DELIVER, {"order_no": order.order_no}, dedupe_key=f"deliver:{order.order_no}")


def _hold_for_delivery(db, order: Order) -> None:
    """Paid: its reserved keys must outlive the reservation sweeper."""
    db.execute(update(CardKey).where(CardKey.order_ref == order.order_no, CardKey.state == RESERVED)
               .values(reserved_until=utcnow() + PAID_HOLD).execution_options(synchronize_session=False))


def late_payment(request, order: Order, attempt: PaymentAttempt, actor: str) -> None:
    """Money for an order that expired or was cancelled: deliver if the
    stock is still there, else refund it all."""
    was = order.status
    mark_paid(request, order, attempt, actor=actor, reason=_("Paid after the order had ${status}.",
                                                               mapping={"status": was}), deliver_now=False)
    if not ensure_stock(request.db, order):
        fail(request, order, _("Paid after the order expired, and the stock was gone: refunded."), actor=actor)
        return
    start_delivery(request, order)


def ensure_stock(db, order: Order) -> bool:
    """Make sure the order holds its stock (again); False if it cannot."""
    from kameng.catalog.models import Sku

    if keyed(order):
        held = db.scalar(select(func.count()).where(CardKey.order_ref == order.order_no,
                                                    CardKey.state.in_((RESERVED, SOLD)))) or 0
        missing = order.quantity - held
        if missing <= 0:
            return True
        if order.sku_id is None:
            return False
        try:
            inventory.reserve(db, order.sku_id, missing, order.order_no, utcnow() + PAID_HOLD)
        except inventory.OutOfStock:
            return False
        return True
    if order.stock_held or order.sku_id is None:
        return True
    sku = db.get(Sku, order.sku_id)
    if sku is None or sku.stock is None:
        return True
    try:
        take_counted_stock(db, sku, order.quantity)
    except APIError:
        return False
    order.stock_held = order.quantity
    return True


def release_stock(db, order: Order) -> None:
    """Give back what the order holds and has not been delivered."""
    from kameng.catalog.models import Sku

    if keyed(order):
        inventory.release(db, order.order_no)
    elif order.stock_held and order.sku_id is not None:
        db.execute(update(Sku).where(Sku.id == order.sku_id, Sku.stock.is_not(None))
                   .values(stock=Sku.stock + order.stock_held).execution_options(synchronize_session=False))
        order.stock_held = 0


# -- delivery ------------------------------------------------------------------------------


def deliver_job(request, payload) -> None:
    order = get(request.db, payload.get("order_no"), lock=True)
    if order is not None:
        deliver(request, order)


def deliver(request, order: Order, actor: str = "system") -> None:
    """Deliver a paid order (idempotent: any other status is left alone)."""
    db = request.db
    if order.status != PAID:
        return
    if order.held:
        states.note(db, order, "delivery", _("Held for review before delivery: ${why}", mapping={"why": order.held}),
                    actor=actor, public=False)
        emit(db, "order.held", event_data(request, order))
        return
    if order.fulfilment == "upstream":
        if not ensure_stock(db, order):
            fail(request, order, _("Out of stock when the payment arrived: refunded."), actor=actor)
            return
        from kameng.suppliers.service import start_upstream

        start_upstream(request, order, actor)
        return
    if order.product_type == "card_key":
        if not ensure_stock(db, order):
            fail(request, order, _("Out of stock when the payment arrived: refunded."), actor=actor)
            return
        keys = inventory.sell(db, order.order_no)
        if len(keys) != order.quantity:  # never hand over a different number than was paid for
            log.error("delivery_key_count", extra={"order_no": order.order_no, "keys": len(keys)})
            raise RuntimeError(f"order {order.order_no} holds {len(keys)} keys for {order.quantity}")
        states.transition(db, order, DELIVERED, actor=actor, reason=_("Card keys delivered"))
        delivered(request, order)
        return
    reason = (_("Waiting for the shop to top up the account.") if order.product_type == "direct_recharge"
              else _("Waiting for the shop to fulfil the order."))
    states.transition(db, order, DELIVERING, actor=actor, reason=reason)
    emit(db, "order.awaiting_fulfilment", event_data(request, order))


def delivered(request, order: Order) -> None:
    request.hooks.kameng_order_delivered(request=request, order=order)
    emit(request.db, "order.delivered", event_data(request, order))
    log.info("order_delivered", extra={"order_no": order.order_no})


def fulfil_by_hand(request, order: Order, text: str, actor: str) -> None:
    """An admin delivers a manual or recharge order, with a message for the
    buyer (an account, a code: stored encrypted, shown on the order page)."""
    if keyed(order):
        raise APIError(409, "not_manual", _("Card-key orders are delivered automatically; use re-deliver."))
    if order.status == FAILED:
        # a failed order's money may already be on its way back: never deliver and refund both
        _no_refund_started(request.db, order)
        if not ensure_stock(request.db, order):  # fail() gave counted stock back
            raise out_of_stock()
    if order.status == PAID:
        states.transition(request.db, order, DELIVERING, actor=actor, reason=_("Fulfilment started"))
    if order.status not in (DELIVERING, FAILED):
        raise APIError(409, "illegal_transition", _("This order cannot be delivered now."))
    text = (text or "").strip()
    if text:
        order.delivery_note = request.registry["kameng.keyring"].encrypt(text[:5000], f"order:{order.order_no}")
    states.transition(request.db, order, DELIVERED, actor=actor, reason=_("Fulfilled by the shop"))
    delivered(request, order)


def _no_refund_started(db, order: Order) -> None:
    if order.refunded_amount or any(r.status == "pending" for r in refunds_of(db, order)):
        raise APIError(409, "refund_started", _("A refund has been started for this order."))


def redeliver(request, order: Order, actor: str, reason: str) -> None:
    """Try a failed (or held) order's delivery again, e.g. after restocking."""
    if order.status == FAILED:
        _no_refund_started(request.db, order)
        states.transition(request.db, order, PAID, actor=actor, reason=reason)
        order.failure_reason = ""
    elif order.status != PAID:
        raise APIError(409, "illegal_transition", _("Only paid or failed orders can be delivered again."))
    order.held = ""
    deliver(request, order, actor=actor)


def fail(request, order: Order, reason, actor: str, refund: bool = True) -> None:
    """Delivery is impossible: release what the order holds, refund what
    was paid, tell the admin, and say so on the order page."""
    states.transition(request.db, order, FAILED, actor=actor, reason=reason)
    order.failure_reason = states.stored_text(reason)[0][:255]
    release_stock(request.db, order)
    emit(request.db, "order.failed", event_data(request, order))
    due = refundable(request.db, order)
    if refund and due > 0:
        create_refund(request, order, due, str(order.failure_reason), actor=actor)
    request.hooks.kameng_order_failed(request=request, order=order)


def replace_key(request, order: Order, key_id: int, actor: str, reason: str) -> str:
    """A delivered key does not work: void it, then give the buyer another
    one or, with none in stock, refund its share. Returns ``replaced`` or
    ``refunded``."""
    db = request.db
    key = db.scalar(select(CardKey).where(CardKey.id == key_id).with_for_update())
    if key is None or key.order_ref != order.order_no or key.state != SOLD or order.status != DELIVERED:
        raise APIError(409, "not_replaceable", _("This key is not a delivered key of this order."))
    key.state = VOID
    states.note(db, order, "delivery", _("Key #${id} reported invalid: ${reason}", mapping={"id": key_id,
                                                                                           "reason": reason}),
                actor=actor, public=False)
    try:
        inventory.reserve(db, key.sku_id, 1, order.order_no, utcnow() + PAID_HOLD)
    except inventory.OutOfStock:
        share = min(order.amount // order.quantity if order.quantity else 0, refundable(db, order))
        states.note(db, order, "delivery", _("A key did not work and none was left to replace it: its price "
                                             "is refunded."), actor=actor)
        if share > 0:
            create_refund(request, order, share, f"invalid key #{key_id}: {reason}", actor=actor)
        emit(db, "order.key_refunded", event_data(request, order))
        return "refunded"
    inventory.sell(db, order.order_no)
    states.note(db, order, "delivery", _("A key did not work and was replaced."), actor=actor)
    emit(db, "order.key_replaced", event_data(request, order))
    return "replaced"


def report_problem(request, order: Order, message: str, actor: str) -> None:
    """The buyer says something is wrong (a key does not work)."""
    states.note(request.db, order, "report", message.strip()[:500], actor=actor)
    emit(request.db, "order.reported", {**event_data(request, order), "message": message.strip()[:500]})


# -- expiry and cancellation --------------------------------------------------------------


def close_unpaid(request, order: Order, status: str, actor: str, reason: str) -> None:
    from kameng.payments.service import get_gateway

    states.transition(request.db, order, status, actor=actor, reason=reason)
    release_stock(request.db, order)
    request.hooks.kameng_adjustments_released(request=request, order=order)
    # an open QR code or pay link could still be paid: close it where the gateway can
    for attempt in attempts_of(request.db, order):
        gateway = get_gateway(request, attempt.gateway) if attempt.status == ATTEMPT_PENDING else None
        if gateway is not None and gateway.close_supported:
            jobs.enqueue(request.db, CLOSE, {"attempt_no": attempt.attempt_no},
                         dedupe_key=f"close:{attempt.attempt_no}")


def close_job(request, payload) -> None:
    """Close an unpaid attempt of a closed order at its gateway. A payment
    that slipped in first arrives by notify or query and takes the late
    payment path; closing it then fails and the job gives up quietly."""
    from kameng.payments.service import get_gateway

    db = request.db
    attempt = db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == payload.get("attempt_no"))
                        .with_for_update())
    if attempt is None or attempt.status != ATTEMPT_PENDING:
        return
    gateway = get_gateway(request, attempt.gateway)
    if gateway is None or not gateway.close_supported:
        return
    gateway.close_payment(request, attempt)  # GatewayError: retried by the worker
    attempt.status = ATTEMPT_CLOSED


def cancel(request, order: Order, actor: str, reason: str) -> None:
    if order.status != PENDING:
        raise APIError(409, "illegal_transition", _("Only unpaid orders can be cancelled."))
    close_unpaid(request, order, CANCELLED, actor, reason)


def expire_due(request, payload=None) -> int:
    """Expire pending orders past their time (a scheduled job)."""
    db = request.db
    stmt = (select(Order).where(Order.status == PENDING, Order.expires_at < utcnow())
            .order_by(Order.expires_at).limit(int((payload or {}).get("batch", 500))))
    if db.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    done = 0
    for order in db.scalars(stmt).all():
        close_unpaid(request, order, EXPIRED, "system", _("Not paid in time"))
        done += 1
    if done:
        log.info("orders_expired", extra={"count": done})
    return done


# -- payments that never notified ---------------------------------------------------------


def query_job(request, payload) -> None:
    """Ask the gateway about an attempt whose notify has not come, through
    the same path a notify takes; ask again later while it stays pending."""
    from kameng.payments.service import get_gateway, query_attempt

    db = request.db
    attempt = db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == payload.get("attempt_no")))
    if attempt is None or attempt.status != ATTEMPT_PENDING:
        return
    gateway = get_gateway(request, attempt.gateway)
    if gateway is None:
        return
    if gateway.query_supported:
        query_attempt(request, gateway, attempt)
    round_no = int(payload.get("round", 0)) + 1
    if attempt.status == ATTEMPT_PENDING and round_no < len(QUERY_ROUNDS):
        jobs.enqueue(db, QUERY, {"attempt_no": attempt.attempt_no, "round": round_no},
                     delay=query_delay(request, round_no), dedupe_key=f"query:{attempt.attempt_no}:{round_no}")


# -- refunds -------------------------------------------------------------------------------


def refundable(db, order: Order) -> int:
    """What is left to refund of the order's payment: paid, minus refunded
    and minus refunds under way."""
    pending = db.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.order_id == order.id, Refund.status == "pending",
        (Refund.attempt_id == order.paid_attempt_id) if order.paid_attempt_id else Refund.attempt_id.is_(None)))
    return order.amount - order.refunded_amount - int(pending or 0)


def new_refund_no() -> str:
    return utcnow().strftime("R%y%m%d%H%M%S") + f"{secrets.randbelow(10 ** 19):019d}"


def _refund_destination(request, order: Order, attempt: PaymentAttempt | None, wanted: str | None) -> str:
    from kameng.payments.service import get_gateway

    if attempt is not None and attempt.gateway == BALANCE:
        return "balance"
    if wanted == "balance":
        if order.user_id is None:
            raise APIError(422, "no_balance", _("A guest order cannot be refunded to a balance."))
        return "balance"
    gateway = get_gateway(request, attempt.gateway) if attempt is not None else None
    if wanted in (None, "gateway") and gateway is not None and gateway.refund_supported:
        return "gateway"
    if wanted == "gateway":
        raise APIError(422, "refund_unsupported", _("This payment's gateway cannot refund; refund to the balance "
                                                    "or by hand."))
    if wanted is None and order.user_id is not None:
        return "balance"
    return "manual"


def create_refund(request, order: Order, amount: int, reason: str, actor: str, destination: str | None = None,
                  attempt: PaymentAttempt | None = None) -> Refund | None:
    """Record a refund (its number first) and send the money back: to the
    balance at once, through the gateway by a job, or flagged for the
    admin to pay by hand."""
    db = request.db
    if attempt is None and order.paid_attempt_id is not None:
        attempt = db.get(PaymentAttempt, order.paid_attempt_id)
    primary = attempt is None or attempt.id == order.paid_attempt_id
    if primary and amount > refundable(db, order):
        raise APIError(422, "refund_too_large", _("That is more than is left to refund."))
    if amount <= 0:
        return None
    kind = _refund_destination(request, order, attempt, destination)
    refund = Refund(refund_no=new_refund_no(), order_id=order.id, attempt_id=attempt.id if attempt else None,
                    amount=amount, currency=order.currency, destination=kind, reason=str(reason)[:255],
                    created_by=actor[:254])
    db.add(refund)
    db.flush()
    states.note(db, order, "refund", _("Refund ${no} of ${amount} started (${where}).",
                                        mapping={"no": refund.refund_no, "where": kind,
                                                 "amount": format_minor(amount, order.currency)}), actor=actor)
    if kind == "balance":
        user_id = order.user_id
        wallet.post(db, user_id, amount, order.currency, "refund", ref=f"refund:{refund.refund_no}",
                    note=order.order_no, actor=actor)
        finish_refund(request, refund, order=order)
    elif kind == "gateway":
        jobs.enqueue(db, REFUND, {"refund_no": refund.refund_no}, dedupe_key=f"refund:{refund.refund_no}")
    else:
        emit(db, "refund.manual", {**event_data(request, order), "refund_no": refund.refund_no,
                                   "refund_amount": format_minor(amount, order.currency)})
    return refund


def refund_job(request, payload) -> None:
    """Send a gateway refund; the refund number makes a retry safe."""
    from kameng.payments.service import get_gateway

    db = request.db
    refund = db.scalar(select(Refund).where(Refund.refund_no == payload.get("refund_no")).with_for_update())
    if refund is None or refund.status != "pending" or refund.destination != "gateway":
        return
    attempt = db.get(PaymentAttempt, refund.attempt_id)
    gateway = get_gateway(request, attempt.gateway) if attempt is not None else None
    if gateway is None:
        raise RuntimeError("the refund's gateway is not enabled")
    result = gateway.refund(request, attempt, refund)
    refund.provider_refund_no = (result.provider_refund_no or refund.provider_refund_no)[:128]
    if result.status == "succeeded":
        finish_refund(request, refund)
    elif result.status == "failed":
        refund.status, refund.error, refund.finished_at = "failed", (result.message or "")[:255], utcnow()
        order = db.get(Order, refund.order_id)
        states.note(db, order, "refund", _("Refund ${no} failed at the gateway: ${why}",
                                            mapping={"no": refund.refund_no, "why": refund.error}), public=False)
        emit(db, "refund.failed", {**event_data(request, order), "refund_no": refund.refund_no,
                                   "error": refund.error})
    else:  # pending at the provider: ask again later
        raise RuntimeError("refund pending at the gateway")


def finish_refund(request, refund: Refund, order: Order | None = None, actor: str | None = None) -> None:
    db = request.db
    # the audit trail names who decided the refund (an admin, the system after
    # a failed delivery, the gateway for a duplicate payment), also when a job
    # finishes it later, unless a caller (refund_by_hand) names someone else
    actor = actor or refund.created_by or "system"
    refund.status, refund.finished_at = "succeeded", utcnow()
    order = order or db.scalar(select(Order).where(Order.id == refund.order_id).with_for_update())
    if refund.attempt_id is not None and order.paid_attempt_id is not None and refund.attempt_id != order.paid_attempt_id:
        states.note(db, order, "refund", _("Refund ${no} done.", mapping={"no": refund.refund_no}), actor=actor)
        return
    order.refunded_amount += refund.amount
    if order.refunded_amount >= order.amount and states.can(order.status, REFUNDED):
        states.transition(db, order, REFUNDED, actor=actor, reason=refund.reason)
        release_stock(db, order)
    else:
        states.note(db, order, "refund", _("Refund ${no} done.", mapping={"no": refund.refund_no}), actor=actor)
    request.hooks.kameng_order_refunded(request=request, order=order, refund=refund)
    emit(db, "order.refunded", {**event_data(request, order), "refund_no": refund.refund_no,
                                "refund_amount": format_minor(refund.amount, refund.currency)})


def refund_by_hand(request, refund: Refund, actor: str) -> None:
    """The admin paid a manual (or failed) refund outside kameng."""
    if refund.status == "succeeded":
        return
    finish_refund(request, refund, actor=actor)


def admin_refund(request, order: Order, amount: int | None, reason: str, destination: str | None) -> Refund | None:
    """An admin refunds a paid order (all of what is left, or ``amount``).
    Refunding everything of an order not yet delivered also stops its delivery."""
    actor = actor_of(request)
    if order.status not in states.MONEY_IN:
        raise APIError(409, "illegal_transition", _("Only paid orders can be refunded."))
    due = refundable(request.db, order)
    amount = due if amount is None else amount
    if amount <= 0 or amount > due:
        raise APIError(422, "refund_too_large", _("That is more than is left to refund."))
    if order.status in (PAID, DELIVERING) and amount == due:
        states.transition(request.db, order, FAILED, actor=actor, reason=reason)
        order.failure_reason = reason[:255]
        release_stock(request.db, order)
    return create_refund(request, order, amount, reason, actor=actor, destination=destination)


def stats(db) -> dict:
    """Counts for the dashboard."""
    rows = db.execute(select(Order.status, func.count()).group_by(Order.status)).all()
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    paid_today = db.execute(select(func.count(), func.coalesce(func.sum(Order.amount), 0)).where(
        and_(Order.paid_at >= today, Order.status.in_((PAID, DELIVERING, DELIVERED))))).one()
    return {"by_status": dict(rows), "paid_today": paid_today[0], "revenue_today": paid_today[1]}


def pricing_steps(order: Order) -> list[dict]:
    try:
        return json.loads(order.pricing or "[]")
    except ValueError:
        return []


def recharge_values(order: Order) -> dict:
    try:
        return json.loads(order.recharge or "{}")
    except ValueError:
        return {}
