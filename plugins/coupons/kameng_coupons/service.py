"""Coupons, promotions and sale prices as the admin and the admin API write
them: strict validation (:class:`InputError` names the field at fault),
batch generation, the list's filters and the CSV export.

Inputs are what the JSON API takes (strings for money and percentages,
integers for counts, ISO 8601 times with a zone, lists of SKU codes or ids);
the admin forms are turned into the same shape first (:func:`form_data`).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets

from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from kameng import money
from kameng.catalog.models import Category, Product, Sku
from kameng.db import utcnow
from kameng.i18n import _

from kameng_coupons.models import (
    FIXED,
    KINDS,
    PERCENT,
    PROMOTION_SCOPES,
    SCOPES,
    Coupon,
    Promotion,
    Sale,
)
from kameng_coupons.pricing import CODE, code_key, ids, percent_text, tiers_of

PREFIX = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]{0,19})?")
SKU_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: batch codes: no 0/O or 1/I to misread
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_BATCH = 10_000
MAX_USES = 10 ** 9
MAX_PER_BUYER = 10 ** 6
MAX_TARGETS = 1000
MAX_TIERS = 5
MAX_NOTE = 200
MAX_NAME = 100
CHUNK = 500
STATUSES = ("active", "scheduled", "expired", "used_up", "disabled")
STATUS_LABELS = {"active": _("Active"), "scheduled": _("Not started"), "expired": _("Ended"),
                 "used_up": _("Used up"), "disabled": _("Disabled")}
SCOPE_LABELS = {"all": _("Everything"), "categories": _("Some categories"), "products": _("Some products"),
                "skus": _("Some options (SKUs)")}
KIND_LABELS = {FIXED: _("Fixed amount"), PERCENT: _("Percentage")}
CSV_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


class InputError(ValueError):
    """A refused input: 422 ``invalid_request`` naming ``field`` (409 ``code_taken`` for a used code)."""

    def __init__(self, field: str, message, status: int = 422, code: str = "invalid_request"):
        super().__init__(field)
        self.field, self.message, self.status, self.code = field, message, status, code


# -- reading single values -----------------------------------------------------------------------


def _scalar_text(value, field: str) -> str | None:
    """A value given as text (or a plain integer); None when absent or empty."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(field, _("This value has the wrong type."))
    text = str(value).strip()
    if "\x00" in text:
        raise InputError(field, _("This value has the wrong type."))
    return text or None


def parse_money(value, field: str, currency: str, positive: bool = True) -> int | None:
    text = _scalar_text(value, field)
    if text is None:
        return None
    try:
        minor = money.parse_minor(text, currency)
    except money.MoneyError:
        raise InputError(field, _("Write an amount like 10.00.")) from None
    if minor > money.MAX_MINOR:
        raise InputError(field, _("The amount is too large."))
    if positive and minor <= 0:
        raise InputError(field, _("The amount must be more than zero."))
    return minor


def parse_percent(value, field: str) -> int | None:
    """A percentage between 0 and 100 (exclusive), up to 2 places, as basis points."""
    text = _scalar_text(value, field)
    if text is None:
        return None
    try:
        number = money.parse_decimal(text, 2)
    except money.MoneyError:
        raise InputError(field, _("Write a percentage like 15 or 12.5 (without %).")) from None
    basis = int(number * 100)
    if not 0 < basis < 10000:
        raise InputError(field, _("The percentage must be more than 0 and less than 100."))
    return basis


def parse_int(value, field: str, low: int, high: int) -> int | None:
    text = _scalar_text(value, field)
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]{1,10}", text):
        raise InputError(field, _("Write a whole number."))
    number = int(text)
    if not low <= number <= high:
        raise InputError(field, _("Write a number from ${low} to ${high}.", mapping={"low": low, "high": high}))
    return number


def parse_time(value, field: str, naive_utc: bool = False) -> dt.datetime | None:
    """ISO 8601 with a zone (the API), or a form's ``YYYY-MM-DDTHH:MM`` read as UTC."""
    text = _scalar_text(value, field)
    if text is None:
        return None
    if isinstance(value, int) or len(text) > 40:
        raise InputError(field, _("Write a time like 2026-03-01T20:00:00+08:00."))
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(field, _("Write a time like 2026-03-01T20:00:00+08:00.")) from None
    if when.tzinfo is None:
        if not naive_utc:
            raise InputError(field, _("Give the time with its zone, like 2026-03-01T20:00:00+08:00."))
        when = when.replace(tzinfo=dt.timezone.utc)
    when = when.astimezone(dt.timezone.utc)
    if not 2000 <= when.year <= 2200:
        raise InputError(field, _("Write a time like 2026-03-01T20:00:00+08:00."))
    return when


