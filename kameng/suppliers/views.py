"""The callback route every connector shares: ``/supplier/callback/<connection id>``."""
from __future__ import annotations

import logging

from pyramid.response import Response
from pyramid.view import exception_view_config, view_config
from sqlalchemy import select

from kameng.suppliers.base import CallbackRejected
from kameng.suppliers.connections import connector_for
from kameng.suppliers.models import SupplierConnection, UpstreamOrder
from kameng.suppliers.service import apply_result

log = logging.getLogger(__name__)


def _reply(status: int, body: str, ctype: str = "text/plain") -> Response:
    return Response(body, status=status, content_type=ctype, charset="utf-8")


@view_config(route_name="supplier.callback", require_csrf=False)
def callback(request):
    """Verify a supplier's callback with its connector, then apply it to the
    upstream order of that connection with that number (nothing else)."""
    try:
        connection_id = int(request.matchdict["connection_id"])
    except ValueError:
        return _reply(404, "fail")
    connection = request.db.get(SupplierConnection, connection_id) if 0 < connection_id < 2 ** 31 else None
    connector = connector_for(request, connection) if connection is not None and connection.enabled else None
    if connector is None or not connector.callbacks:
        return _reply(404, "fail")
    try:
        result = connector.parse_callback(request)
    except CallbackRejected as exc:
        log.warning("supplier_callback_rejected", extra={"connection": connection_id, "reason": str(exc)[:200]})
        return _reply(*connector.callback_ack(False))
    up = request.db.scalar(select(UpstreamOrder).where(UpstreamOrder.connection_id == connection.id,
                                                       UpstreamOrder.out_order_no == result.out_order_no)
                           .with_for_update())
    if up is None:
        log.warning("supplier_callback_unknown_order", extra={"connection": connection_id})
        return _reply(*connector.callback_ack(False))
    outcome = apply_result(request, up, result)
    log.info("supplier_callback", extra={"connection": connection_id, "out_order_no": up.out_order_no,
                                         "outcome": outcome})
    return _reply(*connector.callback_ack(True))


@exception_view_config(Exception, route_name="supplier.callback")
def callback_failed(exc, request):
    """Rolled back; the supplier retries."""
    log.error("supplier_callback_failed", extra={"error": type(exc).__name__})
    return _reply(503, "fail")
