"""The core's own hook implementations (always on)."""
from kameng import hookimpl, jobs
from kameng.types import JobHandler, ScheduledJob


@hookimpl
def kameng_job_handlers():
    return [JobHandler("kameng.jobs.cleanup", jobs.cleanup_finished, max_attempts=3)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob("jobs-cleanup", "kameng.jobs.cleanup", every_seconds=3600)]
