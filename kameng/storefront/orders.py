"""The buyer's side of an order: checkout, the order page, paying, and the
buttons on the order page (pay again, cancel, report a problem).

The pages sit on the order core (:mod:`kameng.orders`) and reuse the JSON
API's view of an order (:func:`kameng.api.orders.order_json`). Everything a
page shows is computed on the server; the static ``order.js`` only polls,
counts down and copies.
"""
from __future__ import annotations

import datetime as dt
import secrets

import segno
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config
from sqlalchemy import select

from kameng.api.orders import order_json
from kameng.catalog import recharge
from kameng.catalog.models import Product
from kameng.catalog.service import sanitize_html
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.i18n import _
from kameng.inventory.models import SOLD, CardKey
from kameng.money import format_minor
from kameng.orders import access, pricing, service, states
from kameng.orders.checkout import (OrderRequest, access_token, check_coupon_attempt, check_quantity, check_recharge,
                                    create_order, find_sku, max_quantity, out_of_stock, parse_quantity)
from kameng.payments.models import PaymentAttempt
from kameng.payments.service import available_gateways, get_gateway, payment_action
from kameng.storefront.views import ID, Shelf
from kameng.theming import tpl

ACTIONS = ("pay", "cancel", "report")
#: what an event that is not a status change is about, on the order page
EVENT_LABELS = {"created": _("Order placed"), "report": _("Problem reported"), "refund": _("Refund")}
NO_STORE = "no-store"


def money(minor: int, currency: str) -> str:
    return f"{currency} {format_minor(minor, currency)}"


def actor(request) -> str:
    return request.user.email if request.user is not None else "buyer"


def error_text(request, exc: APIError) -> str:
    """An API error as a sentence for the page; a bad recharge input names its field."""
    message = request.localizer.translate(exc.message)
    label = exc.extra.get("label")
    return f"{label}: {message}" if label else message


# -- the price breakdown -------------------------------------------------------------------------


def breakdown(steps: list[dict], currency: str) -> list[dict]:
    """Rows for a price table from :attr:`pricing.Quote.steps` (or an
    order's stored steps): the subtotal, each adjustment, the total."""
    rows, subtotal, special = [], 0, False
    for s in steps:
        kind = s.get("step")
        if kind == "base":
            subtotal = s.get("amount", 0)
            rows.append({"kind": "base", "label": _("Price"), "amount": money(subtotal, currency),
                         "detail": f"{money(s.get('unit', 0), currency)} × {s.get('quantity', 1)}"})
        elif kind == "special_price":
            special = True
            subtotal += s.get("amount", 0)
            rows.append({"kind": "special", "label": special_label(s), "amount": money(s.get("amount", 0), currency),
                         "detail": _("${price} each", mapping={"price": money(s.get("unit", 0), currency)})})
        elif kind == "adjustment":
            rows.append({"kind": "adjustment", "label": s.get("label") or s.get("source") or "",
                         "detail": s.get("code") or None, "amount": money(s.get("amount", 0), currency)})
        elif kind == "floor":
            rows.append({"kind": "floor", "label": _("The total cannot be less than zero"), "detail": None,
                         "amount": money(s.get("amount", 0), currency)})
        elif kind == "total":
            rows.append({"kind": "total", "label": _("Total"), "detail": None,
                         "amount": money(s.get("amount", 0), currency)})
    if special and rows:  # the price after the member or agent price, before any adjustment
        at = next((i for i, r in enumerate(rows) if r["kind"] not in ("base", "special")), len(rows))
        rows.insert(at, {"kind": "subtotal", "label": _("Subtotal"), "detail": None,
                         "amount": money(subtotal, currency)})
    elif rows and rows[0]["kind"] == "base":
        rows[0]["label"] = _("Subtotal")
    return rows


def special_label(step: dict):
    """An agent tier or member level price (with the level's name where the step has it)."""
    tier, level = step.get("tier"), step.get("level")
    if tier and not level:
        return _("Agent price")
    if level and not tier:
        if step.get("level_name"):
            return _("Member price (${level})", mapping={"level": step["level_name"]})
        return _("Member price")
    return _("Your price")


# -- what the buyer picked -----------------------------------------------------------------------


def visible_product(request) -> Product:
    raw = request.matchdict.get("id", "")
    product = request.db.get(Product, int(raw)) if ID.match(raw) else None
    if product is None or not product.visible or product.archived:
        raise HTTPNotFound()
    if product.category_id is not None and Shelf(request.db).get(product.category_id) is None:
        raise HTTPNotFound()
    return product


