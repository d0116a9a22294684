"""Fulfilment through supplier connections.

A paid order for a SKU bound to a connection is placed upstream under an
``out_order_no`` written before the first call. The call itself runs outside
any transaction, after the attempt is counted in a transaction of its own,
so a worker that dies mid-call leaves a row that says "submitting": the next
try asks the upstream about that number before it could ever place it again.
Results arrive by the connector's callback or by polling with back-off, and
go through :func:`apply_result`, where terminal states are sticky.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from kameng import jobs
from kameng.db import utcnow
from kameng.i18n import _
from kameng.inventory import service as inventory
from kameng.inventory.models import SOLD, VOID, CardKey
from kameng.orders import states
from kameng.orders.models import Order
from kameng.suppliers.base import SupplierConnector, SupplierError
from kameng.suppliers.connections import settings_of
from kameng.suppliers.models import (FAILED, NEW, PARTIAL, PROCESSING, SUBMITTING, SUCCESS, TERMINAL, UNKNOWN,
                                     SkuUpstream, SupplierConnection, UpstreamOrder)
from kameng.types import UpstreamOrderRequest, UpstreamResult

log = logging.getLogger(__name__)

PLACE = "kameng.suppliers.place"
POLL = "kameng.suppliers.poll"
#: seconds between polls of an order the upstream is still working on
POLL_DELAYS = (5, 15, 30, 60, 120, 300, 600)
RESULT_STATES = (PROCESSING, SUCCESS, FAILED, PARTIAL, UNKNOWN)


def binding_for_sku(db, sku_id: int) -> SkuUpstream | None:
    """The SKU's supplier binding, when its connection is on."""
    return db.scalar(select(SkuUpstream).join(SupplierConnection, SupplierConnection.id == SkuUpstream.connection_id)
                     .where(SkuUpstream.sku_id == sku_id, SupplierConnection.enabled.is_(True)))


def out_order_no(order: Order) -> str:
    return f"K{order.order_no}"


def _delay(request, seconds: float) -> float:
    return seconds * float(request.registry.settings.get("kameng.suppliers.delay_scale", 1.0))


# -- placing ---------------------------------------------------------------------------------


def start_upstream(request, order: Order, actor: str) -> None:
    """Called by delivery for a paid upstream order: record the upstream
    order (its number first) and queue the call."""
    db = request.db
    binding = db.scalar(select(SkuUpstream).where(SkuUpstream.sku_id == order.sku_id))
    connection = db.get(SupplierConnection, binding.connection_id) if binding is not None else None
    if connection is None or not connection.enabled:
        states.transition(db, order, "delivering", actor=actor,
                          reason=_("The supplier of this product is not connected: waiting for the shop."))
        return
    upstream = db.scalar(select(UpstreamOrder).where(UpstreamOrder.order_id == order.id))
    if upstream is None:
        upstream = UpstreamOrder(order_id=order.id, connection_id=connection.id, out_order_no=out_order_no(order),
                                 upstream_sku=binding.upstream_sku, status=NEW,
                                 deadline=utcnow() + dt.timedelta(minutes=connection.deadline_minutes))
        db.add(upstream)
        db.flush()
    states.transition(db, order, "delivering", actor=actor, reason=_("Ordered from the supplier"))
    jobs.enqueue(db, PLACE, {"id": upstream.id}, dedupe_key=f"supplier-place:{upstream.id}")


def _connector_in(registry, s, connection: SupplierConnection) -> SupplierConnector | None:
    """The connection's connector, read in session ``s`` (not the job's own
    transaction: on SQLite that one takes the write lock, which must not be
    held while an upstream takes its time)."""
    from kameng.pluginhost import PluginState

    entry = registry["kameng.connectors"].get(connection.connector)
    state = s.get(PluginState, connection.connector)
    if entry is None or state is None or not state.enabled or not connection.enabled:
        return None
    return entry[1](settings_of(registry["kameng.keyring"], connection))


