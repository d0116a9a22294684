"""Keeping goods in step with the upstream: import, price and stock sync.

A sync reads the upstream's list once and, for every SKU bound to the
connection, takes its cost and stock, recomputes the sale price by the SKU's
rule, and hides what the upstream stopped selling or ran out of (showing it
again when it is back, unless the shop hid it itself). Every change is
written to the sync log.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from sqlalchemy import select

from kameng import jobs, money
from kameng.catalog import service as catalog
from kameng.catalog.models import Category, Sku
from kameng.db import utcnow
from kameng.i18n import _
from kameng.suppliers.base import SupplierError
from kameng.suppliers.connections import connector_for
from kameng.suppliers.models import PRICE_MODES, SkuUpstream, SupplierConnection, SyncLog
from kameng.types import SettingError, UpstreamGoods

log = logging.getLogger(__name__)

SYNC = "kameng.suppliers.sync"
#: what a direct recharge asks the buyer when the upstream does not say
DEFAULT_RECHARGE_FIELDS = [{"name": "account", "label": "充值账号", "kind": "text"}]
SYNC_DUE = "kameng.suppliers.sync_due"


def cost_minor(cost: Decimal, currency: str) -> int:
    """An upstream cost in minor units, rounded up (never sell below cost)."""
    return int(Decimal(cost).scaleb(money.digits(currency)).to_integral_value(ROUND_CEILING))


def check_rule(mode: str, value: str, step) -> tuple[str, str, int]:
    """A pricing rule from a form: ``fixed``, ``markup`` (percent) or
    ``margin`` (an amount); the sale price is rounded up to ``step`` minor units."""
    if mode not in PRICE_MODES:
        raise SettingError("price_mode", _("must be one of: ${choices}", mapping={"choices": ", ".join(PRICE_MODES)}))
    try:
        number = Decimal(str(value or "0").strip())
    except InvalidOperation:
        raise SettingError("price_value", _("must be a number like 10 or 2.50")) from None
    if not number.is_finite() or number < 0 or number > 100000:
        raise SettingError("price_value", _("must be a number like 10 or 2.50"))
    try:
        step = int(step or 1)
    except ValueError:
        raise SettingError("price_step", _("must be a whole number")) from None
    if not 1 <= step <= 100000:
        raise SettingError("price_step", _("must be between ${low} and ${high}", mapping={"low": 1, "high": 100000}))
    return mode, str(number), step


def sale_price(binding: SkuUpstream, current: int, currency: str) -> int:
    """The SKU's price by its rule, from its cost now."""
    if binding.price_mode == "fixed":
        return current
    value = Decimal(binding.price_value or "0")
    if binding.price_mode == "markup":
        raw = Decimal(binding.cost) * (1 + value / 100)
    else:
        raw = Decimal(binding.cost) + value.scaleb(money.digits(currency))
    step = max(1, binding.price_step)
    return int((raw / step).to_integral_value(ROUND_CEILING)) * step


def _index(goods: list[UpstreamGoods]) -> dict[str, tuple[UpstreamGoods, object]]:
    return {sku.code: (g, sku) for g in goods for sku in g.skus}


def sync_connection(request, connection: SupplierConnection) -> SyncLog:
    """Sync the connection now (a job, or the admin's button)."""
    db = request.db
    entry = SyncLog(connection_id=connection.id, kind="sync", at=utcnow())
    db.add(entry)
    connector = connector_for(request, connection)
    try:
        if connector is None:
            raise SupplierError("the connector plugin is not enabled")
        upstream = _index(connector.list_goods())
    except SupplierError as exc:
        entry.error = str(exc)[:255]
        connection.health, connection.health_message, connection.checked_at = "error", entry.error, utcnow()
        return entry
    currency = request.shop["currency"]
    changes = []
    bindings = db.scalars(select(SkuUpstream).where(SkuUpstream.connection_id == connection.id)
                          .order_by(SkuUpstream.id)).all()
    for b in bindings:
        sku = db.scalar(select(Sku).where(Sku.id == b.sku_id).with_for_update())
        found = upstream.get(b.upstream_sku)
        before = {"cost": b.cost, "price": sku.price, "stock": sku.stock, "visible": sku.visible}
        if found is None or not found[1].available:
            b.available = False
        else:
            b.available, b.cost = True, cost_minor(found[1].cost, currency)
            b.upstream_stock = found[1].stock
            sku.stock = found[1].stock
            sku.cost_price = b.cost
            sku.price = sale_price(b, sku.price, currency)
        out = not b.available or (sku.stock is not None and sku.stock <= 0)
        if out and sku.visible:
            sku.visible, b.hidden_by_sync = False, True
        elif not out and b.hidden_by_sync:
            sku.visible, b.hidden_by_sync = True, False
        b.synced_at = utcnow()
        after = {"cost": b.cost, "price": sku.price, "stock": sku.stock, "visible": sku.visible}
        changes += [{"sku": sku.code, "field": k, "from": before[k], "to": after[k]}
                    for k in before if before[k] != after[k]]
    entry.changes = json.dumps(changes, ensure_ascii=False)
    connection.last_sync_at = utcnow()
    connection.health, connection.health_message, connection.checked_at = "ok", "", utcnow()
    log.info("supplier_synced", extra={"connection": connection.id, "changes": len(changes)})
    return entry


