"""The core's own hook implementations (always on)."""
from kameng import hookimpl, jobs, levels, notifications, ratelimit
from kameng.backup import job as backup
from kameng.inventory import service as inventory
from kameng.orders import service as orders
from kameng.types import JobHandler, ScheduledJob


@hookimpl
def kameng_job_handlers():
    return [JobHandler("kameng.jobs.cleanup", jobs.cleanup_finished, max_attempts=3),
            JobHandler("kameng.inventory.release_expired", inventory.release_expired_job, max_attempts=3),
            JobHandler(notifications.FANOUT, notifications.fanout, max_attempts=5),
            JobHandler(notifications.DELIVER, notifications.deliver, max_attempts=8),
            JobHandler(orders.DELIVER, orders.deliver_job, max_attempts=10),
            JobHandler(orders.REFUND, orders.refund_job, max_attempts=12),
            JobHandler(orders.EXPIRE, orders.expire_due, max_attempts=3),
            JobHandler(orders.QUERY, orders.query_job, max_attempts=4),
            JobHandler(orders.CLOSE, orders.close_job, max_attempts=6),
            JobHandler("kameng.ratelimit.prune", lambda request, payload: ratelimit.prune(request.db), max_attempts=3),
            JobHandler(backup.KIND, backup.backup_job, max_attempts=3)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob("jobs-cleanup", "kameng.jobs.cleanup", every_seconds=3600),
            ScheduledJob("release-expired-reservations", "kameng.inventory.release_expired", every_seconds=60),
            ScheduledJob("expire-unpaid-orders", orders.EXPIRE, every_seconds=30),
            ScheduledJob("rate-counters-prune", "kameng.ratelimit.prune", every_seconds=600),
            # hourly look: the job itself backs up every kameng.backup.every_hours
            ScheduledJob("backup", backup.KIND, every_seconds=3600)]


@hookimpl
def kameng_order_delivered(request, order):
    """A delivered order adds to its buyer's paid total: the member level
    rules may raise the buyer's level (kameng.levels.reassess)."""
    levels.reassess_id(request.db, order.user_id)


@hookimpl
def kameng_storefront_blocks(request, slot):
    """The buyer's member level on the account overview (``account.top``)."""
    if slot != "account.top" or getattr(request, "user", None) is None:
        return None
    from kameng.storefront.agents import level_block

    block = level_block(request)
    return [block] if block is not None else None
