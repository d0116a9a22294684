"""The server-side price pipeline.

base price → the buyer's own unit price → plugin adjustments
(``kameng_price_adjustments``: sales, promotions, coupons) → the amount to
pay. The client never sends a price. Each step is kept in
:attr:`Quote.steps` and stored on the order.

The buyer's own unit price (:func:`kameng.catalog.service.buyer_price`,
docs/members.md): the SKU's price for the account's agent tier, else its
price for the account's member level, else the list price less the member
level's discount (rounded half up to the minor unit, never below 0.01);
never more than the list price. It is one ``special_price`` step naming
where it came from (``source``: ``tier``, ``level_price`` or
``level_discount``) and the level's name; the subtotal is that unit price
times the quantity, so nothing is rounded after it.

How adjustments combine (one rule, documented in docs/plugins.md): within
an ``exclusive_group`` only the biggest discount counts; adjustments with
no group all count; the total never goes below zero; surcharges (positive
amounts) are allowed. Plugin order does not matter.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kameng.catalog.service import buyer_price
from kameng.types import Adjustment


@dataclass
class Quote:
    """What a buyer would pay. Plugins read it in ``kameng_price_adjustments``."""

    product: object
    sku: object
    quantity: int
    currency: str
    user: object | None = None
    coupon: str = ""
    contact: str = ""
    base_unit: int = 0
    unit_price: int = 0
    subtotal: int = 0
    adjustments: list[Adjustment] = field(default_factory=list)
    rejected: list[Adjustment] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)

    @property
    def discount(self) -> int:
        return -sum(a.amount for a in self.adjustments)

    @property
    def amount(self) -> int:
        return max(self.subtotal - self.discount, 0)


def price_refs(user) -> tuple[str | None, str | None]:
    """The member level and agent tier whose special prices apply to ``user``."""
    if user is None:
        return None, None
    return getattr(user, "level", None) or None, getattr(user, "tier", None) or None


def resolve(adjustments: list[Adjustment]) -> tuple[list[Adjustment], list[Adjustment]]:
    """``(applied, dropped)``: the best of each exclusive group, every ungrouped one."""
    best: dict[str, Adjustment] = {}
    applied, dropped = [], []
    for a in sorted(adjustments, key=lambda a: (a.priority, a.source, a.code, a.label)):
        if not isinstance(a, Adjustment) or not isinstance(a.amount, int):
            raise TypeError(f"a price adjustment must be an Adjustment with an int amount, not {a!r}")
        if not a.exclusive_group:
            applied.append(a)
            continue
        held = best.get(a.exclusive_group)
        if held is None or a.amount < held.amount:
            if held is not None:
                dropped.append(held)
            best[a.exclusive_group] = a
        else:
            dropped.append(a)
    return applied + list(best.values()), dropped


def quote(request, product, sku, quantity: int, user=None, coupon: str = "", contact: str = "") -> Quote:
    """Price ``quantity`` of ``sku`` for ``user`` (None: a guest). Read-only."""
    currency = request.shop["currency"]
    level, tier = price_refs(user)
    q = Quote(product=product, sku=sku, quantity=quantity, currency=currency, user=user,
              coupon=(coupon or "").strip()[:64], contact=contact)
    q.base_unit = sku.price
    q.unit_price, how = buyer_price(request.db, sku, level=level, tier=tier)
    q.subtotal = q.unit_price * quantity
    q.steps.append({"step": "base", "unit": q.base_unit, "quantity": quantity, "amount": q.base_unit * quantity})
    if q.unit_price != q.base_unit:
        # the buyer's agent tier price, member level price or level discount
        # (in that order: the first that the SKU and the account have wins)
        step = {"step": "special_price", "tier": how.get("tier"), "level": how.get("level"),
                "source": how["source"], "unit": q.unit_price, "amount": q.subtotal - q.base_unit * quantity}
        for name in ("level_name", "discount_bp"):
            if name in how:
                step[name] = how[name]
        q.steps.append(step)
    offered = []
    for result in request.hooks.kameng_price_adjustments(request=request, quote=q):
        offered.extend(result or ())
    q.adjustments, q.rejected = resolve(offered)
    for a in q.adjustments:
        q.steps.append({"step": "adjustment", "source": a.source, "label": str(a.label), "code": a.code,
                        "amount": a.amount})
    if q.subtotal - q.discount < 0:
        q.steps.append({"step": "floor", "amount": -(q.subtotal - q.discount)})
    q.steps.append({"step": "total", "amount": q.amount})
    return q
