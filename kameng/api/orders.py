"""The public order API (API.md "Orders"): create, read, pay again, cancel."""
from __future__ import annotations

from pyramid.view import view_config

from kameng import risk
from kameng.api import api_csrf, json_body
from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import format_minor
from kameng.orders import access, service, states
from kameng.orders.checkout import OrderRequest, access_token, create_order
from kameng.payments.models import PaymentAttempt
from kameng.types import PaymentAction


def _text(body: dict, name: str, default=""):
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise APIError(422, "invalid_request", _("${field} must be text.", mapping={"field": name}), field=name)
    return value


def order_request(body: dict, idempotency_key: str | None) -> OrderRequest:
    recharge = body.get("recharge") or {}
    if not isinstance(recharge, dict):
        raise APIError(422, "invalid_request", _("recharge must be an object."), field="recharge")
    channel = body.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise APIError(422, "invalid_request", _("${field} must be text.", mapping={"field": "channel"}),
                       field="channel")
    return OrderRequest(sku=_text(body, "sku"), quantity=body.get("quantity", 1), contact=_text(body, "contact"),
                        query_password=_text(body, "query_password"),
                        payment_method=_text(body, "payment_method"), channel=channel or None, recharge=recharge,
                        coupon=_text(body, "coupon"), idempotency_key=idempotency_key)


def payment_json(request, order, attempt: PaymentAttempt | None, action: PaymentAction | None) -> dict | None:
    """``{"gateway", "attempt_no", "amount", "pay_url", "qr"?}``: a redirect
    goes straight to the gateway; a QR code or a form is shown by the
    order's pay page."""
    if attempt is None:
        return None
    out = {"gateway": attempt.gateway, "attempt_no": attempt.attempt_no,
           "amount": format_minor(attempt.amount, attempt.currency), "status": attempt.status}
    if action is not None:
        if action.kind == "redirect":
            out["pay_url"] = action.url
        else:
            out["pay_url"] = request.public_url("order.pay", order_no=order.order_no, attempt_no=attempt.attempt_no,
                                                _query={"token": access_token(request, order.order_no)})
        if action.kind == "qrcode":
            out["qr"] = action.payload
    return out


def event_json(request, event) -> dict:
    return {"at": event.at.isoformat(), "kind": event.kind, "from": event.from_status or None,
            "to": event.to_status or None, "message": states.shown_text(request, event)}


def order_json(request, order, admin: bool = False) -> dict:
    """An order as its buyer (or, with ``admin``, the shop) sees it."""
    db = request.db
    keys = [{k: v for k, v in (("number", key["number"]), ("secret", key["secret"])) if v is not None}
            for key in service.keys_of(request, order)]
    events = service.events_of(db, order, public_only=not admin)
    out = {
        "order_no": order.order_no, "status": order.status,
        "status_label": request.localizer.translate(states.LABELS[order.status]),
        "amount": format_minor(order.amount, order.currency), "currency": order.currency,
        "subtotal": format_minor(order.subtotal, order.currency),
        "discount": format_minor(order.discount, order.currency),
        "refunded": format_minor(order.refunded_amount, order.currency),
        "created_at": order.created_at.isoformat(), "expires_at": order.expires_at.isoformat(),
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
        "delivered_at": order.delivered_at.isoformat() if order.delivered_at else None,
        "product_type": order.product_type, "payment_method": order.payment_method or None,
        # failure reasons are the core's own messages: shown in the reader's language
        "failure_reason": request.localizer.translate(_(order.failure_reason)) if order.failure_reason else None,
        "items": [{"sku": order.sku_code, "name": f"{order.product_name} {order.sku_name}".strip(),
                   "quantity": order.quantity, "unit_price": format_minor(order.unit_price, order.currency),
                   "keys": keys}],
        "events": [event_json(request, e) for e in events],
    }
    note = service.delivery_text(request, order) if order.status in (states.DELIVERED, states.REFUNDED) else None
    if note:
        out["delivery_note"] = note
    if order.product_type == "direct_recharge":
        out["recharge"] = service.recharge_values(order)
    if admin:
        out.update({
            "contact": order.contact, "user_id": order.user_id, "client_ip": order.client_ip, "held": order.held,
            "pricing": service.pricing_steps(order),
            "payments": [{"attempt_no": a.attempt_no, "gateway": a.gateway, "channel": a.channel,
                          "amount": format_minor(a.amount, a.currency), "status": a.status,
                          "provider_trade_no": a.provider_trade_no, "created_at": a.created_at.isoformat(),
                          "paid_at": a.paid_at.isoformat() if a.paid_at else None}
                         for a in service.attempts_of(db, order)],
            "refunds": [{"refund_no": r.refund_no, "amount": format_minor(r.amount, r.currency),
                         "destination": r.destination, "status": r.status, "reason": r.reason,
                         "error": r.error or None, "created_at": r.created_at.isoformat()}
                        for r in service.refunds_of(db, order)],
        })
    return out