def parse_bool(value, field: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "on", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "off", "no", ""):
        return False
    raise InputError(field, _("This must be true or false."))


def parse_window(data: dict, naive_utc: bool, required: bool = False) -> tuple:
    starts = parse_time(data.get("starts_at"), "starts_at", naive_utc)
    ends = parse_time(data.get("ends_at"), "ends_at", naive_utc)
    if required and starts is None:
        raise InputError("starts_at", _("Give the start time."))
    if required and ends is None:
        raise InputError("ends_at", _("Give the end time."))
    if starts is not None and ends is not None and ends <= starts:
        raise InputError("ends_at", _("The end must come after the start."))
    return starts, ends


def parse_note(value, field: str = "note", limit: int = MAX_NOTE, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or "\x00" in value:
        raise InputError(field, _("This value has the wrong type."))
    value = value.strip()
    if required and not value:
        raise InputError(field, _("This is required."))
    if len(value) > limit:
        raise InputError(field, _("At most ${n} characters.", mapping={"n": limit}))
    return value


def _list(value, field: str) -> list:
    if not isinstance(value, list):
        raise InputError(field, _("Give a list."))
    if not value:
        raise InputError(field, _("Choose at least one."))
    if len(value) > MAX_TARGETS:
        raise InputError(field, _("At most ${n} entries.", mapping={"n": MAX_TARGETS}))
    return value


def _id_list(db, value, field: str, model) -> list[int]:
    out = []
    for i, item in enumerate(_list(value, field)):
        text = str(item).strip() if isinstance(item, (int, str)) and not isinstance(item, bool) else ""
        if not re.fullmatch(r"[1-9][0-9]{0,8}", text):
            raise InputError(f"{field}[{i}]", _("This is not an id."))
        out.append(int(text))
    out = sorted(set(out))
    known = set(db.scalars(select(model.id).where(model.id.in_(out))))
    for item in out:
        if item not in known:
            if model is Category:
                raise InputError(field, _("There is no category with the id ${id}.", mapping={"id": item}))
            raise InputError(field, _("There is no product with the id ${id}.", mapping={"id": item}))
    return out


def _sku_list(db, value, field: str) -> list[int]:
    codes = []
    for i, item in enumerate(_list(value, field)):
        if not isinstance(item, str) or not SKU_CODE.fullmatch(item.strip()):
            raise InputError(f"{field}[{i}]", _("This is not a SKU code."))
        codes.append(item.strip())
    found = dict(db.execute(select(Sku.code, Sku.id).where(Sku.code.in_(codes))).all())
    for i, code in enumerate(codes):
        if code not in found:
            raise InputError(f"{field}[{i}]", _("There is no SKU ${code}.", mapping={"code": code}))
    return sorted(set(found.values()))


def parse_scope(db, data: dict, allowed=SCOPES) -> tuple[str, list[int]]:
    """``(scope, ids)`` from ``skus`` (codes), ``categories`` or ``products`` (ids), or ``scope: all``."""
    given = [name for name in ("categories", "products", "skus") if data.get(name) is not None]
    scope = data.get("scope")
    if scope is not None and (not isinstance(scope, str) or scope not in allowed):
        raise InputError("scope", _("The scope must be one of: ${choices}.", mapping={"choices": ", ".join(allowed)}))
    if len(given) > 1:
        raise InputError(given[1], _("Give only one of ${names}.", mapping={"names": ", ".join(given)}))
    if scope is None:
        scope = given[0] if given else "all"
    if scope not in allowed:
        raise InputError(scope, _("The scope must be one of: ${choices}.", mapping={"choices": ", ".join(allowed)}))
    if scope == "all":
        if given:
            raise InputError(given[0], _("A coupon for everything takes no list."))
        return "all", []
    if scope == "skus":
        return scope, _sku_list(db, data.get("skus"), "skus")
    return scope, _id_list(db, data.get(scope), scope, Category if scope == "categories" else Product)


# -- coupons --------------------------------------------------------------------------------------


def coupon_values(db, data: dict, currency: str, *, naive_utc: bool = False, with_code: bool = True,
                  exclude_id: int | None = None) -> dict:
    """The columns of a coupon from ``data``; raises :class:`InputError`."""
    if not isinstance(data, dict):
        raise InputError("", _("The body must be a JSON object."))
    out = {}
    if with_code:
        code = data.get("code")
        if not isinstance(code, str) or not CODE.fullmatch(code.strip()):
            raise InputError("code", _("A code has 3 to 64 letters, digits, '-' or '_', and starts with a letter "
                                       "or digit."))
        code = code.strip()
        taken = select(Coupon.id).where(Coupon.code_key == code_key(code))
        if exclude_id is not None:
            taken = taken.where(Coupon.id != exclude_id)
        if db.scalar(taken) is not None:
            raise InputError("code", _("A coupon with this code already exists."), status=409, code="code_taken")
        out.update(code=code, code_key=code_key(code))
    kind = data.get("kind")
    if kind not in KINDS:
        raise InputError("kind", _("The kind must be fixed or percent."))
    out["kind"] = kind
    if kind == FIXED:
        value = parse_money(data.get("value"), "value", currency)
    else:
        value = parse_percent(data.get("value"), "value")
    if value is None:
        raise InputError("value", _("Give the discount."))
    out["value"] = value
    cap = parse_money(data.get("max_discount"), "max_discount", currency)
    if cap is not None and kind == FIXED:
        raise InputError("max_discount", _("Only a percentage coupon has a cap."))
    out["max_discount"] = cap
    out["min_amount"] = parse_money(data.get("min_amount"), "min_amount", currency, positive=False) or 0
    out["max_uses"] = parse_int(data.get("max_uses"), "max_uses", 1, MAX_USES)
    out["per_buyer"] = parse_int(data.get("per_buyer"), "per_buyer", 1, MAX_PER_BUYER)
    out["starts_at"], out["ends_at"] = parse_window(data, naive_utc)
    out["scope"], targets = parse_scope(db, data)
    out["targets"] = json.dumps(targets)
    out["active"] = parse_bool(data.get("active"), "active", True)
    out["note"] = parse_note(data.get("note"))
    return out


def create_coupon(db, values: dict, batch: str = "") -> Coupon:
    now = utcnow()
    coupon = Coupon(**values, used=0, batch=batch, created_at=now, updated_at=now)
    try:
        with db.begin_nested():
            db.add(coupon)
            db.flush()
    except IntegrityError:  # a twin request took the code between the check and the insert
        raise InputError("code", _("A coupon with this code already exists."), status=409,
                         code="code_taken") from None
    return coupon


def update_coupon(db, coupon: Coupon, values: dict) -> Coupon:
    for name, value in values.items():
        setattr(coupon, name, value)
    coupon.updated_at = utcnow()
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        raise InputError("code", _("A coupon with this code already exists."), status=409,
                         code="code_taken") from None
    return coupon


def coupon_input(coupon: Coupon, db, currency: str) -> dict:
    """A stored coupon in the API's input shape (to merge a partial update into)."""
    data = coupon_json(db, coupon, currency)
    out = {k: data[k] for k in ("code", "kind", "value", "max_discount", "min_amount", "max_uses", "per_buyer",
                                "starts_at", "ends_at", "active", "note")}
    out["scope"] = coupon.scope
    if coupon.scope != "all":
        out[coupon.scope] = data[coupon.scope]
    return out


def value_text(kind: str, value: int, currency: str) -> str:
    return money.format_minor(value, currency) if kind == FIXED else percent_text(value)


def status_of(coupon: Coupon, now=None) -> str:
    now = now or utcnow()
    if not coupon.active:
        return "disabled"
    if coupon.starts_at is not None and now < coupon.starts_at:
        return "scheduled"
    if coupon.ends_at is not None and now >= coupon.ends_at:
        return "expired"
    if coupon.max_uses is not None and coupon.used >= coupon.max_uses:
        return "used_up"
    return "active"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def target_codes(db, coupon_or_promotion) -> list:
    targets = ids(coupon_or_promotion.targets)
    if coupon_or_promotion.scope == "skus" and targets:
        codes = dict(db.execute(select(Sku.id, Sku.code).where(Sku.id.in_(targets))).all())
        return sorted(codes[t] for t in targets if t in codes)
    return targets


def coupon_json(db, coupon: Coupon, currency: str) -> dict:
    fmt = money.format_minor
    out = {"id": coupon.id, "code": coupon.code, "kind": coupon.kind,
           "value": value_text(coupon.kind, coupon.value, currency),
           "max_discount": fmt(coupon.max_discount, currency) if coupon.max_discount is not None else None,
           "min_amount": fmt(coupon.min_amount, currency), "max_uses": coupon.max_uses,
           "per_buyer": coupon.per_buyer, "used": coupon.used, "starts_at": _iso(coupon.starts_at),
           "ends_at": _iso(coupon.ends_at), "scope": coupon.scope, "active": coupon.active,
           "status": status_of(coupon), "batch": coupon.batch or None, "note": coupon.note,
           "currency": currency, "created_at": _iso(coupon.created_at), "updated_at": _iso(coupon.updated_at)}
    for name in ("categories", "products", "skus"):
        out[name] = target_codes(db, coupon) if coupon.scope == name else []
    return out


def coupon_query(q: str = "", status: str = "", batch: str = "", now=None):
    now = now or utcnow()
    stmt = select(Coupon)
    if q:
        stmt = stmt.where(or_(Coupon.code_key.contains(code_key(q), autoescape=True),
                              Coupon.note.icontains(q, autoescape=True)))
    if batch:
        stmt = stmt.where(Coupon.batch == batch)
    started = or_(Coupon.starts_at.is_(None), Coupon.starts_at <= now)
    running = or_(Coupon.ends_at.is_(None), Coupon.ends_at > now)
    left = or_(Coupon.max_uses.is_(None), Coupon.used < Coupon.max_uses)
    on = Coupon.active.is_(True)
    if status == "active":
        stmt = stmt.where(on, started, running, left)
    elif status == "scheduled":
        stmt = stmt.where(on, Coupon.starts_at > now)
    elif status == "expired":
        stmt = stmt.where(on, started, Coupon.ends_at <= now)
    elif status == "used_up":
        stmt = stmt.where(on, started, running, Coupon.max_uses.is_not(None), Coupon.used >= Coupon.max_uses)
    elif status == "disabled":
        stmt = stmt.where(Coupon.active.is_(False))
    return stmt


# -- batch generation and export ------------------------------------------------------------------


def random_code(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _i in range(length))


def generate_batch(db, values: dict, prefix: str, count: int, length: int = 10) -> tuple[str, int]:
    """``count`` coupons with ``values``' rules and random codes ``prefix`` +
    ``length`` characters, under a new batch name; returns ``(batch, count)``."""
    if not isinstance(prefix, str) or not PREFIX.fullmatch(prefix.strip()):
        raise InputError("prefix", _("A prefix has up to 20 letters, digits, '-' or '_', and starts with a letter "
                                     "or digit."))
    prefix = prefix.strip()
    if not 1 <= count <= MAX_BATCH:
        raise InputError("count", _("Write a number from ${low} to ${high}.", mapping={"low": 1, "high": MAX_BATCH}))
    length = max(6, min(length, 64 - len(prefix)))
    now = utcnow()
    batch = f"{prefix.rstrip('-_') or 'B'}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    made = 0
    while made < count:
        want = min(CHUNK, count - made)
        codes: set[str] = set()
        while len(codes) < want:
            codes.add(random_code(prefix, length))
        taken = set(db.scalars(select(Coupon.code_key).where(Coupon.code_key.in_([code_key(c) for c in codes]))))
        fresh = [c for c in codes if code_key(c) not in taken]
        if fresh:
            db.execute(insert(Coupon), [{**values, "code": c, "code_key": code_key(c), "used": 0, "batch": batch,
                                         "created_at": now, "updated_at": now} for c in fresh])
            made += len(fresh)
    return batch, made


def csv_cell(value) -> str:
    """A cell a spreadsheet shows as text (no formula injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_DANGEROUS) else text


CSV_HEADER = ("code", "kind", "value", "max_discount", "min_amount", "max_uses", "per_buyer", "used", "starts_at",
              "ends_at", "scope", "status", "batch", "note", "created_at")


def export_csv(db, stmt, currency: str) -> bytes:
    """The coupons of ``stmt`` as CSV (UTF-8 with a BOM, so Excel reads it)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    now = utcnow()
    last = 0
    while True:
        rows = db.scalars(stmt.where(Coupon.id > last).order_by(Coupon.id).limit(CHUNK)).all()
        if not rows:
            break
        wanted = {t for c in rows if c.scope == "skus" for t in ids(c.targets)}
        codes = dict(db.execute(select(Sku.id, Sku.code).where(Sku.id.in_(wanted))).all()) if wanted else {}
        for c in rows:
            targets = ids(c.targets)
            if c.scope == "skus":
                targets = sorted(codes[t] for t in targets if t in codes)
            writer.writerow([csv_cell(v) for v in (
                c.code, c.kind, value_text(c.kind, c.value, currency),
                money.format_minor(c.max_discount, currency) if c.max_discount is not None else "",
                money.format_minor(c.min_amount, currency), c.max_uses if c.max_uses is not None else "",
                c.per_buyer if c.per_buyer is not None else "", c.used, _iso(c.starts_at) or "",
                _iso(c.ends_at) or "", c.scope if c.scope == "all" else f"{c.scope}:{' '.join(map(str, targets))}",
                status_of(c, now), c.batch, c.note, _iso(c.created_at))])
        last = rows[-1].id
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def batches(db, limit: int = 50) -> list[tuple[str, int]]:
    """The latest batches and how many codes each holds."""
    rows = db.execute(select(Coupon.batch, func.count(), func.max(Coupon.id).label("last"))
                      .where(Coupon.batch != "").group_by(Coupon.batch)
                      .order_by(func.max(Coupon.id).desc()).limit(limit)).all()
    return [(b, n) for b, n, _last in rows]


# -- promotions -----------------------------------------------------------------------------------


def parse_tiers(value, currency: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise InputError("tiers", _("Give at least one tier."))
    if len(value) > MAX_TIERS:
        raise InputError("tiers", _("At most ${n} tiers.", mapping={"n": MAX_TIERS}))
    tiers = []
    for i, tier in enumerate(value):
        field = f"tiers[{i}]"
        if not isinstance(tier, dict):
            raise InputError(field, _("A tier is an object with threshold, kind and value."))
        threshold = parse_money(tier.get("threshold"), f"{field}.threshold", currency)
        if threshold is None:
            raise InputError(f"{field}.threshold", _("Give the amount the order must reach."))
        kind = tier.get("kind")
        if kind not in ("amount", "percent"):
            raise InputError(f"{field}.kind", _("The kind must be amount or percent."))
        if kind == "amount":
            off = parse_money(tier.get("value"), f"{field}.value", currency)
            if off is not None and off >= threshold:
                raise InputError(f"{field}.value", _("The discount must be less than the amount to reach."))
        else:
            off = parse_percent(tier.get("value"), f"{field}.value")
        if off is None:
            raise InputError(f"{field}.value", _("Give the discount."))
        if any(t["threshold"] == threshold for t in tiers):
            raise InputError(f"{field}.threshold", _("Two tiers have the same amount to reach."))
        tiers.append({"threshold": threshold, "kind": kind, "value": off})
    return sorted(tiers, key=lambda t: t["threshold"])


def promotion_values(db, data: dict, currency: str, *, naive_utc: bool = False) -> dict:
    out = {"name": parse_note(data.get("name"), "name", MAX_NAME, required=True)}
    out["active"] = parse_bool(data.get("active"), "active", True)
    out["starts_at"], out["ends_at"] = parse_window(data, naive_utc)
    out["scope"], targets = parse_scope(db, data, PROMOTION_SCOPES)
    out["targets"] = json.dumps(targets)
    out["tiers"] = json.dumps(parse_tiers(data.get("tiers"), currency))
    return out


def promotion_tiers_input(promotion: Promotion, currency: str) -> list[dict]:
    return [{"threshold": money.format_minor(t["threshold"], currency), "kind": t["kind"],
             "value": money.format_minor(t["value"], currency) if t["kind"] == "amount" else percent_text(t["value"])}
            for t in tiers_of(promotion)]


# -- sale prices ----------------------------------------------------------------------------------


def sale_values(db, data: dict, currency: str, *, naive_utc: bool = False, existing: Sale | None = None) -> dict:
    code = data.get("sku")
    code = code.strip() if isinstance(code, str) else ""
    sku = db.scalar(select(Sku).where(Sku.code == code)) if SKU_CODE.fullmatch(code) else None
    if sku is None:
        raise InputError("sku", _("There is no SKU with this code."))
    price = parse_money(data.get("price"), "price", currency)
    if price is None:
        raise InputError("price", _("Give the sale price."))
    if price >= sku.price:
        raise InputError("price", _("The sale price must be lower than the list price (${price}).",
                                    mapping={"price": money.format_minor(sku.price, currency)}))
    starts, ends = parse_window(data, naive_utc, required=True)
    cap = parse_int(data.get("cap"), "cap", 1, MAX_USES)
    if cap is None:
        raise InputError("cap", _("Give how many units sell at this price."))
    if existing is not None and cap < existing.sold:
        raise InputError("cap", _("${n} units have already sold at this price; the cap cannot be lower.",
                                  mapping={"n": existing.sold}))
    active = parse_bool(data.get("active"), "active", True)
    if active:
        clash = select(Sale.id).where(Sale.sku_id == sku.id, Sale.active.is_(True), Sale.starts_at < ends,
                                      Sale.ends_at > starts)
        if existing is not None:
            clash = clash.where(Sale.id != existing.id)
        other = db.scalar(clash.limit(1))
        if other is not None:
            raise InputError("starts_at", _("This SKU has another sale (#${id}) at that time.", mapping={"id": other}))
    return {"sku_id": sku.id, "price": price, "starts_at": starts, "ends_at": ends, "cap": cap, "active": active}