def _claim_call(request, upstream_id: int) -> tuple[dict, SupplierConnector | None] | None:
    """Count the call in a transaction of its own, committed before the
    call goes out. ``None``: nothing to call (finished, or not ours)."""
    registry = request.registry
    with Session(registry["kameng.write_engine"]) as s, s.begin():
        up = s.scalar(select(UpstreamOrder).where(UpstreamOrder.id == upstream_id).with_for_update())
        if up is None or up.status not in (NEW, SUBMITTING, UNKNOWN):
            return None
        first = up.status == NEW  # never reached the upstream: nothing to ask about
        up.status, up.attempts = SUBMITTING, up.attempts + 1
        order = s.get(Order, up.order_id)
        connection = s.get(SupplierConnection, up.connection_id)
        call = {"first": first, "late": utcnow() >= up.deadline, "connection_id": connection.id,
                "out_order_no": up.out_order_no,
                "sku": up.upstream_sku, "quantity": order.quantity, "recharge": json.loads(order.recharge or "{}"),
                "unit_price": order.unit_price, "currency": order.currency}
        return call, _connector_in(registry, s, connection)


def place_job(request, payload) -> None:
    """Place (or find) the upstream order. A retry never places blindly: it
    asks the upstream about the number first. No transaction is open while
    the upstream is called."""
    from kameng import money

    claimed = _claim_call(request, int(payload["id"]))
    if claimed is None:
        return
    call, connector = claimed
    if call["first"] and call["late"]:  # never sent, and too late to start now
        _not_sent(request, payload["id"], "the deadline passed before the supplier could be reached")
        return
    if connector is None:
        _not_sent(request, payload["id"], "the connector plugin or the connection is off")
        return
    req = UpstreamOrderRequest(out_order_no=call["out_order_no"], sku=call["sku"], quantity=call["quantity"],
                               recharge=call["recharge"],
                               max_unit_cost=Decimal(call["unit_price"]).scaleb(-money.digits(call["currency"])),
                               callback_url=request.public_url("supplier.callback",
                                                               connection_id=call["connection_id"])
                               if connector.callbacks else "")
    try:
        ask = not call["first"] and not connector.places_idempotently
        result = connector.query_order(req.out_order_no) if ask else None
        if result is None:  # never reached the upstream: placing it is safe
            result = connector.place_order(req)
    except SupplierError as exc:
        if not exc.uncertain:  # it certainly did not reach the upstream: send it again later
            _not_sent(request, payload["id"], str(exc))
            return
        result = UpstreamResult(UNKNOWN, message=str(exc)[:255])
    _record(request, payload["id"], result)


def _not_sent(request, upstream_id: int, why: str) -> None:
    """The call never reached the upstream: try again with back-off until the
    deadline, then refund (nothing was bought)."""
    db = request.db
    up = db.scalar(select(UpstreamOrder).where(UpstreamOrder.id == upstream_id).with_for_update())
    if up is None or up.status != SUBMITTING:
        return
    up.status, up.last_error = NEW, why[:255]
    order = db.scalar(select(Order).where(Order.id == up.order_id).with_for_update())
    if utcnow() >= up.deadline or order.status != "delivering":
        up.status, up.finished_at = FAILED, utcnow()
        if order.status == "delivering":
            from kameng.orders.service import fail

            fail(request, order, _("The supplier could not be reached in time: refunded."), actor="system")
        return
    delay = POLL_DELAYS[min(up.attempts - 1, len(POLL_DELAYS) - 1)]
    jobs.enqueue(db, PLACE, {"id": up.id}, delay=_delay(request, delay),
                 dedupe_key=f"supplier-place:{up.id}:{up.attempts}")