@view_config(route_name="api.orders", request_method="POST", renderer="json", require_csrf=False,
             decorator=api_csrf)
def create(request):
    access.check_order_limit(request)
    body = json_body(request)
    req = order_request(body, request.headers.get("Idempotency-Key"))
    order, replay = create_order(request, req, user=request.user)
    if replay:
        request.response.headers["Idempotent-Replayed"] = "true"
        attempt = _latest_attempt(request, order)
        action = None
        if attempt is not None and attempt.status == "pending":
            from kameng.payments.service import get_gateway, payment_action

            gateway = get_gateway(request, attempt.gateway)
            action = payment_action(request, gateway, attempt) if gateway is not None else None
    else:
        attempt, action = service.start_payment(request, order, req.payment_method, req.channel)
    request.response.status = 201
    out = {"order_no": order.order_no, "status": order.status,
           "amount": format_minor(order.amount, order.currency), "currency": order.currency,
           "expires_at": order.expires_at.isoformat(), "access_token": access_token(request, order.order_no),
           "order_url": service.order_url(request, order),
           "payment": payment_json(request, order, attempt, action)}
    return out


def _latest_attempt(request, order):
    attempts = service.attempts_of(request.db, order)
    return attempts[-1] if attempts else None


def _viewable(request):
    order = service.get(request.db, request.matchdict["order_no"])
    password = request.params.get("query_password")
    token = request.params.get("token") or request.headers.get("X-Order-Token")
    if password:  # a guest's lookup: an anti-fraud plugin may refuse it before the password is checked
        risk.check(request, "lookup", order_no=request.matchdict["order_no"][:32])
    if order is None:
        if password:
            access.check_password(request, request.matchdict["order_no"], None, password)  # a guess too
        raise APIError(404, "not_found", _("No order with this number and password."))
    if not access.can_view(request, order, token=token, password=password):
        raise APIError(404, "not_found", _("No order with this number and password."))
    return order


@view_config(route_name="api.order", request_method="GET", renderer="json", require_csrf=False)
def read(request):
    order = _viewable(request)
    request.response.headers["Cache-Control"] = "no-store"
    return order_json(request, order)


@view_config(route_name="api.order.pay", request_method="POST", renderer="json", require_csrf=False,
             decorator=api_csrf)
def pay(request):
    """Pay a pending order (again), with another method or channel."""
    order = _viewable(request)
    order = service.get(request.db, order.order_no, lock=True)
    body = json_body(request)
    method, channel = _text(body, "payment_method"), body.get("channel") or None
    if channel is not None and not isinstance(channel, str):
        raise APIError(422, "invalid_request", _("${field} must be text.", mapping={"field": "channel"}))
    attempt, action = service.start_payment(request, order, method, channel)
    return {"order_no": order.order_no, "status": order.status, "payment": payment_json(request, order, attempt,
                                                                                          action)}


@view_config(route_name="api.order.cancel", request_method="POST", renderer="json", require_csrf=False,
             decorator=api_csrf)
def cancel(request):
    order = _viewable(request)
    order = service.get(request.db, order.order_no, lock=True)
    service.cancel(request, order, actor=request.user.email if request.user else "buyer",
                   reason=_("Cancelled by the buyer"))
    return order_json(request, order)
