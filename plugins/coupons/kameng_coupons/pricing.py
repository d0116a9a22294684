"""How a sale price, a promotion and a coupon price one order line, and how
an order takes (and gives back) the coupon use and the sale units.

The rule (also in docs/coupons.md and the package docstring): the core's
unit price (agent tier, else member level, else list price) →

1. **sale** (group ``sale``, priority 10): an active sale price of the SKU
   below that unit price takes ``(unit − sale price) × units`` off, for as
   many units of the order as the sale has left (the rest at the unit price);
2. **promotion** (group ``promotion``, priority 20): of every active
   promotion whose scope holds the product, the tier with the biggest
   discount among those whose threshold the amount after the sale reaches;
3. **coupon** (group ``coupon``, priority 30): checked and computed on the
   amount after sale and promotion (minimum spend, percentage, cap).

Each step works on what the previous one left, and none takes the amount
below one minor unit (0.01): a step that would is cut down to leave 0.01.
Percentages round the discount down to the minor unit.

:func:`plan` only reads (``kameng_price_adjustments`` must not write).
:func:`commit` runs in the order's transaction and consumes the coupon use
and the sale units with conditional UPDATEs (a single-use coupon taken by
two concurrent orders is granted once). :func:`release` gives them back
exactly once when the order expires or is cancelled unpaid.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, or_, select, update

from kameng.catalog.models import Category, Product, Sku
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import format_minor
from kameng.orders.checkout import normalize_contact
from kameng.types import Adjustment

from kameng_coupons.models import FIXED, PERCENT, RELEASED, USED, Coupon, Promotion, Redemption, Sale, SaleUse

log = logging.getLogger(__name__)

SOURCE = "coupons"
SALE_GROUP, PROMOTION_GROUP, COUPON_GROUP = "sale", "promotion", "coupon"
SALE_PRIORITY, PROMOTION_PRIORITY, COUPON_PRIORITY = 10, 20, 30
#: what a coupon code is: 3 to 64 ASCII letters, digits, '-' or '_', starting with a letter or digit
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,63}")
#: the smallest amount any step leaves to pay, in minor units
FLOOR = 1
BASIS = 10000  # basis points in 100 %


# -- small helpers ----------------------------------------------------------------------------------


def code_key(code: str) -> str:
    """The form coupon codes are compared in (codes are ASCII, case-insensitive)."""
    return code.strip().upper()


def contact_key(contact) -> str:
    return normalize_contact(contact or "").casefold()[:254]


def ids(text) -> list[int]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool)] if isinstance(value, list) else []


def tiers_of(promotion: Promotion) -> list[dict]:
    try:
        value = json.loads(promotion.tiers or "[]")
    except ValueError:
        return []
    return [t for t in value if isinstance(t, dict)] if isinstance(value, list) else []


def percent_text(basis_points: int) -> str:
    """``1500`` → ``"15"``, ``1250`` → ``"12.5"``."""
    if basis_points % 100 == 0:
        return str(basis_points // 100)
    return format(Decimal(basis_points) / 100, "f").rstrip("0")


def percent_of(amount: int, basis_points: int) -> int:
    """``basis_points`` of ``amount``, rounded down."""
    return amount * basis_points // BASIS


def within(starts_at, ends_at, now) -> bool:
    return (starts_at is None or starts_at <= now) and (ends_at is None or now < ends_at)


def category_chain(db, category_id: int | None) -> set[int]:
    """The product's category and every category above it."""
    if category_id is None:
        return set()
    parents = dict(db.execute(select(Category.id, Category.parent_id)).all())
    chain: set[int] = set()
    at = category_id
    while at is not None and at not in chain:
        chain.add(at)
        at = parents.get(at)
    return chain


class Scope:
    """Whether a coupon's or promotion's scope holds one product option; the
    category chain is read once, when a category scope asks for it."""

    def __init__(self, db, product, sku):
        self.db, self.product, self.sku = db, product, sku
        self._chain = None

    @property
    def chain(self) -> set[int]:
        if self._chain is None:
            self._chain = category_chain(self.db, getattr(self.product, "category_id", None))
        return self._chain

    def holds(self, scope: str, targets: str) -> bool:
        if scope == "all":
            return True
        wanted = set(ids(targets))
        if scope == "categories":
            return bool(wanted & self.chain)
        if scope == "products":
            return self.product.id in wanted
        if scope == "skus":
            return self.sku.id in wanted
        return False


# -- the three steps --------------------------------------------------------------------------------


