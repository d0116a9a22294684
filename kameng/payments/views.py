"""The notify route every gateway shares: ``/pay/<gateway>/notify``."""
from __future__ import annotations

import json
import logging

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response
from pyramid.view import exception_view_config, view_config
from sqlalchemy import select

from kameng.payments.base import NotificationRejected
from kameng.payments.models import PaymentAttempt
from kameng.payments.service import apply_notification, get_gateway, record_notice

log = logging.getLogger(__name__)


def request_params(request) -> dict:
    """What a notify carried, for the (redacted) log: query and form fields,
    or the top level of a JSON body (epusdt, WeChat Pay's envelope)."""
    params = {}
    for source in (request.GET, request.POST):
        for k, v in source.items():
            params.setdefault(k, v)
    if not params and request.content_type == "application/json" and 0 < (request.content_length or 0) <= 65536:
        try:
            body = json.loads(request.body)
        except ValueError:
            return {"body": "not JSON"}
        if isinstance(body, dict):
            params = {str(k): v if isinstance(v, str | int | float | bool) or v is None else type(v).__name__
                      for k, v in body.items()}
    return params


def process(request, gateway, notification_or_exc, params):
    """Apply a parsed notification (or record a rejection) and build the reply."""
    if isinstance(notification_or_exc, NotificationRejected):
        number = params.get("attempt_no") or params.get("out_trade_no") or params.get("order_id")
        record_notice(request, gateway.identifier, number if isinstance(number, str) else None,
                      False, "rejected", str(notification_or_exc), params)
        log.warning("notify_rejected", extra={"gateway": gateway.identifier, "reason": str(notification_or_exc)})
        accepted = False
    else:
        n = notification_or_exc
        accepted, outcome, detail = apply_notification(request, gateway, n)
        # what the gateway verified (a JSON or encrypted body has no form fields)
        record_notice(request, gateway.identifier, n.attempt_no, True, outcome, detail, n.raw or params)
    status, body, ctype = gateway.ack(accepted)
    return Response(body, status=status, content_type=ctype, charset="utf-8")


#: what the notify route answers when it cannot take a notify: never a page.
#: Providers look for a word in the reply (epay: any "success", in any case,
#: anywhere), and an HTML page that repeats the query string in its links
#: would contain the notify's own TRADE_SUCCESS: the provider would stop
#: retrying a payment the shop never recorded.
NOT_TAKEN = "fail"


def not_taken(status: int) -> Response:
    return Response(NOT_TAKEN, status=status, content_type="text/plain", charset="utf-8")


@view_config(route_name="pay.notify", require_csrf=False)
def notify(request):
    gateway = get_gateway(request, request.matchdict["gateway"])
    if gateway is None:  # unknown, or its plugin is off: the provider must try again later
        return not_taken(404)
    params = request_params(request)
    try:
        parsed = gateway.parse_notification(request)
    except NotificationRejected as exc:
        parsed = exc
    return process(request, gateway, parsed, params)


@exception_view_config(Exception, route_name="pay.notify")
def notify_failed(exc, request):
    """Anything that goes wrong while a notify is handled (a database that
    cannot commit, a plugin bug) answers a bare 503 ``fail``: the
    transaction is rolled back and the provider retries."""
    log.error("notify_failed", extra={"gateway": request.matchdict.get("gateway") if request.matchdict else None,
                                      "error": type(exc).__name__})
    return not_taken(503)


def return_target(request, attempt) -> str:
    """Where a buyer lands after paying ``attempt``: the order's page when
    this browser may open it, else the order lookup; a top-up's owner, their
    balance."""
    if attempt is not None and attempt.order_id is not None:
        from kameng.orders import access
        from kameng.orders.models import Order

        order = request.db.get(Order, attempt.order_id)
        if order is not None and access.can_view(request, order):
            return request.route_url("order", order_no=order.order_no)
        return request.route_url("lookup")
    if (attempt is not None and attempt.purpose == "topup" and request.user is not None
            and attempt.user_id == request.user.id):
        return request.route_url("account.balance")
    return request.route_url("home")


@view_config(route_name="pay.return", request_method="GET", require_csrf=False)
def pay_return(request):
    """The return URL gateways send the buyer back to
    (``request.public_url("pay.return", attempt_no=…)``). It never trusts
    query parameters: what was paid is known from the notify alone."""
    attempt = request.db.scalar(select(PaymentAttempt).where(
        PaymentAttempt.attempt_no == request.matchdict["attempt_no"][:64]))
    return HTTPSeeOther(return_target(request, attempt))
