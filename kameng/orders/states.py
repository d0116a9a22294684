"""The order state machine. Every change goes through :func:`transition`,
which refuses illegal jumps and writes the audit trail."""
from __future__ import annotations

import json

from pyramid.i18n import TranslationString

from kameng.db import utcnow
from kameng.i18n import _

PENDING, PAID, DELIVERING, DELIVERED = "pending", "paid", "delivering", "delivered"
FAILED, REFUNDED, EXPIRED, CANCELLED = "failed", "refunded", "expired", "cancelled"
STATUSES = (PENDING, PAID, DELIVERING, DELIVERED, FAILED, REFUNDED, EXPIRED, CANCELLED)

#: status → the statuses it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PAID, EXPIRED, CANCELLED}),
    # a payment that arrives after expiry or cancellation is still money received
    EXPIRED: frozenset({PAID}),
    CANCELLED: frozenset({PAID}),
    PAID: frozenset({DELIVERING, DELIVERED, FAILED, REFUNDED}),
    DELIVERING: frozenset({DELIVERED, FAILED}),
    DELIVERED: frozenset({REFUNDED}),
    FAILED: frozenset({PAID, DELIVERING, DELIVERED, REFUNDED}),
    REFUNDED: frozenset(),
}
#: the buyer has money in these orders (an unpaid order has none)
MONEY_IN = frozenset({PAID, DELIVERING, DELIVERED, FAILED})
OPEN = frozenset({PENDING, PAID, DELIVERING})  # the buyer's page keeps polling

LABELS = {
    PENDING: _("Awaiting payment"), PAID: _("Paid"), DELIVERING: _("Delivering"),
    DELIVERED: _("Delivered"), FAILED: _("Failed"), REFUNDED: _("Refunded"),
    EXPIRED: _("Expired"), CANCELLED: _("Cancelled"),
}


class IllegalTransition(Exception):
    def __init__(self, order_no: str, old: str, new: str):
        super().__init__(f"order {order_no}: {old} → {new} is not allowed")
        self.old, self.new = old, new


def can(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, ())


def stored_text(message) -> tuple[str, str | None]:
    """A message for the audit trail: the English text, and what is needed
    to show it in the reader's language later."""
    if isinstance(message, TranslationString):
        mapping = {k: str(v) for k, v in (message.mapping or {}).items()}
        return (message.interpolate()[:500],
                json.dumps({"msgid": str(message), "mapping": mapping}, ensure_ascii=False))
    return str(message or "")[:500], None


def shown_text(request, event) -> str:
    """An event's message in the reader's language."""
    if event.i18n:
        try:
            data = json.loads(event.i18n)
            return request.localizer.translate(_(data["msgid"], mapping=data.get("mapping") or {}))
        except (ValueError, KeyError, TypeError):
            pass
    return event.message


def transition(db, order, new: str, actor: str = "system", reason: str = "", public: bool = True) -> None:
    """Move ``order`` to ``new`` (the caller holds its row lock) and record it."""
    from kameng.orders.models import OrderEvent

    old = order.status
    if not can(old, new):
        raise IllegalTransition(order.order_no, old, new)
    order.status = new
    now = utcnow()
    order.updated_at = now
    if new == PAID and order.paid_at is None:
        order.paid_at = now
    if new == DELIVERED:
        order.delivered_at = now
    text, i18n = stored_text(reason)
    db.add(OrderEvent(order_id=order.id, actor=actor[:254], kind="status", from_status=old, to_status=new,
                      message=text, i18n=i18n, public=public))


def note(db, order, kind: str, message: str, actor: str = "system", public: bool = True) -> None:
    """An audit-trail entry that is not a status change."""
    from kameng.orders.models import OrderEvent

    text, i18n = stored_text(message)
    db.add(OrderEvent(order_id=order.id, actor=actor[:254], kind=kind, from_status=order.status,
                      to_status=order.status, message=text, i18n=i18n, public=public))