def active_sale(db, sku_id: int, now) -> Sale | None:
    """The SKU's running sale with units left (the lowest price, then the oldest)."""
    stmt = (select(Sale).where(Sale.sku_id == sku_id, Sale.active.is_(True), Sale.starts_at <= now,
                               Sale.ends_at > now, Sale.sold < Sale.cap)
            .order_by(Sale.price, Sale.id).limit(1))
    return db.scalar(stmt)


def active_promotions(db, now) -> list[Promotion]:
    return list(db.scalars(select(Promotion).where(
        Promotion.active.is_(True), or_(Promotion.starts_at.is_(None), Promotion.starts_at <= now),
        or_(Promotion.ends_at.is_(None), Promotion.ends_at > now)).order_by(Promotion.id)))


def tier_discount(tier: dict, amount: int) -> int:
    """What ``tier`` takes off ``amount`` (0 when the amount does not reach it)."""
    threshold, value = tier.get("threshold"), tier.get("value")
    if not isinstance(threshold, int) or not isinstance(value, int) or amount < threshold:
        return 0
    off = value if tier.get("kind") == "amount" else percent_of(amount, value)
    return max(min(off, amount - FLOOR), 0)


def best_tier(promotion: Promotion, amount: int) -> tuple[dict | None, int]:
    best, best_off = None, 0
    for tier in tiers_of(promotion):
        off = tier_discount(tier, amount)
        if off > best_off:
            best, best_off = tier, off
    return best, best_off


def find_coupon(db, code: str) -> Coupon | None:
    """The coupon ``code`` names; a text no code can be (NUL, spaces, too long) is not looked up."""
    key = code_key(code or "") if isinstance(code, str) else ""
    if not CODE.fullmatch(key):
        return None
    return db.scalar(select(Coupon).where(Coupon.code_key == key))


def buyer_filter(user_id, contact: str):
    """Redemptions by this buyer: the same account, or the same contact."""
    conds = []
    if user_id is not None:
        conds.append(Redemption.user_id == user_id)
    if contact:
        conds.append(Redemption.contact_key == contact)
    return or_(*conds) if conds else None


def buyer_uses(db, coupon_id: int, user_id, contact: str) -> int:
    who = buyer_filter(user_id, contact)
    if who is None:
        return 0
    return db.scalar(select(func.count()).select_from(Redemption).where(
        Redemption.coupon_id == coupon_id, Redemption.status == USED, who)) or 0


def coupon_discount(coupon: Coupon, amount: int) -> int:
    """What ``coupon`` takes off ``amount`` by its kind, cap and the floor
    (its other conditions are :func:`coupon_usable`'s)."""
    off = coupon.value if coupon.kind == FIXED else percent_of(amount, coupon.value)
    if coupon.kind == PERCENT and coupon.max_discount is not None:
        off = min(off, coupon.max_discount)
    return max(min(off, amount - FLOOR), 0)


def coupon_usable(db, coupon: Coupon, scope: Scope, amount: int, now, user_id=None, contact: str = "") -> bool:
    """Every condition of ``coupon`` for this line, on the amount after the sale and promotion."""
    return (coupon.active and within(coupon.starts_at, coupon.ends_at, now)
            and (coupon.max_uses is None or coupon.used < coupon.max_uses)
            and amount >= coupon.min_amount and scope.holds(coupon.scope, coupon.targets)
            and (coupon.per_buyer is None or buyer_uses(db, coupon.id, user_id, contact) < coupon.per_buyer))


@dataclass
class Plan:
    """The discounts of one order line, each a positive number of minor units."""

    subtotal: int
    sale: Sale | None = None
    sale_units: int = 0
    sale_amount: int = 0
    promotion: Promotion | None = None
    tier: dict | None = None
    promotion_amount: int = 0
    coupon: Coupon | None = None
    coupon_amount: int = 0

    @property
    def after_sale(self) -> int:
        return self.subtotal - self.sale_amount

    @property
    def after_promotion(self) -> int:
        return self.after_sale - self.promotion_amount


def plan_sale(db, sku, quantity: int, unit_price: int, now) -> tuple[Sale | None, int, int]:
    """``(sale, units, discount)`` for ``quantity`` units at ``unit_price``."""
    sale = active_sale(db, sku.id, now)
    if sale is None or sale.price >= unit_price:
        return None, 0, 0
    units = min(quantity, sale.cap - sale.sold)
    if units <= 0:
        return None, 0, 0
    subtotal = unit_price * quantity
    amount = min((unit_price - sale.price) * units, subtotal - FLOOR)
    return (sale, units, amount) if amount > 0 else (None, 0, 0)