def sync_job(request, payload) -> None:
    connection = request.db.get(SupplierConnection, int(payload["id"]))
    if connection is not None and connection.enabled:
        sync_connection(request, connection)


def sync_due(request, payload=None) -> int:
    """Queue a sync for every connection whose interval has passed (scheduled)."""
    db = request.db
    now = utcnow()
    queued = 0
    for c in db.scalars(select(SupplierConnection).where(SupplierConnection.enabled.is_(True))):
        if c.last_sync_at is None or c.last_sync_at + dt.timedelta(seconds=c.sync_interval) <= now:
            slot = int(now.timestamp() // max(60, c.sync_interval))
            if jobs.enqueue(db, SYNC, {"id": c.id}, dedupe_key=f"supplier-sync:{c.id}:{slot}") is not None:
                queued += 1
    return queued


def import_goods(request, connection: SupplierConnection, wanted: list[str], rule: tuple[str, str, int],
                 category_id: int | None = None) -> list[int]:
    """Create a product for each upstream goods id in ``wanted``, one SKU per
    upstream option, bound to the connection and priced by ``rule``. Gives
    the new products' ids; goods already imported are skipped."""
    db = request.db
    connector = connector_for(request, connection)
    if connector is None:
        raise SupplierError("the connector plugin is not enabled")
    currency = request.shop["currency"]
    if connector.currency.upper() != currency.upper():
        raise SupplierError(f"the supplier's prices are in {connector.currency}; this shop sells in {currency}")
    goods = {g.id: g for g in connector.list_goods()}
    mode, value, step = rule
    taken: set[str] = set()
    made, changes = [], []
    for gid in wanted:
        g = goods.get(gid)
        if g is None or db.scalar(select(SkuUpstream.id).where(SkuUpstream.connection_id == connection.id,
                                                                SkuUpstream.upstream_goods == g.id)):
            continue
        cat = category_id or _category(db, g.category)
        skus = []
        for u in g.skus:
            probe = SkuUpstream(cost=cost_minor(u.cost, currency), price_mode=mode, price_value=value,
                                price_step=step)
            price = sale_price(probe, probe.cost, currency)
            skus.append({"code": _code(db, connection.id, u.code, taken), "name": u.name[:200],
                         "price": money.format_minor(max(price, 1), currency),
                         **({"stock": u.stock} if u.stock is not None else {})})
        data = {"name": g.name[:200], "type": g.type, "description": g.description, "skus": skus,
                **({"category_id": str(cat)} if cat else {}),
                **({"recharge_fields": list(g.recharge_fields) or DEFAULT_RECHARGE_FIELDS}
                   if g.type == "direct_recharge" else {})}
        product = catalog.save_product(db, data, currency)
        ours = {s.code: s for s in product.skus}
        for u, sku in ((u, ours[d["code"]]) for u, d in zip(g.skus, skus)):
            sku.cost_price = cost_minor(u.cost, currency)
            sku.stock = u.stock  # the upstream's count (card keys too: none are kept here)
            sku.visible = u.available and (u.stock is None or u.stock > 0)
            db.add(SkuUpstream(sku_id=sku.id, connection_id=connection.id, upstream_goods=g.id, upstream_sku=u.code,
                               cost=sku.cost_price, upstream_stock=u.stock, available=u.available,
                               hidden_by_sync=not sku.visible, price_mode=mode, price_value=value, price_step=step,
                               synced_at=utcnow()))
            changes.append({"sku": sku.code, "field": "imported", "from": None, "to": u.code})
        made.append(product.id)
    db.add(SyncLog(connection_id=connection.id, kind="import", changes=json.dumps(changes, ensure_ascii=False)))
    db.flush()
    return made


def _category(db, name: str) -> int | None:
    name = (name or "").strip()[:100]
    if not name:
        return None
    found = db.scalar(select(Category.id).where(Category.name == name))
    return found or catalog.save_category(db, {"name": name}).id


def _code(db, connection_id: int, upstream_code: str, taken: set[str]) -> str:
    """A SKU code of our own for an upstream option: unique in the shop and
    in this import (two upstream codes may differ only in letters a code
    cannot hold, like 月卡 and 年卡)."""
    import re

    base = re.sub(r"[^A-Za-z0-9._-]", "-", f"S{connection_id}-{upstream_code}")[:60].strip("-.") or f"S{connection_id}"
    base = re.sub(r"-{2,}", "-", base)
    code, n = base, 1
    while code in taken or db.scalar(select(Sku.id).where(Sku.code == code)) is not None:
        n += 1
        code = f"{base[:56]}-{n}"
    taken.add(code)
    return code
