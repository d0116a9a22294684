"""Email notifications over SMTP: order emails to buyers (with the card
keys, unless the merchant turns that off), admin alerts, password resets
and welcome emails, with editable templates and a send log.

See ``docs/notify_email.md`` for the merchant's guide and
``kameng_notify_email.service`` for how sending is made reliable.
"""
from kameng import hookimpl
from kameng.i18n import _
from kameng.types import EncryptedColumn, JobHandler, MenuItem, PluginMeta, ScheduledJob, SettingError, SettingField

from kameng_notify_email import mailer

__version__ = "0.1.0"


def validate(values: dict) -> None:
    """The settings as a whole: addresses that parse, and no password sent
    in clear text to anything but this machine."""
    if values.get("sender"):
        try:
            mailer.parse_sender(values["sender"])
        except ValueError:
            raise SettingError("sender", _("must be an email address, or a name and an address: "
                                           "Shop <shop@example.com>")) from None
    try:
        mailer.split_addresses(values.get("admin_email"))
    except ValueError as exc:
        raise SettingError("admin_email", _("is not an email address: ${value}",
                                            mapping={"value": str(exc)[:100]})) from None
    host = (values.get("host") or "").strip().lower()
    if values.get("security") == "none" and values.get("username") and host not in mailer.LOOPBACK:
        raise SettingError("security", _("would send the password unencrypted: choose STARTTLS or TLS "
                                         "(plain is only for a mail server on this machine)"))


PLUGIN = PluginMeta(
    name=_("Email notifications"),
    description=_("Emails buyers their orders (with the card keys, if you want), payments and refunds, and "
                  "sends you alerts (low stock, failed deliveries, suppliers), password resets and welcome "
                  "emails, over your SMTP server. Templates are editable; every email is in the send log."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="notification",
    validate=validate,
    settings=(
        SettingField("host", _("SMTP server"), required=True, max_length=253, pattern=mailer.HOST,
                     help=_("The mail server's host name, e.g. smtp.exmail.qq.com or smtp.163.com.")),
        SettingField("port", _("Port"), type="int", min_value=1, max_value=65535,
                     help=_("Empty: 465 for TLS, 587 for STARTTLS, 25 for none.")),
        SettingField("security", _("Connection security"), type="choice", choices=mailer.SECURITY,
                     choice_labels=(_("TLS (port 465)"), _("STARTTLS (port 587)"), _("None (only for a mail "
                                                                                     "server on this machine)")),
                     default="tls", required=True,
                     help=_("The server's certificate is always verified.")),
        SettingField("username", _("User name"), max_length=254,
                     help=_("Usually the full email address. Empty: send without signing in.")),
        SettingField("password", _("Password"), secret=True, max_length=500,
                     help=_("The mailbox password or the provider's authorisation code (QQ and 163 mail "
                            "use an authorisation code, not the login password).")),
        SettingField("sender", _("Sender"), required=True, max_length=300,
                     help=_("The From address: shop@example.com or Shop name <shop@example.com>. Most "
                            "providers only accept the address you sign in with.")),
        SettingField("send_keys", _("Put the card keys into the delivery email"), type="bool", default=True,
                     help=_("On: the buyer gets the keys by email. Anyone who can read that mailbox (or a "
                            "mistyped address) gets them too. Off: the email only links to the order page.")),
        SettingField("admin_email", _("Admin email"), max_length=1000,
                     help=_("Where alerts go (low stock, failed deliveries, suppliers, refunds to pay by "
                            "hand, backups). Several addresses: separate them with commas. Empty: no alerts.")),
        SettingField("timeout", _("Timeout (seconds)"), type="int", default=20, min_value=1, max_value=120,
                     help=_("How long to wait for the mail server before trying again later.")),
        SettingField("html", _("Also send an HTML version"), type="bool", default=True,
                     help=_("Made from the text, with clickable links. Off: plain text only.")),
    ),
)


@hookimpl
def kameng_encrypted_columns():
    # a password-reset link waiting to be sent is encrypted with the shop's key
    from kameng_notify_email.models import Message
    from kameng_notify_email.service import _aad

    return [EncryptedColumn(Message, "secret", lambda row: _aad(row.event))]


@hookimpl
def kameng_migration_locations():
    return ["kameng_notify_email:migrations"]


@hookimpl
def kameng_job_handlers():
    from kameng_notify_email.service import CLEANUP, MAX_ATTEMPTS, SEND, cleanup_job, send_job

    return [JobHandler(kind=SEND, func=send_job, max_attempts=MAX_ATTEMPTS),
            JobHandler(kind=CLEANUP, func=cleanup_job, max_attempts=3)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob(name="notify_email.cleanup", kind="notify_email.cleanup", every_seconds=86400)]


@hookimpl
def kameng_notify(request, event, data):
    """Queue the emails for ``event`` (rows and send jobs, no network I/O)."""
    from kameng_notify_email.service import queue

    queue(request, event, data)


@hookimpl
def kameng_admin_menu(request):
    return [MenuItem(label=_("Email log"), route_name="notify_email.log", section="plugins", order=300),
            MenuItem(label=_("Email templates"), route_name="notify_email.templates", section="plugins",
                     order=301)]


def includeme(config):
    config.add_route("notify_email.log", "/-/notify_email/log")
    config.add_route("notify_email.resend", "/-/notify_email/log/{id:\\d+}/resend")
    config.add_route("notify_email.test", "/-/notify_email/test")
    config.add_route("notify_email.templates", "/-/notify_email/templates")
    config.add_route("notify_email.switch", "/-/notify_email/templates/switch")
    config.add_route("notify_email.template", "/-/notify_email/templates/{event}/{language}")
    config.scan("kameng_notify_email.views")