def recharge_spec(product) -> list[dict]:
    if product is None or product.type != "direct_recharge":
        return []
    try:
        return recharge.parse_spec(product.recharge_fields or "[]")
    except recharge.RechargeError:
        return []


def recharge_input(params) -> dict:
    return {k[len("recharge."):]: v[:200] for k, v in params.items() if k.startswith("recharge.")}


def recharge_shown(spec: list[dict], values: dict) -> list[dict]:
    """A recharge account as label/value rows, in the product's field order."""
    labels = {f["name"]: f["label"] for f in spec}
    names = [f["name"] for f in spec if f["name"] in values] + sorted(set(values) - set(labels))
    return [{"name": n, "label": labels.get(n, n), "value": values[n]} for n in names]


class Choice:
    """The SKU, quantity, recharge account and coupon a checkout is for,
    checked; raises :class:`APIError` like order creation would."""

    def __init__(self, request, product, params):
        self.product = product
        self.code = params.get("sku", "")[:64]
        self.quantity_raw = params.get("quantity", "1")[:12]
        self.recharge_raw = recharge_input(params)
        self.coupon = params.get("coupon", "").strip()[:64]
        self.spec = recharge_spec(product)
        self.sku = self.quantity = self.quote = None
        self.recharge = {}

    def check(self, request, user, contact: str = "") -> None:
        product, sku = find_sku(request.db, self.code)
        if product.id != self.product.id:
            raise APIError(404, "unknown_sku", _("There is no such product option."))
        self.sku = sku
        self.quantity = parse_quantity(self.quantity_raw)
        check_quantity(sku, self.quantity, max_quantity(request, sku, user))
        if sku.stock is not None and sku.stock < self.quantity:
            raise out_of_stock()
        try:
            self.recharge = check_recharge(product, self.recharge_raw)
        except APIError as exc:
            raise self.labelled(exc) from None
        # the page tells whether a code applies: guessing codes here is limited like at order creation
        check_coupon_attempt(request, self.coupon, contact, user)
        self.quote = pricing.quote(request, product, sku, self.quantity, user=user, coupon=self.coupon,
                                   contact=contact)

    def labelled(self, exc: APIError) -> APIError:
        """A bad recharge input's error, naming the field as the buyer sees it."""
        if exc.code == "invalid_recharge_account":
            exc.extra["label"] = {f["name"]: f["label"] for f in self.spec}.get(exc.extra.get("field"), "")
        return exc

    @property
    def coupon_applied(self) -> bool:
        return bool(self.quote and self.coupon and any(
            (a.code or "").lower() == self.coupon.lower() for a in self.quote.adjustments))


def split_method(value: str) -> tuple[str, str | None]:
    """A checkout choice ``gateway`` or ``gateway:channel``."""
    method, _sep, channel = (value or "")[:100].partition(":")
    return method, channel or None


def payment_methods(request, user, amount: int | None, chosen: str = "") -> list[dict]:
    """The gateways on offer (a test one says so), and the balance for a member."""
    currency = request.shop["currency"]
    out = []
    for g in available_gateways(request):
        name = g.public_name or g.identifier
        # a gateway with channels (epay: Alipay, WeChat Pay…) is one choice per channel
        for code, label in (g.channels() or [(None, None)]):
            out.append({"id": f"{g.identifier}:{code}" if code else g.identifier,
                        "label": _("${gateway} · ${channel}", mapping={"gateway": name, "channel": label})
                        if code else name, "test": g.is_test, "balance": None, "short": False})
    if user is not None:
        from kameng import wallet

        have = wallet.balance(request.db, user.id)
        out.append({"id": service.BALANCE, "label": _("Account balance"), "test": False,
                    "balance": money(have, currency), "short": amount is not None and have < amount})
    ids = [m["id"] for m in out]
    pick = chosen if chosen in ids else next((m["id"] for m in out if not m["test"] and not m["short"]),
                                             ids[0] if ids else "")
    for m in out:
        m["checked"] = m["id"] == pick
    return out


# -- checkout ------------------------------------------------------------------------------------


