"""Notifications to plugins (email, webhooks, Telegram …), after commit.

:func:`emit` enqueues one job in the caller's transaction; when it runs,
it fans out one delivery job per enabled plugin that implements
``kameng_notify``, so a failing channel is retried on its own and never
blocks or repeats another.
"""
from __future__ import annotations

import logging

from kameng import jobs

log = logging.getLogger(__name__)

FANOUT = "kameng.notify"
DELIVER = "kameng.notify.deliver"


def emit(db, event: str, data: dict, dedupe_key: str | None = None) -> None:
    """Queue ``event`` (e.g. ``stock.low``) with JSON-safe ``data``."""
    jobs.enqueue(db, FANOUT, {"event": event, "data": data}, dedupe_key=dedupe_key)


def _listeners(request) -> list[str]:
    hook = request.hooks.kameng_notify
    return sorted({impl.plugin_name for impl in hook.get_hookimpls()} - {"kameng.core"})


def fanout(request, payload) -> None:
    """Runs in the job's own transaction, which also marks it done: the
    delivery jobs are queued exactly once."""
    listeners = _listeners(request)
    if not listeners:  # no channel enabled yet: the log is the record
        data = payload.get("data") or {}
        log.info("notification", extra={"event": payload.get("event"), "order_no": data.get("order_no"),
                                         "sku": data.get("sku")})
    for plugin_id in listeners:
        jobs.enqueue(request.db, DELIVER, {"plugin": plugin_id, **payload})


def deliver(request, payload) -> None:
    """Call one plugin's ``kameng_notify``; a disabled plugin is skipped."""
    plugin_id = payload["plugin"]
    if plugin_id not in request.enabled_plugins:
        return
    host = request.registry["kameng.plugins"]
    others = frozenset(host.plugins) - {plugin_id}
    host.subset_caller("kameng_notify", others)(request=request, event=payload["event"], data=payload["data"])
