"""The docking API's core hook implementations (always on): its jobs, and
the order events that call the downstream back."""
from kameng import hookimpl
from kameng.dock import callbacks
from kameng.dock.auth import NONCE_TTL
from kameng.types import JobHandler, ScheduledJob


@hookimpl
def kameng_job_handlers():
    return [JobHandler(callbacks.CALLBACK, callbacks.send, max_attempts=callbacks.MAX_ATTEMPTS),
            JobHandler(callbacks.PRUNE_NONCES, callbacks.prune, max_attempts=3)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob("dock-nonces-prune", callbacks.PRUNE_NONCES, every_seconds=NONCE_TTL // 2)]


@hookimpl
def kameng_order_delivered(request, order):
    callbacks.queue(request, order, "delivered")


@hookimpl
def kameng_order_refunded(request, order, refund):
    callbacks.queue(request, order, "refunded", ref=getattr(refund, "refund_no", "") or "")


@hookimpl(optionalhook=True)
def kameng_order_failed(request, order):
    """A docked order that could not be delivered: the downstream hears
    ``failed`` (its refund to the balance calls back as ``refunded`` too)."""
    callbacks.queue(request, order, "failed")