def checkout_page(request, product, params, error=None, status=None) -> dict:
    """The confirm page, from the buyer's choice; a bad choice shows its
    message with its status (4xx) and no form."""
    user = request.user
    choice = Choice(request, product, params)
    try:
        choice.check(request, user, contact=user.email if user is not None else "")
    except APIError as exc:
        error, status = error_text(request, exc), exc.status
    request.response.status = status or 200
    request.response.headers["Cache-Control"] = NO_STORE
    q = choice.quote
    ok = q is not None
    contact = params.get("contact", "").strip()[:254] if request.method == "POST" else ""
    picked = [("sku", choice.code), ("quantity", choice.quantity_raw),
              *((f"recharge.{k}", v) for k, v in sorted(choice.recharge_raw.items()))]
    return {
        "product": product, "choice": choice, "ok": ok, "error": error,
        "sku": choice.sku, "quantity": choice.quantity,
        "rows": breakdown(q.steps, q.currency) if ok else [],
        "total": money(q.amount, q.currency) if ok else None,
        "recharge": recharge_shown(choice.spec, choice.recharge),
        "recharge_hidden": sorted(choice.recharge.items()),
        "coupon_unused": bool(ok and choice.coupon and not choice.coupon_applied),
        "methods": payment_methods(request, user, q.amount if ok else None, params.get("payment_method", "")),
        "contact": contact or (user.email if user is not None else ""),
        "idempotency_key": secrets.token_urlsafe(24),
        "expire_minutes": int(request.registry.settings.get("kameng.orders.expire_minutes", 15)),
        "product_url": request.route_url("product", id=product.id, _query=picked),
        "login_url": request.route_url("login", _query={"next": request.route_path(
            "checkout", id=product.id, _query=[*picked, ("coupon", choice.coupon)])}),
    }


@view_config(route_name="checkout", request_method="GET", renderer=tpl("storefront/checkout.pt"))
def checkout(request):
    return checkout_page(request, visible_product(request), request.GET)


@view_config(route_name="checkout", request_method="POST", renderer=tpl("storefront/checkout.pt"))
def checkout_submit(request):
    """Create the order and start its payment, both or neither."""
    product = visible_product(request)
    form = request.POST
    user = request.user
    choice = Choice(request, product, form)
    req = OrderRequest(sku=choice.code, quantity=choice.quantity_raw, contact=form.get("contact", "")[:300],
                       query_password=form.get("query_password", "")[:100],
                       payment_method=split_method(form.get("payment_method", ""))[0],
                       channel=split_method(form.get("payment_method", ""))[1], recharge=choice.recharge_raw,
                       coupon=choice.coupon, idempotency_key=form.get("idempotency_key") or None)
    try:
        with request.db.begin_nested():
            access.check_order_limit(request)
            order, replayed = create_order(request, req, user=user)  # a replay first, before any check
            if order.product_id != product.id:  # an option of another product, posted here
                raise APIError(404, "unknown_sku", _("There is no such product option."))
            if replayed:
                attempt, action = resume_payment(request, order)
            else:
                attempt, action = service.start_payment(request, order, req.payment_method, req.channel,
                                                        actor=actor(request))
    except APIError as exc:
        request.tm.doom()  # nothing of this try is committed
        return checkout_page(request, product, form, error=error_text(request, choice.labelled(exc)),
                             status=exc.status)
    access.remember_order(request, order.order_no)
    return HTTPSeeOther(payment_url(request, order, attempt, action))


def resume_payment(request, order):
    """A replayed checkout: the payment its first run started, if still open."""
    attempts = [a for a in service.attempts_of(request.db, order) if a.status == "pending"]
    if order.status != states.PENDING or not attempts:
        return None, None
    gateway = get_gateway(request, attempts[-1].gateway)
    if gateway is None:
        return None, None
    return attempts[-1], payment_action(request, gateway, attempts[-1])


def payment_url(request, order, attempt, action) -> str:
    """Where the buyer goes to pay: the gateway's page for a redirect, our
    pay page for a QR code or a form, else the order page."""
    if action is None or attempt is None:
        return request.route_url("order", order_no=order.order_no)
    if action.kind == "redirect":
        return action.url
    return request.route_url("order.pay", order_no=order.order_no, attempt_no=attempt.attempt_no)


# -- the order page ------------------------------------------------------------------------------


def viewable_order(request, token=None):
    """The order in the URL, for someone allowed to see it; a 404 for
    anyone else, the same as for an unknown number."""
    order = service.get(request.db, request.matchdict.get("order_no"))
    token = token if token is not None else request.params.get("token")
    if not access.can_view(request, order, token=token):
        raise HTTPNotFound()
    if token and not access.in_session(request, order.order_no):
        access.remember_order(request, order.order_no)
    return order


