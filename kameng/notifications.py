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
    """Queue ``event`` (e.g. ``stock.low``) with JSON-safe ``data``. While no
    enabled plugin listens, the event is only logged: queuing a job nobody
    will act on would cost the worker a transaction per event."""
    request = db.info.get("request")
    if request is not None and not _listeners(request):
        _log_event(event, data)
        return
    jobs.enqueue(db, FANOUT, {"event": event, "data": data}, dedupe_key=dedupe_key)


def _log_event(event: str, data: dict) -> None:
    log.info("notification", extra={"event": event, "order_no": data.get("order_no"), "sku": data.get("sku")})


def _listeners(request) -> list[str]:
    hook = request.hooks.kameng_notify
    from kameng.pluginhost import CORE_NAMES

    return sorted({impl.plugin_name for impl in hook.get_hookimpls()} - set(CORE_NAMES))


def fanout(request, payload) -> None:
    """Runs in the job's own transaction, which also marks it done: the
    delivery jobs are queued exactly once."""
    listeners = _listeners(request)
    if not listeners:  # no channel enabled any more: the log is the record
        _log_event(payload.get("event"), payload.get("data") or {})
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
