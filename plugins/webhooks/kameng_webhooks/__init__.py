"""Signed outbound webhooks: order, payment, refund and stock events POSTed
to the merchant's own HTTPS endpoints, signed with HMAC-SHA256, retried with
back-off, with a delivery log and a resend button in the admin.

Receivers: see docs/webhooks.md (how to verify the signature)."""
from kameng import hookimpl
from kameng.i18n import _
from kameng.types import EncryptedColumn, JobHandler, MenuItem, PluginMeta, ScheduledJob, SettingField

__version__ = "0.1.0"

PLUGIN = PluginMeta(
    name=_("Webhooks"),
    description=_("Sends signed HTTPS requests to your own systems when orders are paid, delivered or refunded, "
                  "payments go wrong or stock runs low; retries failed deliveries and keeps a delivery log."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="notification",
    settings=(
        SettingField("timeout_seconds", _("Timeout (seconds)"), type="int", default=10, min_value=1, max_value=30,
                     help=_("How long one attempt waits for your endpoint to answer.")),
        SettingField("max_attempts", _("Attempts per delivery"), type="int", default=8, min_value=1, max_value=12,
                     help=_("Automatic attempts before a delivery is marked failed (30 s, 2 min, 10 min, 1 h, "
                            "6 h, 12 h, then 24 h apart).")),
        SettingField("keep_days", _("Keep the delivery log (days)"), type="int", default=30, min_value=1,
                     max_value=3650, help=_("Finished deliveries older than this are deleted once a day.")),
    ),
)


@hookimpl
def kameng_migration_locations():
    return ["kameng_webhooks:migrations"]


@hookimpl
def kameng_encrypted_columns():
    # `kameng keys rotate` re-encrypts the endpoints' signing secrets and keeps their key
    from kameng_webhooks.models import Endpoint
    from kameng_webhooks.service import _aad

    return [EncryptedColumn(Endpoint, "secret", lambda row: _aad(row.id))]


@hookimpl
def kameng_job_handlers():
    from kameng_webhooks import service

    # max_attempts covers the plugin's own errors (a database that is down);
    # a receiver's failure is retried on the plugin's schedule, see service.send
    return [JobHandler(kind=service.SEND, func=service.send, max_attempts=5),
            JobHandler(kind=service.CLEANUP, func=service.cleanup, max_attempts=3)]


@hookimpl
def kameng_scheduled_jobs():
    from kameng_webhooks import service

    return [ScheduledJob(name="webhooks.cleanup", kind=service.CLEANUP, every_seconds=86400)]


@hookimpl
def kameng_notify(request, event, data):
    from kameng_webhooks import service

    service.queue_event(request, event, data)


@hookimpl
def kameng_admin_menu(request):
    return [MenuItem(label=_("Webhooks"), route_name="webhooks.endpoints", section="plugins", order=300),
            MenuItem(label=_("Webhook deliveries"), route_name="webhooks.deliveries", section="plugins", order=301)]


def includeme(config):
    config.add_route("webhooks.endpoints", "/-/webhooks/")
    config.add_route("webhooks.endpoint", "/-/webhooks/endpoints/{id}")
    config.add_route("webhooks.endpoint.action", "/-/webhooks/endpoints/{id}/{action}")
    config.add_route("webhooks.deliveries", "/-/webhooks/deliveries")
    config.add_route("webhooks.delivery", "/-/webhooks/deliveries/{delivery_id}")
    config.add_route("webhooks.delivery.resend", "/-/webhooks/deliveries/{delivery_id}/resend")
    config.scan("kameng_webhooks.views")
