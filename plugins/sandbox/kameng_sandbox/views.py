"""The sandbox's pay page: the buyer chooses the outcome, the page signs a
notify with the plugin's secret and hands it to the same core path a real
gateway's notify goes through. Afterwards the buyer goes on to the order's
page when this browser may see it (an admin's test payment, with no order,
comes back here)."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.view import view_config
from sqlalchemy import select

from kameng.money import format_minor
from kameng.orders import access
from kameng.orders.models import Order
from kameng.payments.models import PaymentAttempt
from kameng.payments.service import get_gateway
from kameng.payments.views import process

from kameng_sandbox.gateway import signed_fields


def _attempt(request):
    attempt = request.db.scalar(select(PaymentAttempt).where(
        PaymentAttempt.attempt_no == request.matchdict["attempt_no"], PaymentAttempt.gateway == "sandbox"))
    if attempt is None:
        raise HTTPNotFound()
    return attempt


def _order_url(request, attempt) -> str | None:
    """The order page of the attempt's order, if this browser may open it."""
    if attempt.order_id is None:
        return None
    order = request.db.get(Order, attempt.order_id)
    if order is None or not access.can_view(request, order):
        return None
    return request.route_url("order", order_no=order.order_no)


@view_config(route_name="sandbox.pay", request_method="GET",
             renderer="kameng_sandbox:templates/pay.pt")
def pay_page(request):
    attempt = _attempt(request)
    return {"attempt": attempt, "amount": format_minor(attempt.amount, attempt.currency),
            "order_url": _order_url(request, attempt)}


@view_config(route_name="sandbox.pay", request_method="POST")
def pay_submit(request):
    attempt = _attempt(request)
    outcome = request.POST.get("outcome")
    if outcome not in ("paid", "failed"):
        raise HTTPNotFound()
    gateway = get_gateway(request, "sandbox")
    fields = signed_fields(attempt.attempt_no, format_minor(attempt.amount, attempt.currency), outcome,
                           gateway.settings["secret"])
    process(request, gateway, gateway.verify(fields, request.shop["currency"]), fields)
    if attempt.purpose == "topup":  # back to the balance, like a real gateway's return URL
        return HTTPFound(request.route_url("pay.return", attempt_no=attempt.attempt_no))
    return HTTPFound(_order_url(request, attempt)
                     or request.route_url("sandbox.pay", attempt_no=attempt.attempt_no))
