"""Anti-fraud for kameng: rate limits, blacklists, caps on unpaid orders,
per-buyer purchase limits, a self-hosted captcha and a risk log.

Merchant documentation: docs/antifraud.md (docs/antifraud.zh_CN.md).
"""
from __future__ import annotations

from kameng import hookimpl
from kameng.i18n import _
from kameng.types import JobHandler, MenuItem, PluginMeta, ScheduledJob, StorefrontBlock

from kameng_antifraud import config

__version__ = "0.1.0"

PLUGIN = PluginMeta(
    name=_("Anti-fraud"),
    description=_("Rate limits per address, contact and account; blacklists of emails, domains, phone numbers and "
                  "networks; caps on unpaid orders; purchase limits per product; a self-hosted picture captcha; "
                  "and a risk log."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="security",
    settings=config.SETTINGS,
    validate=config.validate,
)

#: storefront form slot → the captcha action it serves
FORM_SLOTS = {"form.order": "order", "form.login": "login", "form.register": "register",
              "form.lookup": "lookup", "form.password_reset": "password_reset"}


@hookimpl
def kameng_migration_locations():
    return ["kameng_antifraud:migrations"]


@hookimpl
def kameng_risk_check_order(request, draft):
    from kameng_antifraud import rules

    return rules.check_order(request, draft)


@hookimpl
def kameng_risk_check(request, action, subject):
    from kameng_antifraud import rules

    return rules.check_action(request, action, subject)


@hookimpl
def kameng_storefront_blocks(request, slot):
    action = FORM_SLOTS.get(slot)
    if action is None:
        return None
    from kameng_antifraud import views

    cfg = config.read(request)
    needed = action in cfg.captcha or (action == "order" and "coupon" in cfg.captcha
                                       and bool(request.params.get("coupon", "").strip()))
    if not needed:
        return None
    return [StorefrontBlock(slot=slot, html=views.captcha_field(request, cfg), order=900)]


@hookimpl
def kameng_admin_menu(request):
    return [MenuItem(label=_("Risk log"), route_name="antifraud.log", section="plugins", order=300),
            MenuItem(label=_("Blacklist test"), route_name="antifraud.test", section="plugins", order=301),
            MenuItem(label=_("Purchase limits"), route_name="antifraud.limits", section="plugins", order=302)]


@hookimpl
def kameng_job_handlers():
    from kameng_antifraud.jobs import prune

    return [JobHandler(kind="antifraud.prune", func=prune, max_attempts=3)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob(name="antifraud.prune", kind="antifraud.prune", every_seconds=3600)]


def includeme(config_):
    config_.add_route("antifraud.captcha.new", "/-/antifraud/captcha")
    config_.add_route("antifraud.captcha.image", "/-/antifraud/captcha/{id}.png")
    config_.add_route("antifraud.log", "/-/antifraud/log")
    config_.add_route("antifraud.test", "/-/antifraud/test")
    config_.add_route("antifraud.limits", "/-/antifraud/limits")
    config_.add_route("antifraud.limit.delete", "/-/antifraud/limits/{id}/delete")
    config_.scan("kameng_antifraud.views")
