"""The notify route every gateway shares: ``/pay/<gateway>/notify``."""
from __future__ import annotations

import logging

from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from pyramid.view import view_config

from kameng.payments.base import NotificationRejected
from kameng.payments.service import apply_notification, get_gateway, record_notice

log = logging.getLogger(__name__)


def request_params(request) -> dict:
    params = {}
    for source in (request.GET, request.POST):
        for k, v in source.items():
            params.setdefault(k, v)
    return params


def process(request, gateway, notification_or_exc, params):
    """Apply a parsed notification (or record a rejection) and build the reply."""
    if isinstance(notification_or_exc, NotificationRejected):
        record_notice(request, gateway.identifier, params.get("attempt_no") or params.get("out_trade_no"),
                      False, "rejected", str(notification_or_exc), params)
        log.warning("notify_rejected", extra={"gateway": gateway.identifier, "reason": str(notification_or_exc)})
        accepted = False
    else:
        n = notification_or_exc
        accepted, outcome, detail = apply_notification(request, gateway, n)
        record_notice(request, gateway.identifier, n.attempt_no, True, outcome, detail, params)
    status, body, ctype = gateway.ack(accepted)
    return Response(body, status=status, content_type=ctype, charset="utf-8")


@view_config(route_name="pay.notify", require_csrf=False)
def notify(request):
    gateway = get_gateway(request, request.matchdict["gateway"])
    if gateway is None:
        raise HTTPNotFound()
    params = request_params(request)
    try:
        parsed = gateway.parse_notification(request)
    except NotificationRejected as exc:
        parsed = exc
    return process(request, gateway, parsed, params)