def local_time(iso_or_dt) -> dict:
    """A time the page shows in UTC and order.js turns into the reader's time zone."""
    when = dt.datetime.fromisoformat(iso_or_dt) if isinstance(iso_or_dt, str) else iso_or_dt
    when = when.astimezone(dt.timezone.utc)
    return {"iso": when.isoformat(), "text": when.strftime("%Y-%m-%d %H:%M UTC")}


def pending_attempt(request, order):
    attempts = [a for a in service.attempts_of(request.db, order)
                if a.status == "pending" and a.gateway != service.BALANCE]
    return attempts[-1] if attempts else None


def sold_key_ids(db, order) -> list[int]:
    return list(db.scalars(select(CardKey.id).where(CardKey.order_ref == order.order_no, CardKey.state == SOLD)
                           .order_by(CardKey.id)))


def refund_rows(request, order) -> list[dict]:
    where = {"balance": _("to your balance"), "gateway": _("to the original payment"),
             "manual": _("by the shop")}
    status = {"pending": _("in progress"), "succeeded": _("done"), "failed": _("in progress")}
    return [{"no": r.refund_no, "amount": money(r.amount, r.currency), "where": where.get(r.destination, ""),
             "status": status.get(r.status, r.status)} for r in service.refunds_of(request.db, order)]


def gateway_name(request, identifier: str):
    if identifier == service.BALANCE:
        return _("Account balance")
    gateway = get_gateway(request, identifier)
    return (gateway.public_name or identifier) if gateway is not None else identifier


def order_page(request, order) -> dict:
    data = order_json(request, order)
    token = access_token(request, order.order_no)
    product = request.db.get(Product, order.product_id) if order.product_id else None
    pending = order.status == states.PENDING
    attempt = pending_attempt(request, order) if pending else None
    keys = data["items"][0]["keys"]
    ids = sold_key_ids(request.db, order) if keys else []
    failed = [e for e in data["events"] if e["to"] == states.FAILED and e["from"] != states.FAILED]
    owner = request.user is not None and order.user_id == request.user.id
    request.response.headers["Cache-Control"] = NO_STORE
    return {
        "order": order, "data": data, "token": token,
        "label": states.LABELS[order.status], "open": order.status in states.OPEN, "pending": pending,
        "rows": breakdown(service.pricing_steps(order), order.currency),
        "total": money(order.amount, order.currency),
        "created": local_time(order.created_at), "expires": local_time(order.expires_at),
        "seconds_left": max(int((order.expires_at - utcnow()).total_seconds()), 0),
        "recharge": recharge_shown(recharge_spec(product), data.get("recharge") or {}),
        "keys": [{**k, "n": i + 1, "id": ids[i] if i < len(ids) else None} for i, k in enumerate(keys)],
        "instructions": sanitize_html(product.instructions) if product is not None and keys else "",
        "delivery_note": data.get("delivery_note"),
        "failure": failed[-1]["message"] if failed else order.failure_reason,
        "refunded": money(order.refunded_amount, order.currency) if order.refunded_amount else None,
        "refunds": refund_rows(request, order),
        "events": [{**e, "at": local_time(e["at"]), "status": (states.LABELS.get(e["to"]) if e["kind"] == "status"
                                                                else EVENT_LABELS.get(e["kind"]))}
                   for e in data["events"]],
        "attempt": attempt, "attempt_name": gateway_name(request, attempt.gateway) if attempt else None,
        "methods": payment_methods(request, request.user if owner else None, order.amount,
                                   f"{order.payment_method}:{order.channel}" if order.channel
                                   else order.payment_method) if pending else [],
        "paid_with": gateway_name(request, order.payment_method) if order.paid_at else None,
        "can_report": order.status == states.DELIVERED,
        "poll_url": request.route_url("api.order", order_no=order.order_no, _query={"token": token}),
        "share_url": request.route_url("order", order_no=order.order_no, _query={"token": token}),
    }


@view_config(route_name="order", request_method="GET", renderer=tpl("storefront/order.pt"))
def order_view(request):
    return order_page(request, viewable_order(request))