def poll_job(request, payload) -> None:
    """Ask the upstream about an order it is working on (or one whose
    placing was uncertain), outside any transaction."""
    registry = request.registry
    with Session(registry["kameng.write_engine"]) as s:
        up = s.get(UpstreamOrder, int(payload["id"]))
        if up is None or up.status in TERMINAL or up.status in (NEW, SUBMITTING):
            return  # done, or a place job owns it
        connector = _connector_in(registry, s, s.get(SupplierConnection, up.connection_id))
        out_no = up.out_order_no
    if connector is None:
        _record(request, payload["id"], UpstreamResult(UNKNOWN, message="the connector plugin is not enabled"))
        return
    try:
        result = connector.query_order(out_no)
    except SupplierError as exc:
        result = UpstreamResult(UNKNOWN, message=str(exc)[:255])
    db = request.db
    up = db.scalar(select(UpstreamOrder).where(UpstreamOrder.id == int(payload["id"])).with_for_update())
    if up is None or up.status in TERMINAL:
        return
    if result is None:
        if up.status != UNKNOWN:
            result = UpstreamResult(UNKNOWN, message="the supplier does not know this order")
        elif utcnow() >= up.deadline:  # it never reached the supplier, and it is too late to try: refund
            up.status, up.finished_at, up.last_error = FAILED, utcnow(), "never reached the supplier in time"
            from kameng.orders.service import fail

            order = db.scalar(select(Order).where(Order.id == up.order_id).with_for_update())
            if order.status == "delivering":
                fail(request, order, _("The supplier could not be reached in time: refunded."), actor="system")
            return
        else:  # the supplier never got it: place it (the place job asks once more first)
            up.status = SUBMITTING
            jobs.enqueue(db, PLACE, {"id": up.id}, dedupe_key=f"supplier-place:{up.id}:{up.attempts}")
            return
    apply_result(request, up, result)


def _record(request, upstream_id: int, result: UpstreamResult) -> None:
    up = request.db.scalar(select(UpstreamOrder).where(UpstreamOrder.id == upstream_id).with_for_update())
    if up is not None:
        apply_result(request, up, result)


# -- results ---------------------------------------------------------------------------------


def apply_result(request, up: UpstreamOrder, result: UpstreamResult, via: str = "supplier") -> str:
    """Move the upstream order and its order on. Terminal states are
    sticky: a late "processing" after "success" changes nothing. Returns
    what happened: ``applied``, ``ignored`` or ``waiting``."""
    db = request.db
    if up.status in TERMINAL:
        return "ignored"
    if result.status not in RESULT_STATES:
        result = UpstreamResult(UNKNOWN, message=f"unknown status from the supplier: {result.status}"[:255])
    order = db.scalar(select(Order).where(Order.id == up.order_id).with_for_update())
    if result.upstream_order_no:
        up.upstream_order_no = result.upstream_order_no[:128]
    if result.status in (SUCCESS, PARTIAL):
        return _succeeded(request, up, order, result)
    if result.status == FAILED:
        up.status, up.finished_at, up.last_error = FAILED, utcnow(), (result.message or "")[:255]
        if order.status == "delivering":
            from kameng.orders.service import fail

            fail(request, order, _("The supplier could not fulfil the order: refunded."), actor=via)
        log.warning("upstream_failed", extra={"order_no": order.order_no, "out_order_no": up.out_order_no})
        return "applied"
    # processing or unknown: look again later, until the deadline
    up.status = PROCESSING if result.status == PROCESSING else UNKNOWN
    if order.status != "delivering":  # the shop finished or refunded it by hand: stop asking
        up.last_error = (result.message or "")[:255]
        return "ignored"
    up.last_error = (result.message or "")[:255]
    if utcnow() >= up.deadline and up.overdue_at is None:
        _overdue(request, up, order)
    delay = POLL_DELAYS[min(up.polls, len(POLL_DELAYS) - 1)]
    up.polls += 1
    jobs.enqueue(db, POLL, {"id": up.id}, delay=_delay(request, delay), dedupe_key=f"supplier-poll:{up.id}:{up.polls}")
    return "waiting"


def _overdue(request, up: UpstreamOrder, order: Order) -> None:
    """Past the deadline, and the supplier may have the order: it waits for
    the shop with the reason on the order, never refunded blindly (the
    supplier may still deliver). The polls go on, slowly: an answer that the
    supplier never got it refunds (:func:`poll_job`)."""
    states.note(request.db, order, "delivery", _("The supplier has not answered in time (${why}); the shop is "
                                                "checking.", mapping={"why": up.last_error or up.status}),
                actor="system", public=False)
    from kameng.notifications import emit
    from kameng.orders.service import event_data

    up.overdue_at = utcnow()
    emit(request.db, "order.supplier_overdue", {**event_data(request, order), "out_order_no": up.out_order_no})