def plan(db, product, sku, quantity: int, unit_price: int, user_id=None, contact: str = "",
         coupon_code: str = "", now=None) -> Plan:
    """Sale, then promotion, then coupon, each on what the previous left. Read-only."""
    now = now or utcnow()
    p = Plan(subtotal=unit_price * quantity)
    if p.subtotal <= FLOOR:
        return p
    scope = Scope(db, product, sku)
    p.sale, p.sale_units, p.sale_amount = plan_sale(db, sku, quantity, unit_price, now)
    for promotion in active_promotions(db, now):
        if not scope.holds(promotion.scope, promotion.targets):
            continue
        tier, off = best_tier(promotion, p.after_sale)
        if off > p.promotion_amount:
            p.promotion, p.tier, p.promotion_amount = promotion, tier, off
    if coupon_code:
        coupon = find_coupon(db, coupon_code)
        if coupon is not None and coupon_usable(db, coupon, scope, p.after_promotion, now, user_id,
                                                contact_key(contact)):
            off = coupon_discount(coupon, p.after_promotion)
            if off > 0:
                p.coupon, p.coupon_amount = coupon, off
    return p


# -- labels -----------------------------------------------------------------------------------------


def tier_text(tier: dict, currency: str):
    """满减 / 满折 tier as a sentence: "10.00 off orders of 100.00 or more"."""
    threshold = format_minor(tier.get("threshold", 0), currency)
    if tier.get("kind") == "amount":
        return _("${off} off orders of ${threshold} or more",
                 mapping={"off": format_minor(tier.get("value", 0), currency), "threshold": threshold})
    return _("${percent}% off orders of ${threshold} or more",
             mapping={"percent": percent_text(tier.get("value", 0)), "threshold": threshold})


def adjustments(request, quote) -> list[Adjustment]:
    """``kameng_price_adjustments`` for this plugin."""
    product, sku = quote.product, quote.sku
    if product is None or sku is None or quote.quantity <= 0:
        return []
    user_id = getattr(quote.user, "id", None)
    p = plan(request.db, product, sku, quote.quantity, quote.unit_price, user_id=user_id, contact=quote.contact,
             coupon_code=quote.coupon)
    tr = request.localizer.translate
    out = []
    if p.sale is not None:
        out.append(Adjustment(source=SOURCE, label=tr(_("Sale price: ${units} at ${price}", mapping={
            "units": p.sale_units, "price": format_minor(p.sale.price, quote.currency)})),
            amount=-p.sale_amount, exclusive_group=SALE_GROUP, priority=SALE_PRIORITY))
    if p.promotion is not None:
        out.append(Adjustment(source=SOURCE, label=f"{p.promotion.name}: {tr(tier_text(p.tier, quote.currency))}",
                              amount=-p.promotion_amount, exclusive_group=PROMOTION_GROUP,
                              priority=PROMOTION_PRIORITY))
    if p.coupon is not None:
        out.append(Adjustment(source=SOURCE, label=tr(_("Coupon")), amount=-p.coupon_amount, code=p.coupon.code,
                              exclusive_group=COUPON_GROUP, priority=COUPON_PRIORITY))
    return out


# -- taking and giving back -------------------------------------------------------------------------


def coupon_used_up() -> APIError:
    return APIError(409, "coupon_unavailable", _("This coupon has just been used up."))


def sale_sold_out() -> APIError:
    return APIError(409, "out_of_stock", _("The sale price has just sold out. Reload the page to see the "
                                           "current price."))


def _take_sale(db, order, adjustment: Adjustment, now) -> None:
    sku = db.get(Sku, order.sku_id) if order.sku_id is not None else None
    if sku is None:
        raise sale_sold_out()
    sale, units, amount = plan_sale(db, sku, order.quantity, order.unit_price, now)
    # the sale the quote priced must still be the one, with the same units
    if sale is None or amount != -adjustment.amount:
        raise sale_sold_out()
    res = db.execute(update(Sale).where(Sale.id == sale.id, Sale.active.is_(True), Sale.starts_at <= now,
                                        Sale.ends_at > now, Sale.sold + units <= Sale.cap)
                     .values(sold=Sale.sold + units).execution_options(synchronize_session=False))
    if res.rowcount != 1:
        raise sale_sold_out()
    db.add(SaleUse(sale_id=sale.id, order_id=order.id, order_no=order.order_no, units=units, amount=amount,
                   status=USED, created_at=now))


