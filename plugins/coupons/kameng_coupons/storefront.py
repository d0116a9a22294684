"""The block at the top of product pages (slot ``product.top``): the running
promotions whose scope holds the product, and each option's sale price with
the units and the time it has left. Rendered from a template (escaped)."""
from __future__ import annotations

import re

from pyramid.renderers import render
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from kameng.catalog.models import Product
from kameng.db import utcnow
from kameng.money import format_minor

from kameng_coupons.pricing import product_offers, sale_left, tier_text, tiers_of

ID = re.compile(r"[1-9][0-9]{0,8}")


def offers_block(request) -> str | None:
    raw = request.matchdict.get("id", "") if request.matchdict else ""
    if not ID.fullmatch(raw or ""):
        return None
    product = request.db.scalar(select(Product).where(Product.id == int(raw)).options(selectinload(Product.skus)))
    if product is None or not product.visible or product.archived:
        return None
    now = utcnow()
    offers = product_offers(request.db, product, now)
    if not offers["sales"] and not offers["promotions"]:
        return None
    currency = request.shop["currency"]

    def money(minor):
        return f"{currency} {format_minor(minor, currency)}"

    sales = [{"sku": sku.name, "code": sku.code, "price": money(sale.price), "was": money(sku.price),
              "left": sale_left(sale), "ends": sale.ends_at.strftime("%Y-%m-%d %H:%M UTC"),
              "ends_iso": sale.ends_at.isoformat()} for sku, sale in offers["sales"]]
    promotions = [{"name": p.name, "tiers": [tier_text(t, currency) for t in tiers_of(p)],
                   "ends": p.ends_at.strftime("%Y-%m-%d %H:%M UTC") if p.ends_at else None,
                   "ends_iso": p.ends_at.isoformat() if p.ends_at else None} for p in offers["promotions"]]
    return render("kameng_coupons:templates/offers.pt", {"sales": sales, "promotions": promotions}, request=request)