def _succeeded(request, up: UpstreamOrder, order: Order, result: UpstreamResult) -> str:
    db = request.db
    delivered = order.quantity if result.status == SUCCESS else max(0, min(int(result.delivered or 0),
                                                                          order.quantity))
    open_order = order.status == "delivering"
    if order.product_type == "card_key":
        keys = list(result.keys)[:order.quantity]
        if result.status == SUCCESS and len(keys) != order.quantity:
            # never hand over a different number than was paid for: the shop looks at it
            up.status, up.last_error = UNKNOWN, f"the supplier delivered {len(keys)} keys for {order.quantity}"
            states.note(db, order, "delivery", up.last_error, actor="supplier", public=False)
            return "waiting"
        delivered = len(keys)
        # an order the shop already closed by hand (refunded, fulfilled) must not hand these
        # to the buyer as well: they are kept void, for the admin's eyes only
        _store_keys(request, order, up, keys, state=SOLD if open_order else VOID)
    up.status = SUCCESS if delivered == order.quantity else PARTIAL
    up.finished_at = utcnow()
    if result.cost is not None:
        from kameng.suppliers.sync import cost_minor

        up.cost = cost_minor(result.cost, order.currency)
    if not open_order:
        up.last_error = "the supplier delivered after the order was closed"
        states.note(db, order, "delivery", _("The supplier delivered after the order was closed; what it "
                                             "delivered is kept for the shop, not shown to the buyer."),
                    actor="supplier", public=False)
        from kameng.notifications import emit
        from kameng.orders.service import event_data

        emit(db, "order.supplier_late", {**event_data(request, order), "out_order_no": up.out_order_no})
        return "ignored"
    from kameng.orders.service import create_refund, delivered as delivered_hook

    if delivered == 0:
        from kameng.orders.service import fail

        fail(request, order, _("The supplier could not fulfil the order: refunded."), actor="supplier")
        return "applied"
    reason = (_("Delivered by the supplier") if delivered == order.quantity else
              _("The supplier delivered ${n} of ${q}; the rest is refunded.",
                mapping={"n": delivered, "q": order.quantity}))
    if result.message:
        up.last_error = result.message[:255]
        states.note(db, order, "delivery", result.message[:500], actor="supplier", public=False)
    states.transition(db, order, "delivered", actor="supplier", reason=reason)
    if delivered < order.quantity:
        share = order.amount * (order.quantity - delivered) // order.quantity
        if share > 0:
            create_refund(request, order, share, f"supplier delivered {delivered} of {order.quantity}",
                          actor="supplier")
    delivered_hook(request, order)
    return "applied"


def _store_keys(request, order: Order, up: UpstreamOrder, keys, state: str = SOLD) -> None:
    """The supplier's keys, encrypted like stock keys, sold to the order
    (or kept ``void`` on it, where only the admin sees them)."""
    keyring = request.registry["kameng.keyring"]
    now = utcnow()
    for i, (number, secret) in enumerate(keys):
        # unique per order and position: a supplier that resells a key is the shop's problem, not a crash
        fp = keyring.fingerprint(f"upstream\x1f{up.out_order_no}\x1f{i}")
        bound = inventory.aad(order.sku_id, fp)
        request.db.add(CardKey(sku_id=order.sku_id, fingerprint=fp, state=state, order_ref=order.order_no,
                               key_id=keyring.current_id, sold_at=now,
                               secret=keyring.encrypt(str(secret), bound),
                               number=keyring.encrypt(str(number), bound + ":number") if number else None))
    request.db.flush()


def upstream_of(db, order: Order) -> UpstreamOrder | None:
    return db.scalar(select(UpstreamOrder).where(UpstreamOrder.order_id == order.id))

