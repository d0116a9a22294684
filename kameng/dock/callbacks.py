"""Callbacks to the downstream: when a docked order is delivered, fails or
is refunded, a job POSTs the order (the same JSON as ``GET
/api/v1/dock/orders/{out_order_no}``, plus ``event``) to the order's
``callback_url``, signed like a request with the key that placed the order,
so the downstream verifies it with the secret it already holds.

Queued in the transaction that changed the order (a hook), sent after
commit by the worker through :mod:`kameng.httpclient` (timeouts, no
redirects, the SSRF policy checked again at send time), retried with
back-off until the downstream answers 2xx.
"""
from __future__ import annotations

import json
import logging

from sqlalchemy import select

from kameng import httpclient, jobs
from kameng.dock.auth import prune_nonces, sign_request
from kameng.dock.models import DockOrder, find_key, key_secret
from kameng.orders.models import Order

log = logging.getLogger(__name__)

CALLBACK = "kameng.dock.callback"
PRUNE_NONCES = "kameng.dock.prune_nonces"
#: attempts before the job goes to the dead letters (back-off doubles: ~1 h with the default 15 s base)
MAX_ATTEMPTS = 8
EVENTS = ("delivered", "failed", "refunded")
HEADER_EVENT = "X-Kameng-Event"


class CallbackFailed(Exception):
    """The downstream did not take the callback; the worker tries again."""


def queue(request, order: Order, event: str, ref: str = "") -> None:
    """Queue the ``event`` callback of ``order`` if it is a docked order with
    a callback URL (in the caller's transaction; once per event and ``ref``)."""
    db = request.db
    link = db.scalar(select(DockOrder).where(DockOrder.order_id == order.id))
    if link is None or not link.callback_url:
        return
    jobs.enqueue(db, CALLBACK, {"order_id": order.id, "event": event},
                 dedupe_key=f"dock-callback:{order.order_no}:{event}:{ref}"[:191], max_attempts=MAX_ATTEMPTS)


def body_of(request, link: DockOrder, order: Order, event: str) -> bytes:
    from kameng.dock.views import order_json

    return json.dumps(order_json(request, link, order, event=event), ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def send(request, payload) -> None:
    """The job: sign and POST the order as it is now."""
    db = request.db
    link = db.scalar(select(DockOrder).where(DockOrder.order_id == payload.get("order_id")))
    order = db.get(Order, link.order_id) if link is not None else None
    key = find_key(db, link.key_id) if link is not None else None
    if order is None or key is None or not link.callback_url:
        return  # deleted since: nobody to tell, or nothing to sign with
    event = payload.get("event") if payload.get("event") in EVENTS else order.status
    body = body_of(request, link, order, event)
    headers = sign_request(key.key_id, key_secret(request.registry["kameng.keyring"], key), "POST",
                           link.callback_url, body)
    headers[HEADER_EVENT] = event
    resp = httpclient.post_json(link.callback_url, body, headers=headers)
    if not 200 <= resp.status < 300:
        raise CallbackFailed(f"{httpclient.safe_url(link.callback_url)} answered {resp.status}")
    log.info("dock_callback_sent", extra={"order_no": order.order_no, "event": event})


def prune(request, payload) -> None:
    prune_nonces(request, payload)

