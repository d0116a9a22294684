"""The supplier core's hook implementations (always on)."""
from kameng import hookimpl
from kameng.i18n import _
from kameng.suppliers import service, sync
from kameng.types import JobHandler, MenuItem, ScheduledJob


@hookimpl
def kameng_job_handlers():
    return [JobHandler(service.PLACE, service.place_job, max_attempts=12),
            JobHandler(service.POLL, service.poll_job, max_attempts=12),
            JobHandler(sync.SYNC, sync.sync_job, max_attempts=3),
            JobHandler(sync.SYNC_DUE, sync.sync_due, max_attempts=3)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob("supplier-sync", sync.SYNC_DUE, every_seconds=60)]


@hookimpl
def kameng_admin_menu(request):
    return [MenuItem(_("Suppliers"), "admin.suppliers", "shop", 35)]