def _take_coupon(db, order, adjustment: Adjustment, now) -> None:
    coupon = find_coupon(db, adjustment.code)
    if coupon is None:
        raise coupon_used_up()
    # one statement decides and takes the use; it holds the coupon's row lock
    # until the order commits, so buyers of one coupon queue here
    res = db.execute(update(Coupon).where(
        Coupon.id == coupon.id, Coupon.active.is_(True),
        or_(Coupon.max_uses.is_(None), Coupon.used < Coupon.max_uses),
        or_(Coupon.starts_at.is_(None), Coupon.starts_at <= now),
        or_(Coupon.ends_at.is_(None), Coupon.ends_at > now),
    ).values(used=Coupon.used + 1).execution_options(synchronize_session=False))
    if res.rowcount != 1:
        raise coupon_used_up()
    contact = contact_key(order.contact)
    per_buyer = db.scalar(select(Coupon.per_buyer).where(Coupon.id == coupon.id))
    # counted under the row lock: a twin order of this buyer waits above and counts this one
    if per_buyer is not None and buyer_uses(db, coupon.id, order.user_id, contact) >= per_buyer:
        raise coupon_used_up()
    db.add(Redemption(coupon_id=coupon.id, order_id=order.id, order_no=order.order_no, user_id=order.user_id,
                      contact_key=contact, amount=-adjustment.amount, status=USED, created_at=now))


def commit(request, order, applied) -> None:
    """``kameng_adjustments_committed``: take the sale units, then the coupon use
    (always in that order, so two orders never wait on each other's rows)."""
    mine = {a.exclusive_group: a for a in applied if a.source == SOURCE}
    if not mine:
        return
    db, now = request.db, utcnow()
    if SALE_GROUP in mine:
        _take_sale(db, order, mine[SALE_GROUP], now)
    if COUPON_GROUP in mine and mine[COUPON_GROUP].code:
        _take_coupon(db, order, mine[COUPON_GROUP], now)
    db.flush()
    log.info("coupons_committed", extra={"order_no": order.order_no, "groups": sorted(mine)})


def release(db, order_id: int) -> int:
    """Give back what the order took, once: each use row moves ``used`` →
    ``released`` by a conditional UPDATE, and only the statement that moved
    it returns the use. Returns how many rows it released."""
    now = utcnow()
    done = 0
    for rid, coupon_id in db.execute(select(Redemption.id, Redemption.coupon_id).where(
            Redemption.order_id == order_id, Redemption.status == USED)).all():
        res = db.execute(update(Redemption).where(Redemption.id == rid, Redemption.status == USED)
                         .values(status=RELEASED, released_at=now).execution_options(synchronize_session=False))
        if res.rowcount == 1:
            db.execute(update(Coupon).where(Coupon.id == coupon_id, Coupon.used > 0)
                       .values(used=Coupon.used - 1).execution_options(synchronize_session=False))
            done += 1
    for uid, sale_id, units in db.execute(select(SaleUse.id, SaleUse.sale_id, SaleUse.units).where(
            SaleUse.order_id == order_id, SaleUse.status == USED)).all():
        res = db.execute(update(SaleUse).where(SaleUse.id == uid, SaleUse.status == USED)
                         .values(status=RELEASED, released_at=now).execution_options(synchronize_session=False))
        if res.rowcount == 1:
            db.execute(update(Sale).where(Sale.id == sale_id, Sale.sold >= units)
                       .values(sold=Sale.sold - units).execution_options(synchronize_session=False))
            done += 1
    return done


def release_stale(db, limit: int = 500) -> int:
    """Release the uses of orders that expired or were cancelled while this
    plugin was disabled (its release hook was not called then)."""
    from kameng.orders.models import Order
    from kameng.orders.states import CANCELLED, EXPIRED

    closed = (EXPIRED, CANCELLED)
    order_ids = set(db.scalars(select(Redemption.order_id).join(Order, Order.id == Redemption.order_id)
                               .where(Redemption.status == USED, Order.status.in_(closed)).limit(limit)))
    order_ids |= set(db.scalars(select(SaleUse.order_id).join(Order, Order.id == SaleUse.order_id)
                                .where(SaleUse.status == USED, Order.status.in_(closed)).limit(limit)))
    done = 0
    for order_id in sorted(order_ids):
        done += release(db, order_id)
    return done


def sale_left(sale: Sale) -> int:
    return max(sale.cap - sale.sold, 0)


def product_offers(db, product: Product, now=None) -> dict:
    """What the product page shows: running promotions whose scope holds the
    product (for some visible option), and each visible option's sale."""
    now = now or utcnow()
    skus = [s for s in product.skus if s.visible]
    sales = []
    for sku in skus:
        sale = active_sale(db, sku.id, now)
        if sale is not None and sale.price < sku.price:
            sales.append((sku, sale))
    promotions = []
    if skus:
        scope = Scope(db, product, skus[0])
        for promotion in active_promotions(db, now):
            if promotion.scope != "skus" and scope.holds(promotion.scope, promotion.targets) and tiers_of(promotion):
                promotions.append(promotion)
    return {"sales": sales, "promotions": promotions}

