"""Admin pages for orders: the list (filters, search, counts by status),
the CSV export, one order's page and the actions an admin takes on it.

The order rules live in :mod:`kameng.orders.service`; these views turn a
form post into a call of it. Every action needs a reason, goes to the audit
log (:func:`kameng.audit.record`) and, through the service, to the order's
trail. An action the order's status does not allow is not offered; posted
anyway, the service's :class:`~kameng.errors.APIError` is shown on the
order's page with its status (409 for a wrong status) and nothing is
written: the service runs inside a savepoint that is rolled back, and the
request's transaction is doomed.

Card keys are masked on the order's page; a POST "reveal" shows them once,
with ``Cache-Control: no-store``, and is audited.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass, field

from pyramid.events import BeforeRender, subscriber
from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.response import Response
from pyramid.view import view_config, view_defaults
from sqlalchemy import func, or_, select

from kameng import audit, money
from kameng.admin.views import OUTCOME_LABELS, flash
from kameng.catalog.models import PRODUCT_TYPES
from kameng.errors import APIError
from kameng.i18n import _
from kameng.inventory import service as inventory
from kameng.inventory.models import CardKey
from kameng.orders import service, states
from kameng.orders.models import Order, Refund
from kameng.suppliers.service import upstream_of
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.theming import tpl

PAGE_SIZE = 50
MAX_QUERY = 100
MAX_REASON = 255
MAX_TEXT = 5000
EXPORT_BATCH = 500
CSV_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")

TYPE_LABELS = {"card_key": _("Card key"), "direct_recharge": _("Direct recharge"), "manual": _("Manual")}
STATE_LABELS = {"available": _("Available"), "reserved": _("Reserved"), "sold": _("Sold"), "void": _("Voided")}
REFUND_STATUS_LABELS = {"pending": _("Pending"), "succeeded": _("Succeeded"), "failed": _("Failed")}
DESTINATION_LABELS = {"balance": _("Balance"), "gateway": _("Gateway"), "manual": _("By hand")}
ATTEMPT_STATUS_LABELS = {"pending": _("Pending"), "paid": _("Paid"), "failed": _("Failed"), "closed": _("Closed")}
EVENT_KIND_LABELS = {"status": _("Status"), "payment": _("Payment"), "delivery": _("Delivery"),
                     "refund": _("Refund"), "note": _("Note"), "created": _("Created"), "report": _("Report")}
STEP_LABELS = {"base": _("List price"), "special_price": _("Tier or member price"), "adjustment": _("Adjustment"),
               "floor": _("Not below zero"), "total": _("Total")}
#: the refund destinations an admin may choose ("auto": the service decides)
DESTINATIONS = ("auto", "balance", "gateway")
DESTINATION_CHOICES = {"auto": _("Automatic"), "balance": _("The buyer's balance"),
                       "gateway": _("Back through the payment gateway")}
#: an order's state at its supplier (kameng.suppliers.models)
UPSTREAM_LABELS = {"new": _("Not sent yet"), "submitting": _("Sending"), "processing": _("Processing"),
                   "success": _("Delivered"), "failed": _("Failed"), "partial": _("Partly delivered"),
                   "unknown": _("No answer yet: asking")}
ACTIONS = ("deliver", "redeliver", "refund", "refund_paid", "cancel", "replace_key", "reveal", "query")
#: actions that need no reason (they only ask, they decide nothing)
NO_REASON = ("query",)
ACTION_DONE = {
    "deliver": _("The order is delivered."),
    "redeliver": _("Delivery was tried again."),
    "refund": _("The refund is started."),
    "query": _("The gateway was asked."),
    "refund_paid": _("The refund is marked as paid."),
    "cancel": _("The order is cancelled."),
    "replace_key": _("The key was replaced."),
}


def fmt(minor, currency) -> str:
    return "" if minor is None else money.format_minor(minor, currency)


def when(value: dt.datetime | None) -> str:
    """A time as the admin pages show it (UTC)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def clean(value) -> str:
    """Text from a form or a query, without NUL characters (PostgreSQL
    refuses them in text, even in a WHERE clause)."""
    return value.replace("\x00", "") if isinstance(value, str) else ""


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# -- filtering (shared with the CSV export and the admin API) -------------------------------------


