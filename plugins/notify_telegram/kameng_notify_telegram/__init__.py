"""kameng-notify-telegram: admin alerts and order notices through a Telegram bot.

Settings: ``bot_token`` (secret), ``chat_id``, ``api_base`` and ``events``.
See README.md and docs/notify_telegram.md.
"""
from __future__ import annotations

from kameng import hookimpl
from kameng.i18n import _
from kameng.types import JobHandler, MenuItem, PluginMeta, ScheduledJob, SettingField
from kameng_notify_telegram import sender

__version__ = "0.1.0"

PLUGIN = PluginMeta(
    name=_("Telegram notifications"),
    description=_("Sends the shop's alerts and order notices to a Telegram chat through your own bot."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="notification",
    settings=(
        SettingField("bot_token", _("Bot token"), required=True, secret=True, max_length=200,
                     pattern=r"\d{1,20}:[A-Za-z0-9_-]{20,150}",
                     help=_("The token @BotFather gave your bot, like 123456789:AAE…")),
        SettingField("chat_id", _("Chat ID"), required=True, max_length=100,
                     pattern=r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,63}",
                     help=_("The chat, group or channel to send to: a number (groups start with -100) "
                            "or a public channel's @name. The bot must be a member.")),
        SettingField("api_base", _("Bot API address"), type="url", default=sender.DEFAULT_API_BASE,
                     max_length=500,
                     help=_("Change only for a self-hosted Bot API server or a relay.")),
        SettingField("events", _("Events to send"), type="text", default="\n".join(sender.DEFAULT_EVENTS),
                     max_length=2000,
                     help=_("One event name a line (or separated by commas); order.* takes every order "
                            "event, * everything. Empty: the default list. account.* events are never sent.")),
    ),
    validate=sender.validate,
)


@hookimpl
def kameng_migration_locations():
    return ["kameng_notify_telegram:migrations"]


@hookimpl
def kameng_notify(request, event, data):
    sender.notify(request, event, data)


@hookimpl
def kameng_job_handlers():
    return [JobHandler(kind=sender.SEND_KIND, func=sender.send_job, max_attempts=5),
            JobHandler(kind=sender.PRUNE_KIND, func=sender.prune_job, max_attempts=3)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob(name="notify_telegram.prune", kind=sender.PRUNE_KIND, every_seconds=86400)]


@hookimpl
def kameng_admin_menu(request):
    return [MenuItem(label=_("Telegram"), route_name="notify_telegram.admin", section="plugins", order=300)]


def includeme(config):
    config.add_route("notify_telegram.admin", "/-/notify_telegram/")
    config.add_route("notify_telegram.test", "/-/notify_telegram/test", request_method="POST")
    config.scan("kameng_notify_telegram.views")