@view_config(route_name="order.action", request_method="POST")
def order_action(request):
    """Pay again, cancel, or report a problem; each answers with a redirect
    and a message, and an error changes nothing."""
    name = request.matchdict["action"]
    if name not in ACTIONS:
        raise HTTPNotFound()
    order = viewable_order(request, token=request.POST.get("token", ""))
    order = service.get(request.db, order.order_no, lock=True)
    back = request.route_url("order", order_no=order.order_no)
    try:
        with request.db.begin_nested():
            if name == "pay":
                method, channel = split_method(request.POST.get("payment_method", ""))
                attempt, action = service.start_payment(request, order, method, channel, actor=actor(request))
                return HTTPSeeOther(payment_url(request, order, attempt, action))
            if name == "cancel":
                service.cancel(request, order, actor=actor(request), reason=_("Cancelled by the buyer"))
                request.session.flash(request.localizer.translate(_("The order is cancelled.")), "info")
            else:
                report(request, order)
    except APIError as exc:
        request.tm.doom()
        request.session.flash(error_text(request, exc), "error")
    return HTTPSeeOther(back)


def report(request, order) -> None:
    if order.status != states.DELIVERED:
        raise APIError(409, "not_delivered", _("Only delivered orders can have a problem reported."))
    text = " ".join(request.POST.get("message", "").split())[:450]
    if len(text) < 4:
        raise APIError(422, "invalid_request", _("Tell us what is wrong, in a few words."))
    key = request.POST.get("key", "")
    if key.isdigit() and int(key) in sold_key_ids(request.db, order):
        text = f"[key #{key}] {text}"  # its id, never the key itself
    service.report_problem(request, order, text, actor=actor(request))
    request.session.flash(request.localizer.translate(
        _("Thank you: the shop has been told and will contact you.")), "info")


# -- paying --------------------------------------------------------------------------------------


def attempt_of(request, order) -> PaymentAttempt:
    attempt = request.db.scalar(select(PaymentAttempt).where(
        PaymentAttempt.attempt_no == request.matchdict.get("attempt_no", "")[:32],
        PaymentAttempt.order_id == order.id))
    if attempt is None:
        raise HTTPNotFound()
    return attempt


def qr_svg(payload: str, **kw) -> str:
    return segno.make(payload, error="m").svg_inline(scale=kw.pop("scale", 6), border=2, dark="#000",
                                                       light="#fff", **kw)


@view_config(route_name="order.pay", request_method="GET", renderer=tpl("storefront/pay.pt"))
def pay_page(request):
    """Show a QR code, or post a form to the gateway; a redirect goes straight on."""
    order = viewable_order(request)
    attempt = attempt_of(request, order)
    back = request.route_url("order", order_no=order.order_no)
    if order.status != states.PENDING or attempt.status != "pending":
        return HTTPSeeOther(back)
    gateway = get_gateway(request, attempt.gateway)
    if gateway is None:
        request.session.flash(request.localizer.translate(
            _("This payment method is not available any more; choose another.")), "error")
        return HTTPSeeOther(back)
    try:
        action = payment_action(request, gateway, attempt)
    except APIError as exc:
        request.session.flash(request.localizer.translate(exc.message), "error")
        return HTTPSeeOther(back)
    if action.kind == "redirect":
        return HTTPSeeOther(action.url)
    request.response.headers["Cache-Control"] = NO_STORE
    token = access_token(request, order.order_no)
    return {
        "order": order, "attempt": attempt, "action": action, "gateway": gateway,
        "amount": money(attempt.amount, attempt.currency),
        "qr": qr_svg(action.payload) if action.kind == "qrcode" and action.payload else None,
        "app_link": action.payload if action.kind == "qrcode" and action.payload.startswith("https://") else None,
        "fields": sorted((str(k), str(v)) for k, v in (action.fields or {}).items()),
        "seconds_left": max(int((order.expires_at - utcnow()).total_seconds()), 0),
        "poll_url": request.route_url("api.order", order_no=order.order_no, _query={"token": token}),
        "order_url": back,
    }


@view_config(route_name="order.qr", request_method="GET")
def pay_qr(request):
    """The attempt's QR code as an SVG image (for pages that link it)."""
    order = viewable_order(request)
    attempt = attempt_of(request, order)
    gateway = get_gateway(request, attempt.gateway)
    if order.status != states.PENDING or attempt.status != "pending" or gateway is None:
        raise HTTPNotFound()
    if not attempt.action:  # the pay page asks the provider; this image only shows its answer
        raise HTTPNotFound()
    action = payment_action(request, gateway, attempt)
    if action.kind != "qrcode" or not action.payload:
        raise HTTPNotFound()
    svg = segno.make(action.payload, error="m")
    resp = Response(content_type="image/svg+xml", charset="utf-8")
    resp.text = svg.svg_inline(scale=6, border=2, dark="#000", light="#fff").replace(
        "<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    resp.headers["Cache-Control"] = NO_STORE
    return resp