@dataclass
class OrderFilters:
    """What the list is narrowed to; ``errors`` holds what was given but not understood."""

    status: str = ""
    type: str = ""
    method: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    q: str = ""
    errors: dict = field(default_factory=dict)

    def query(self) -> dict:
        """The filters as URL query parameters (empty ones left out)."""
        out = {"status": self.status, "type": self.type, "method": self.method, "q": self.q,
               "from": self.date_from.isoformat() if self.date_from else "",
               "to": self.date_to.isoformat() if self.date_to else ""}
        return {k: v for k, v in out.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.query())


def _date(value: str) -> dt.date | None:
    """A day written ``YYYY-MM-DD``, within years every database stores."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return day if 1970 <= day.year <= 9000 else None


def parse_filters(params) -> OrderFilters:
    """Filters from a query string; unknown values are dropped and noted in ``errors``."""
    f = OrderFilters()

    def text(name, limit=64):
        return clean(params.get(name, "")).strip()[:limit]

    f.status = text("status")
    if f.status and f.status not in states.STATUSES:
        f.errors["status"], f.status = f.status, ""
    f.type = text("type")
    if f.type and f.type not in PRODUCT_TYPES:
        f.errors["type"], f.type = f.type, ""
    f.method = text("method")
    f.q = text("q", MAX_QUERY)
    for name, attr in (("from", "date_from"), ("to", "date_to")):
        raw = text(name, 32)
        if raw:
            value = _date(raw)
            if value is None:
                f.errors[name] = raw
            setattr(f, attr, value)
    return f


def _search(q: str):
    """Order number, contact, SKU code, or a payment attempt's number (or the gateway's trade number)."""
    attempts = select(PaymentAttempt.order_id).where(PaymentAttempt.order_id.is_not(None),
                                                    or_(PaymentAttempt.attempt_no == q,
                                                        PaymentAttempt.provider_trade_no == q))
    return or_(Order.order_no.contains(q, autoescape=True), Order.contact.icontains(q, autoescape=True),
               Order.sku_code.icontains(q, autoescape=True), Order.id.in_(attempts))


def apply_filters(stmt, f: OrderFilters, status: bool = True):
    """``stmt`` narrowed by ``f`` (without the status filter when ``status`` is False)."""
    if status and f.status:
        stmt = stmt.where(Order.status == f.status)
    if f.type:
        stmt = stmt.where(Order.product_type == f.type)
    if f.method:
        stmt = stmt.where(Order.payment_method == f.method)
    if f.date_from:
        start = dt.datetime.combine(f.date_from, dt.time(), tzinfo=dt.UTC)
        stmt = stmt.where(Order.created_at >= start)
    if f.date_to:
        end = dt.datetime.combine(f.date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        stmt = stmt.where(Order.created_at < end)
    if f.q:
        stmt = stmt.where(_search(f.q))
    return stmt


def status_counts(db, f: OrderFilters) -> dict[str, int]:
    """Orders by status under every filter but the status one."""
    stmt = apply_filters(select(Order.status, func.count()).group_by(Order.status), f, status=False)
    return {status: n for status, n in db.execute(stmt).all()}


def payment_methods(db) -> list[str]:
    return sorted(m for m in db.scalars(select(Order.payment_method).distinct()) if m)


def pager(request, route, total, page, query, size=None, **kw):
    size = size or PAGE_SIZE
    pages = max(1, math.ceil(total / size))
    page = min(max(page or 1, 1), pages)

    def url(n):
        return request.route_url(route, _query={**query, "page": n}, **kw)

    return {"page": page, "pages": pages, "total": total,
            "prev": url(page - 1) if page > 1 else None, "next": url(page + 1) if page < pages else None}


# -- CSV -------------------------------------------------------------------------------------------

CSV_COLUMNS = ("order_no", "created_at", "status", "product", "sku", "quantity", "amount", "refunded",
               "currency", "payment_method", "contact", "paid_at", "delivered_at")


def csv_cell(value) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (or a
    tab or carriage return) would be read as a formula, so it gets a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_DANGEROUS) else text


def csv_row(order: Order) -> list[str]:
    return [csv_cell(v) for v in (
        order.order_no, when(order.created_at), order.status, f"{order.product_name} {order.sku_name}".strip(),
        order.sku_code, order.quantity, fmt(order.amount, order.currency),
        fmt(order.refunded_amount, order.currency), order.currency, order.payment_method, order.contact,
        when(order.paid_at), when(order.delivered_at))]


def export_rows(session_factory, f: OrderFilters):
    """CSV text in pieces, newest order first, read in batches with its own
    session (the response is streamed after the request's transaction ended)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")

    def flush() -> bytes:
        data = buf.getvalue().encode("utf-8")
        buf.seek(0)
        buf.truncate()
        return data

    yield "\ufeff".encode()  # so that Excel reads UTF-8 (Chinese names) correctly
    writer.writerow(CSV_COLUMNS)
    yield flush()
    db = session_factory()
    try:
        last = None
        while True:
            stmt = apply_filters(select(Order), f).order_by(Order.id.desc()).limit(EXPORT_BATCH)
            if last is not None:
                stmt = stmt.where(Order.id < last)
            rows = db.scalars(stmt).all()
            if not rows:
                break
            for order in rows:
                writer.writerow(csv_row(order))
            last = rows[-1].id
            db.expunge_all()
            yield flush()
            if len(rows) < EXPORT_BATCH:
                break
    finally:
        db.close()


# -- what is offered for an order ------------------------------------------------------------------


def refund_started(db, order: Order) -> bool:
    return bool(order.refunded_amount) or any(r.status == "pending" for r in service.refunds_of(db, order))


def offered(db, order: Order) -> dict[str, bool]:
    """The actions that apply to ``order`` as it is now."""
    started = refund_started(db, order)
    manual = order.product_type != "card_key"
    return {
        "deliver": manual and (order.status in (states.PAID, states.DELIVERING)
                               or (order.status == states.FAILED and not started)),
        # a paid order waits for its delivery job, for a review (held), or
        # its job died: delivering it now is safe (the job then finds it delivered)
        "redeliver": (order.status == states.FAILED and not started) or order.status == states.PAID,
        "refund": order.status in states.MONEY_IN and service.refundable(db, order) > 0,
        "cancel": order.status == states.PENDING,
        "replace_key": order.status == states.DELIVERED and order.product_type == "card_key",
    }


def payable_by_hand(refund: Refund) -> bool:
    """A refund the admin may mark as paid outside kameng: one waiting to be
    paid by hand, or one the gateway refused."""
    return (refund.status == "pending" and refund.destination == "manual") or refund.status == "failed"


# -- dashboard -------------------------------------------------------------------------------------


def dashboard_summary(db) -> dict:
    """Today's paid orders and revenue, orders waiting for the shop, failed orders."""
    s = service.stats(db)
    waiting = db.scalar(select(func.count()).select_from(Order).where(
        Order.status == states.DELIVERING, Order.product_type != "card_key")) or 0
    held = db.scalar(select(func.count()).select_from(Order).where(
        Order.status == states.PAID, Order.held != "")) or 0
    return {"paid_today": s["paid_today"], "revenue_today": int(s["revenue_today"] or 0),
            "awaiting": waiting, "held": held, "failed": s["by_status"].get(states.FAILED, 0)}


@subscriber(BeforeRender)
def _dashboard_orders(event):
    """The dashboard's orders tiles (the dashboard view itself knows nothing of orders)."""
    request = event.get("request")
    if (request is None or not event.get("renderer_name", "").endswith("admin/dashboard.pt")
            or "order_summary" in event):
        return
    event["order_summary"] = dashboard_summary(request.db)
    event["order_currency"] = request.shop["currency"]
    event["fmt"] = event.get("fmt") or fmt


# -- views -----------------------------------------------------------------------------------------


class ActionRefused(Exception):
    """A form that cannot be acted on: shown on the order's page with ``status``."""

    def __init__(self, status: int, message, field: str | None = None):
        super().__init__(str(message))
        self.status, self.message, self.field = status, message, field


@view_defaults(permission="admin")
class OrderViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db

    def actor(self) -> str:
        return audit.actor_of(self.request)

    # -- the list --------------------------------------------------------------------------------

    @view_config(route_name="admin.orders", renderer=tpl("admin/orders/list.pt"), request_method="GET")
    def orders(self):
        request, db = self.request, self.db
        f = parse_filters(request.GET)
        stmt = apply_filters(select(Order), f)
        total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        pg = pager(request, "admin.orders", total, _int(request.GET.get("page"), 1), f.query())
        rows = db.scalars(stmt.order_by(Order.id.desc()).offset((pg["page"] - 1) * PAGE_SIZE)
                          .limit(PAGE_SIZE)).all()
        counts = status_counts(db, f)
        methods = payment_methods(db)
        if f.method and f.method not in methods:
            methods.append(f.method)
        others = {k: v for k, v in f.query().items() if k != "status"}

        def tab_url(status: str) -> str:
            """The list with the other filters kept, for one status (or all)."""
            return request.route_url("admin.orders", _query={**others, "status": status} if status else others)

        return {"rows": rows, "filters": f, "pager": pg, "counts": counts, "count_all": sum(counts.values()),
                "statuses": states.STATUSES, "status_labels": states.LABELS, "type_labels": TYPE_LABELS,
                "methods": methods, "fmt": fmt, "when": when, "tab_url": tab_url,
                "export_url": request.route_url("admin.orders.export", _query=f.query())}

    @view_config(route_name="admin.orders.export", request_method="GET")
    def export(self):
        request = self.request
        f = parse_filters(request.GET)
        audit.record(self.db, self.actor(), "orders.export", "", filters=f.query())
        factory = request.registry["kameng.session_factory"]
        resp = Response(app_iter=export_rows(factory, f), content_type="text/csv", charset="utf-8")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        resp.headers["Content-Disposition"] = f'attachment; filename="orders-{stamp}.csv"'
        resp.headers["Cache-Control"] = "no-store"
        return resp

    # -- one order -------------------------------------------------------------------------------

    def _order_or_404(self, lock: bool = False) -> Order:
        order = service.get(self.db, self.request.matchdict.get("order_no"), lock=lock)
        if order is None:
            raise HTTPNotFound()
        return order

    def _page(self, order: Order, revealed: list | None = None, error=None, form: dict | None = None,
              form_action: str | None = None) -> dict:
        request, db = self.request, self.db
        attempts = service.attempts_of(db, order)
        notices: dict[str, list[PaymentNotice]] = {a.attempt_no: [] for a in attempts}
        if attempts:
            for n in db.scalars(select(PaymentNotice).where(PaymentNotice.attempt_no.in_(list(notices)))
                                .order_by(PaymentNotice.id)):
                notices[n.attempt_no].append(n)
        keys = list(db.scalars(select(CardKey).where(CardKey.order_ref == order.order_no).order_by(CardKey.id)))
        user = None
        if order.user_id is not None:
            from kameng.accounts import User

            user = db.get(User, order.user_id)
        events = service.events_of(db, order, public_only=False)
        queryable = {a.attempt_no for a in attempts if a.status == "pending" and _can_query(request, a.gateway)}
        note = (service.delivery_text(request, order)
                if order.status in (states.DELIVERED, states.REFUNDED) else None)
        return {
            "order": order, "user": user, "attempts": attempts, "notices": notices, "keys": keys,
            "queryable": queryable, "upstream": upstream_of(db, order), "upstream_labels": UPSTREAM_LABELS,
            "revealed": {k["id"]: k for k in (revealed or [])}, "refunds": service.refunds_of(db, order),
            "events": events, "event_text": lambda e: states.shown_text(request, e),
            "pricing": service.pricing_steps(order), "recharge": service.recharge_values(order),
            "delivery_note": note, "offered": offered(db, order), "refundable": service.refundable(db, order),
            "payable_by_hand": payable_by_hand, "error": error, "form": form or {}, "form_action": form_action,
            "fmt": fmt, "when": when, "status_labels": states.LABELS, "type_labels": TYPE_LABELS,
            "state_labels": STATE_LABELS, "refund_status_labels": REFUND_STATUS_LABELS,
            "destination_labels": DESTINATION_LABELS, "attempt_status_labels": ATTEMPT_STATUS_LABELS,
            "outcome_labels": OUTCOME_LABELS, "outcome_label": _outcome_label, "event_kind_labels": EVENT_KIND_LABELS,
            "step_labels": STEP_LABELS, "destination_choices": DESTINATION_CHOICES,
        }

    @view_config(route_name="admin.order", renderer=tpl("admin/orders/order.pt"), request_method="GET")
    def order(self):
        return self._page(self._order_or_404())

    @view_config(route_name="admin.order.action", renderer=tpl("admin/orders/order.pt"))
    def action(self):
        request = self.request
        action = request.matchdict.get("action")
        if action not in ACTIONS:
            raise HTTPNotFound()
        order = self._order_or_404(lock=True)
        if action == "reveal":
            return self._reveal(order)
        post = request.POST
        form = {k: post.get(k, "") for k in ("reason", "text", "amount", "destination", "key_id", "refund_no")}
        try:
            reason = clean(post.get("reason")).strip()
            if not reason and action not in NO_REASON:
                raise ActionRefused(422, _("Give a reason: it is kept in the order's history."), "reason")
            if len(reason) > MAX_REASON:
                raise ActionRefused(422, _("The reason may be at most ${n} characters.", mapping={"n": MAX_REASON}),
                                    "reason")
            try:
                with self.db.begin_nested():
                    detail = getattr(self, f"_do_{action}")(order, reason, post)
            except APIError as exc:
                raise ActionRefused(exc.status, exc.message) from None
        except ActionRefused as exc:
            request.tm.doom()  # nothing of a refused action is written
            self.db.expire_all()
            request.response.status = exc.status
            return self._page(order, error=exc.message, form=form, form_action=action)
        message = detail.pop("_message", None) or ACTION_DONE[action]
        audit.record(self.db, self.actor(), f"order.{action}", order.order_no, reason=reason, **detail)
        flash(request, message)
        return HTTPFound(request.route_url("admin.order", order_no=order.order_no))

    def _reveal(self, order: Order):
        """Show the order's card keys (the page is not cached), audited. A
        voided key (one that was replaced) is shown too: the buyer may still
        quote it."""
        request = self.request
        keyring = request.registry["kameng.keyring"]
        keys = []
        for key in self.db.scalars(select(CardKey).where(CardKey.order_ref == order.order_no).order_by(CardKey.id)):
            number, secret = inventory.reveal(keyring, key)
            keys.append({"id": key.id, "number": number, "secret": secret})
        audit.record(self.db, self.actor(), "order.reveal", order.order_no, keys=[k["id"] for k in keys])
        request.response.headers["Cache-Control"] = "no-store"
        return self._page(order, revealed=keys)

    # -- the actions: each returns the audit detail ----------------------------------------------------

    def _do_deliver(self, order: Order, reason: str, post) -> dict:
        text = (post.get("text") or "").strip()
        if len(text) > MAX_TEXT:
            raise ActionRefused(422, _("The text for the buyer may be at most ${n} characters.",
                                       mapping={"n": MAX_TEXT}), "text")
        if order.status == states.FAILED and refund_started(self.db, order):
            raise APIError(409, "refund_started", _("A refund has been started for this order."))
        service.fulfil_by_hand(self.request, order, text, actor=self.actor())
        states.note(self.db, order, "note", reason, actor=self.actor(), public=False)
        return {"with_text": bool(text)}

    def _do_redeliver(self, order: Order, reason: str, post) -> dict:
        was = order.status
        service.redeliver(self.request, order, actor=self.actor(), reason=reason)
        if was == states.PAID:  # no transition carried the reason
            states.note(self.db, order, "note", reason, actor=self.actor(), public=False)
        return {"from": was, "to": order.status}

    def _do_refund(self, order: Order, reason: str, post) -> dict:
        raw = (post.get("amount") or "").strip()
        amount = None
        if raw:
            try:
                amount = money.parse_minor(raw, order.currency)
            except money.MoneyError:
                raise ActionRefused(422, _("Write the amount as a decimal like \"12.50\", or leave it empty to "
                                           "refund all that is left."), "amount") from None
            if amount <= 0:
                raise ActionRefused(422, _("The amount must be more than zero."), "amount")
        destination = post.get("destination") or "auto"
        if destination not in DESTINATIONS:
            raise ActionRefused(422, _("Choose where the money goes from the list."), "destination")
        refund = service.admin_refund(self.request, order, amount, reason,
                                      None if destination == "auto" else destination)
        if refund is None:
            raise APIError(409, "nothing_to_refund", _("There is nothing left to refund."))
        return {"refund_no": refund.refund_no, "amount": fmt(refund.amount, refund.currency),
                "destination": refund.destination}

    def _do_refund_paid(self, order: Order, reason: str, post) -> dict:
        refund_no = clean(post.get("refund_no"))
        refund = self.db.scalar(select(Refund).where(Refund.refund_no == refund_no, Refund.order_id == order.id)
                                .with_for_update()) if 0 < len(refund_no) <= 32 else None
        if refund is None:
            raise ActionRefused(404, _("This order has no such refund."), "refund_no")
        if not payable_by_hand(refund):
            raise APIError(409, "not_manual_refund", _("Only a refund waiting to be paid by hand, or one the "
                                                       "gateway refused, can be marked as paid."))
        service.refund_by_hand(self.request, refund, actor=self.actor())
        states.note(self.db, order, "refund", reason, actor=self.actor(), public=False)
        return {"refund_no": refund.refund_no, "amount": fmt(refund.amount, refund.currency)}

    def _do_cancel(self, order: Order, reason: str, post) -> dict:
        service.cancel(self.request, order, actor=self.actor(), reason=reason)
        return {}

    def _do_query(self, order: Order, reason: str, post) -> dict:
        """Ask each gateway with an open payment of this order for its state
        now, instead of waiting for the next reconciliation round."""
        from kameng.payments.service import get_gateway, query_attempt

        results = {}
        for attempt in service.attempts_of(self.db, order):
            if attempt.status == "pending" and _can_query(self.request, attempt.gateway):
                results[attempt.attempt_no] = query_attempt(self.request, get_gateway(self.request, attempt.gateway),
                                                            attempt)
        if not results:
            raise APIError(409, "nothing_to_query", _("This order has no open payment at a gateway that can be "
                                                      "asked."))
        paid = any(r in ("query:applied", "query:duplicate") for r in results.values())
        message = (_("The gateway reports the payment as made; the order is paid.") if paid else
                   _("The gateway was asked; its answer is listed under Payments."))
        return {"results": results, "_message": message}

    def _do_replace_key(self, order: Order, reason: str, post) -> dict:
        key_id = _int(post.get("key_id"))
        if key_id is None or not 0 < key_id < 2 ** 31:
            raise ActionRefused(422, _("Choose a key of this order."), "key_id")
        result = service.replace_key(self.request, order, key_id, actor=self.actor(), reason=reason)
        message = (_("Key #${id} was replaced with another from the stock.", mapping={"id": key_id})
                   if result == "replaced" else
                   _("Key #${id} is void and none was left to replace it: its price is being refunded.",
                     mapping={"id": key_id}))
        return {"key_id": key_id, "result": result, "_message": message}


def _can_query(request, gateway_id: str) -> bool:
    """The gateway is enabled and implements the reconciliation query."""
    from kameng.payments.service import get_gateway

    gateway = get_gateway(request, gateway_id)
    return gateway is not None and gateway.query_supported


def _outcome_label(outcome: str):
    """A notice's outcome; a gateway query's (``query:applied``) reads as the notify's."""
    base = outcome.split(":", 1)[1] if outcome.startswith("query:") else outcome
    return OUTCOME_LABELS.get(base, outcome)
