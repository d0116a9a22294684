"""kameng-coupons: coupon codes, full-reduction promotions (满减/满折) and
time-limited sale prices.

How the discounts combine (one rule; docs/coupons.md says the same):

    unit price = the agent tier price, else the member level price (a
    per-SKU level price, else the list price minus the level's discount),
    else the list price — all computed by the core
    → sale:      if the SKU has a running sale price lower than that unit
                 price, (unit price − sale price) × units is taken off, for
                 as many units of the order as the sale has left
                 (group "sale", priority 10)
    → promotion: the best 满减/满折 tier that the amount after the sale
                 reaches, among the running promotions whose scope holds the
                 product (group "promotion", priority 20)
    → coupon:    its minimum spend is checked and its percentage computed on
                 the amount after sale and promotion; a percentage is capped
                 by max_discount (group "coupon", priority 30)

So member price, sale, promotion and coupon all stack, in that order, each
on what the previous step left. No step leaves less than one minor unit
(0.01) to pay, and percentages round the discount down. The core adds the
adjustments up; it refuses a total of zero or less by itself.

An order takes its coupon use and its sale units in its own transaction
(conditional UPDATEs; a single-use coupon wanted by two concurrent orders
goes to one, the other is refused with 409 ``coupon_unavailable``; sale
units that ran out between the price and the order give 409
``out_of_stock``), and gives them back once when it expires or is
cancelled unpaid. A late payment after that does not take them again.
"""
from __future__ import annotations

from kameng import hookimpl
from kameng.i18n import _
from kameng.types import JobHandler, MenuItem, PluginMeta, ScheduledJob, SettingField, StorefrontBlock

__version__ = "0.1.0"

PLUGIN_ID = "coupons"
RELEASE_STALE = "coupons.release_stale"

PLUGIN = PluginMeta(
    name=_("Coupons and promotions"),
    description=_("Coupon codes, full-reduction promotions (满减/满折) and time-limited sale prices."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="marketing",
    settings=(
        SettingField("show_offers", _("Show offers on product pages"), type="bool", default=True,
                     help=_("Show the running promotions and sale prices (with the units and time left) at the "
                            "top of product pages.")),
        SettingField("batch_code_length", _("Length of generated codes"), type="int", default=10, min_value=6,
                     max_value=32,
                     help=_("How many random characters a batch-generated code has after its prefix.")),
    ),
)


@hookimpl
def kameng_migration_locations():
    return ["kameng_coupons:migrations"]


@hookimpl
def kameng_price_adjustments(request, quote):
    from kameng_coupons import pricing

    return pricing.adjustments(request, quote)


@hookimpl
def kameng_adjustments_committed(request, order, adjustments):
    from kameng_coupons import pricing

    pricing.commit(request, order, adjustments)


@hookimpl
def kameng_adjustments_released(request, order):
    from kameng_coupons import pricing

    pricing.release(request.db, order.id)


@hookimpl
def kameng_openapi_paths(request):
    from kameng_coupons.openapi import paths

    return paths()


@hookimpl
def kameng_admin_menu(request):
    return [MenuItem(label=_("Coupons"), route_name="coupons.list", section="shop", order=45),
            MenuItem(label=_("Promotions"), route_name="coupons.promotions", section="shop", order=46),
            MenuItem(label=_("Sale prices"), route_name="coupons.sales", section="shop", order=47)]


@hookimpl
def kameng_storefront_blocks(request, slot):
    if slot != "product.top":
        return None
    route = request.matched_route
    if route is None or route.name != "product":
        return None
    if not request.plugin_settings(PLUGIN_ID).get("show_offers", True):
        return None
    from kameng_coupons.storefront import offers_block

    html = offers_block(request)
    return [StorefrontBlock(slot=slot, html=html, order=40)] if html else None


def release_stale_job(request, payload):
    from kameng_coupons import pricing

    pricing.release_stale(request.db)


@hookimpl
def kameng_job_handlers():
    return [JobHandler(kind=RELEASE_STALE, func=release_stale_job, max_attempts=5)]


@hookimpl
def kameng_scheduled_jobs():
    return [ScheduledJob(name="coupons.release-stale", kind=RELEASE_STALE, every_seconds=900)]


def includeme(config):
    add = config.add_route
    add("coupons.list", "/-/coupons/")
    add("coupons.new", "/-/coupons/new")
    add("coupons.batch", "/-/coupons/batch")
    add("coupons.export", "/-/coupons/export.csv")
    add("coupons.edit", r"/-/coupons/{id:\d{1,9}}")
    add("coupons.toggle", r"/-/coupons/{id:\d{1,9}}/toggle")
    add("coupons.promotions", "/-/coupons/promotions")
    add("coupons.promotion.new", "/-/coupons/promotions/new")
    add("coupons.promotion", r"/-/coupons/promotions/{id:\d{1,9}}")
    add("coupons.sales", "/-/coupons/sales")
    add("coupons.sale.new", "/-/coupons/sales/new")
    add("coupons.sale", r"/-/coupons/sales/{id:\d{1,9}}")
    add("coupons.api", "/api/v1/admin/coupons")
    add("coupons.api.one", "/api/v1/admin/coupons/{id}")
    config.scan("kameng_coupons.views")
    config.scan("kameng_coupons.api")
