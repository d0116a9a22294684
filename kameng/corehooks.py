"""The core's own hook implementations (always on)."""
from kameng import hookimpl, jobs, notifications
from kameng.inventory import service as inventory
from kameng.types import JobHandler, ScheduledJob


@hookimpl
def kameng_job_handlers():
    return [JobHandler("kameng.jobs.cleanup", jobs.cleanup_finished, max_attempts=3),
            JobHandler("kameng.inventory.release_expired", inventory.release_expired_job, max_attempts=3),
            JobHandler(notifications.FANOUT, notifications.fanout, max_attempts=5),
            JobHandler(notifications.DELIVER, notifications.deliver, max_attempts=8)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob("jobs-cleanup", "kameng.jobs.cleanup", every_seconds=3600),
            ScheduledJob("release-expired-reservations", "kameng.inventory.release_expired", every_seconds=60)]
