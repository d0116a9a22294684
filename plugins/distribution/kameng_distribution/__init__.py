"""Referrals and commissions (分销) for kameng.

Every account has a referral code and link. An account that registers
through one is bound to that referrer, once. When an order of a bound
buyer is delivered, up to three levels of referrers above the buyer are
credited a commission (a percentage of the paid amount, global or per
product) on a commission balance of their own; a refund takes back its
share. Referrers ask for withdrawals, which an admin pays into the shop
balance, records as paid by hand, or rejects. See docs/distribution.md.
"""
from __future__ import annotations

from pyramid.events import NewRequest, NewResponse
from pyramid.renderers import render

from kameng import hookimpl
from kameng.i18n import _
from kameng.types import MenuItem, PluginMeta, StorefrontBlock

from kameng_distribution.config import SETTINGS, validate

__version__ = "0.1.0"

PLUGIN = PluginMeta(
    name=_("Distribution (referrals and commissions)"),
    description=_("Referral links and codes; commissions on up to three levels when an order is delivered, "
                  "taken back on refunds; withdrawals approved by the shop."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="marketing",
    settings=SETTINGS,
    validate=validate,
)

SECTION = _("Distribution")


@hookimpl
def kameng_migration_locations():
    return ["kameng_distribution:migrations"]


@hookimpl
def kameng_user_registered(request, user):
    from kameng_distribution import service

    service.on_registered(request, user)


@hookimpl
def kameng_order_delivered(request, order):
    from kameng_distribution import service

    service.credit_order(request, order)


@hookimpl
def kameng_order_refunded(request, order, refund):
    from kameng_distribution import service

    service.reverse_order(request, order)


@hookimpl
def kameng_storefront_blocks(request, slot):
    if slot == "form.register":
        from kameng_distribution import members, service

        # the code typed before (a form shown again), else the one the referral cookie holds
        code = service.typed_code(request)[:16]
        if not code:
            cookie = members.by_code(request.db, request.cookies.get(service.COOKIE))
            code = cookie.code if cookie is not None else ""
        html = render("kameng_distribution:templates/register_field.pt", {"code": code}, request=request)
        return [StorefrontBlock(slot=slot, html=html, order=50)]
    if slot == "account.top" and request.user is not None:
        from kameng.money import format_minor
        from kameng_distribution import ledger

        currency = request.shop["currency"]
        balance = f"{currency} {format_minor(ledger.balance(request.db, request.user.id), currency)}"
        html = render("kameng_distribution:templates/account_link.pt", {"balance": balance}, request=request)
        return [StorefrontBlock(slot=slot, html=html, order=50)]
    return None


@hookimpl
def kameng_admin_menu(request):
    return [
        MenuItem(_("Overview"), "distribution.admin", SECTION, 10),
        MenuItem(_("Commissions"), "distribution.admin.commissions", SECTION, 20),
        MenuItem(_("Withdrawals"), "distribution.admin.withdrawals", SECTION, 30),
        MenuItem(_("Product rates"), "distribution.admin.rates", SECTION, 40),
        MenuItem(_("Referrers"), "distribution.admin.referrers", SECTION, 50),
    ]


@hookimpl
def kameng_admin_dashboard_widgets(request):
    from kameng_distribution import service

    html = render("kameng_distribution:templates/dashboard_widget.pt",
                  {"pending": service.pending_withdrawals(request.db)}, request=request)
    return [(_("Distribution"), html)]


def includeme(config):
    from kameng_distribution import capture

    config.add_route("distribution.home", "/-/distribution/")
    config.add_route("distribution.withdraw", "/-/distribution/withdraw", request_method="POST")
    config.add_route("distribution.landing", "/-/distribution/r/{code}", request_method="GET")
    config.add_route("distribution.admin", "/-/distribution/admin/")
    config.add_route("distribution.admin.commissions", "/-/distribution/admin/commissions")
    config.add_route("distribution.admin.withdrawals", "/-/distribution/admin/withdrawals")
    config.add_route("distribution.admin.withdrawal", "/-/distribution/admin/withdrawals/{no}/{action}",
                     request_method="POST")
    config.add_route("distribution.admin.rates", "/-/distribution/admin/rates")
    config.add_route("distribution.admin.referrers", "/-/distribution/admin/referrers")
    config.add_route("distribution.admin.user", "/-/distribution/admin/users/{id}")
    config.add_subscriber(capture.on_new_response, NewResponse)
    config.add_subscriber(capture.on_new_request, NewRequest)
    config.scan("kameng_distribution.views")
    config.scan("kameng_distribution.admin")
