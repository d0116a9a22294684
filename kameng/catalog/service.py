"""Catalog rules shared by the admin pages, the admin API and the storefront:
validation, sanitising, prices and stock display."""
from __future__ import annotations

import json
import re

import nh3
from sqlalchemy import delete, func, select

from kameng import money
from kameng.catalog import recharge
from kameng.catalog.models import PRODUCT_TYPES, Category, Product, Sku, SkuPrice
from kameng.i18n import _
from kameng.inventory.models import CardKey

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
URL = re.compile(r"^(https?://[^\s\"'<>\x00-\x1f\x7f]{1,490}|/[^\s\"'<>\x00-\x1f\x7f]{0,490})\Z")
MAX_QUANTITY = 10000
#: the highest price (minor units): an order of a few units still fits the database's INTEGER columns
MAX_PRICE = 10 ** 9
ALLOWED_TAGS = {"p", "br", "b", "strong", "i", "em", "u", "s", "ul", "ol", "li", "h3", "h4", "blockquote",
                "code", "pre", "a", "img", "span", "table", "thead", "tbody", "tr", "th", "td", "hr"}


class CatalogError(ValueError):
    """A bad catalog input: ``field`` names it, ``message`` is translatable."""

    def __init__(self, field: str, message):
        super().__init__(f"{field}: {getattr(message, 'interpolate', lambda: message)()}")
        self.field, self.message = field, message


def sanitize_html(text: str) -> str:
    """Rich text a merchant may use in a description; no script, no event
    handler, no ``javascript:`` URL survives."""
    return nh3.clean(text or "", tags=ALLOWED_TAGS, url_schemes={"http", "https"},
                     attributes={"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}},
                     link_rel="noopener noreferrer nofollow")


def _text(data: dict, name: str, max_len: int, required=False, default=None):
    if name not in data:
        if required:
            raise CatalogError(name, _("is required"))
        return default
    value = data[name]
    if not isinstance(value, str):
        raise CatalogError(name, _("must be text"))
    value = value.replace("\x00", "").strip()  # PostgreSQL refuses NUL in text
    if required and not value:
        raise CatalogError(name, _("is required"))
    if len(value) > max_len:
        raise CatalogError(name, _("must be at most ${n} characters", mapping={"n": max_len}))
    return value


def _bool(data: dict, name: str, default=None):
    if name not in data:
        return default
    value = data[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "on", "yes", "0", "false", "off", "no", ""):
        return value.lower() in ("1", "true", "on", "yes")
    raise CatalogError(name, _("must be true or false"))


def _int(data: dict, name: str, default=None, lo=0, hi=10 ** 9):
    if name not in data or data[name] in (None, ""):
        return default
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise CatalogError(name, _("must be a whole number"))
    if isinstance(value, str):
        if not re.fullmatch(r"-?\d{1,10}", value.strip()):
            raise CatalogError(name, _("must be a whole number"))
        value = int(value)
    if not lo <= value <= hi:
        raise CatalogError(name, _("must be between ${lo} and ${hi}", mapping={"lo": lo, "hi": hi}))
    return value


def _money(data: dict, name: str, currency: str, default=None, required=False):
    if name not in data or data[name] in (None, ""):
        if required:
            raise CatalogError(name, _("is required"))
        return default
    value = data[name]
    if not isinstance(value, str):
        raise CatalogError(name, _('must be a decimal string like "12.50"'))
    try:
        minor = money.parse_minor(value.strip(), currency)
    except money.MoneyError:
        raise CatalogError(name, _('must be a decimal string like "12.50"')) from None
    if minor > MAX_PRICE:
        raise CatalogError(name, _("must be between ${lo} and ${hi}", mapping={
            "lo": money.format_minor(0, currency), "hi": money.format_minor(MAX_PRICE, currency)}))
    return minor


# -- categories -----------------------------------------------------------------------


def save_category(db, data: dict, category: Category | None = None) -> Category:
    new = category is None
    category = category or Category()
    name = _text(data, "name", 100, required=True) if (new or "name" in data) else None
    if name is not None:
        category.name = name
    if "parent_id" in data:
        parent_id = _int(data, "parent_id", None, 1)
        if parent_id is not None:
            parent = db.get(Category, parent_id)
            if parent is None:
                raise CatalogError("parent_id", _("no such category"))
            node = parent
            while node is not None:  # a category cannot move under itself
                if not new and node.id == category.id:
                    raise CatalogError("parent_id", _("a category cannot be inside itself"))
                node = db.get(Category, node.parent_id) if node.parent_id else None
        category.parent_id = parent_id
    icon = _text(data, "icon", 255)
    if icon is not None:
        if icon and not URL.match(icon):
            raise CatalogError("icon", _("must be an http(s) URL or a path"))
        category.icon = icon
    category.sort = _int(data, "sort", category.sort or 0, -10 ** 6, 10 ** 6)
    visible = _bool(data, "visible")
    if visible is not None:
        category.visible = visible
    elif new:
        category.visible = True
    if new:
        db.add(category)
    db.flush()
    return category


# -- products and SKUs ---------------------------------------------------------------------


def _images(value) -> str:
    if isinstance(value, str):
        value = [v for v in (x.strip() for x in value.splitlines()) if v]
    if not isinstance(value, list) or len(value) > 12 or not all(isinstance(v, str) and URL.match(v) for v in value):
        raise CatalogError("images", _("must be up to 12 http(s) URLs or paths"))
    return json.dumps(value)


def save_product(db, data: dict, currency: str, product: Product | None = None) -> Product:
    new = product is None
    product = product or Product()
    name = _text(data, "name", 200, required=True) if (new or "name" in data) else None
    if name is not None:
        product.name = name
    if new or "type" in data:
        ptype = data.get("type", "card_key")
        if ptype not in PRODUCT_TYPES:
            raise CatalogError("type", _("must be card_key, direct_recharge or manual"))
        if not new and ptype != product.type:
            if db.scalar(select(func.count()).select_from(CardKey).join(Sku).where(Sku.product_id == product.id)):
                raise CatalogError("type", _("a product with card keys cannot change its type"))
            # card-key stock is the keys (none yet); other goods start unlimited
            for sku in db.scalars(select(Sku).where(Sku.product_id == product.id)):
                sku.stock = 0 if ptype == "card_key" else None
        product.type = ptype
    if "category_id" in data:
        cid = _int(data, "category_id", None, 1)
        if cid is not None and db.get(Category, cid) is None:
            raise CatalogError("category_id", _("no such category"))
        product.category_id = cid
    description = _text(data, "description", 50000)
    if description is not None:
        product.description = sanitize_html(description)
    instructions = _text(data, "instructions", 5000)
    if instructions is not None:
        product.instructions = sanitize_html(instructions)
    if "images" in data:
        product.images = _images(data["images"])
    tags = _text(data, "tags", 255)
    if tags is not None:
        product.tags = ",".join(t.strip() for t in re.split(r"[,，]", tags) if t.strip())
    if "recharge_fields" in data:
        try:
            product.recharge_fields = json.dumps(recharge.parse_spec(data["recharge_fields"]), ensure_ascii=False)
        except recharge.RechargeError as exc:
            raise CatalogError("recharge_fields", exc.message) from None
    for flag in ("hot", "recommended", "visible", "archived"):
        value = _bool(data, flag)
        if value is not None:
            setattr(product, flag, value)
        elif new:
            setattr(product, flag, flag == "visible")
    product.sort = _int(data, "sort", product.sort or 0, -10 ** 6, 10 ** 6)
    if product.type == "direct_recharge" and not json.loads(product.recharge_fields or "[]"):
        raise CatalogError("recharge_fields", _("a direct recharge product needs at least one input field"))
    if new:
        product.description = product.description or ""
        product.instructions = product.instructions or ""
        product.images = product.images or "[]"
        product.tags = product.tags or ""
        product.recharge_fields = product.recharge_fields or "[]"
        db.add(product)
    db.flush()
    skus = data.get("skus")
    if new and (not isinstance(skus, list) or not skus):
        raise CatalogError("skus", _("a product needs at least one SKU"))
    if skus is not None and new:
        for i, sku_data in enumerate(skus):
            if not isinstance(sku_data, dict):
                raise CatalogError(f"skus[{i}]", _("must be an object"))
            save_sku(db, sku_data, currency, product=product)
    return product


def save_sku(db, data: dict, currency: str, sku: Sku | None = None, product: Product | None = None) -> Sku:
    new = sku is None
    sku = sku or Sku(product_id=product.id)
    product = product or db.get(Product, sku.product_id)
    if new:
        code = _text(data, "code", 64, required=True)
        if not CODE.match(code):
            raise CatalogError("code", _("letters, digits, '.', '_' and '-' only"))
        if db.scalar(select(Sku.id).where(Sku.code == code)) is not None:
            raise CatalogError("code", _("the code ${code} is taken", mapping={"code": code}))
        sku.code = code
    name = _text(data, "name", 200, required=True) if (new or "name" in data) else None
    if name is not None:
        sku.name = name
    sku.price = _money(data, "price", currency, sku.price, required=new)
    if sku.price is not None and sku.price <= 0:
        raise CatalogError("price", _("must be more than zero"))
    sku.cost_price = _money(data, "cost_price", currency, sku.cost_price or 0)
    sku.min_quantity = _int(data, "min_quantity", sku.min_quantity or 1, 1, MAX_QUANTITY)
    sku.max_quantity = _int(data, "max_quantity", sku.max_quantity or 100, 1, MAX_QUANTITY)
    if sku.min_quantity > sku.max_quantity:
        raise CatalogError("max_quantity", _("must not be less than min_quantity"))
    sku.low_stock_threshold = _int(data, "low_stock_threshold", sku.low_stock_threshold or 0, 0, 10 ** 6)
    sku.sort = _int(data, "sort", sku.sort or 0, -10 ** 6, 10 ** 6)
    visible = _bool(data, "visible")
    sku.visible = True if (visible is None and new) else (sku.visible if visible is None else visible)
    if "attributes" in data:
        attrs = data["attributes"]
        if not isinstance(attrs, dict) or len(attrs) > 10 or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= 30 and len(v) <= 100
                for k, v in attrs.items()):
            raise CatalogError("attributes", _("must be up to 10 named text attributes"))
        sku.attributes = json.dumps(attrs, ensure_ascii=False)
    elif new:
        sku.attributes = "{}"
    if product.type == "card_key":
        if "stock" in data and not new:
            raise CatalogError("stock", _("the stock of a card-key SKU is its imported keys"))
        if new:
            sku.stock = 0
    elif "stock" in data:
        sku.stock = _int(data, "stock", None, 0, 10 ** 9)  # empty: unlimited
    elif new:
        sku.stock = None
    if new:
        db.add(sku)
    db.flush()
    for kind in ("level_prices", "tier_prices"):
        if kind in data:
            set_special_prices(db, sku, kind.split("_")[0], data[kind], currency)
    return sku


def set_special_prices(db, sku: Sku, kind: str, prices, currency: str) -> None:
    """Replace a SKU's prices for member levels (``kind='level'``) or agent
    tiers (``kind='tier'``): ``{"gold": "45.00", ...}``."""
    field = f"{kind}_prices"
    if not isinstance(prices, dict) or len(prices) > 50:
        raise CatalogError(field, _("must be an object of codes and prices"))
    parsed = {}
    for ref, value in prices.items():
        if not isinstance(ref, str) or not CODE.match(ref):
            raise CatalogError(field, _("codes are letters, digits, '.', '_' and '-'"))
        try:
            parsed[ref] = _money({ref: value}, ref, currency, required=True)
        except CatalogError as exc:
            raise CatalogError(f"{field}.{ref}", exc.message) from None
        if parsed[ref] <= 0:
            raise CatalogError(f"{field}.{ref}", _("must be more than zero"))
    for row in db.scalars(select(SkuPrice).where(SkuPrice.sku_id == sku.id, SkuPrice.kind == kind)):
        db.delete(row)
    db.flush()
    for ref, price in parsed.items():
        db.add(SkuPrice(sku_id=sku.id, kind=kind, ref=ref, price=price))
    db.flush()


def delete_product(db, product: Product) -> str:
    """Delete a product, or archive it when keys were ever sold or reserved
    from it (their history must stay). Returns ``deleted`` or ``archived``."""
    used = db.scalar(select(func.count()).select_from(CardKey).join(Sku).where(
        Sku.product_id == product.id, CardKey.state.in_(("reserved", "sold"))))
    if used:
        product.archived = True
        product.visible = False
        db.flush()
        return "archived"
    sku_ids = list(db.scalars(select(Sku.id).where(Sku.product_id == product.id)))
    if sku_ids:  # available or void keys only (checked above); prices and imports cascade
        db.execute(delete(CardKey).where(CardKey.sku_id.in_(sku_ids)))
        db.execute(delete(Sku).where(Sku.id.in_(sku_ids)))
    db.execute(delete(Product).where(Product.id == product.id))
    db.expunge(product)
    return "deleted"


# -- what buyers see -----------------------------------------------------------------------


def buyer_price(db, sku: Sku, level: str | None = None, tier: str | None = None) -> tuple[int, dict | None]:
    """A buyer's unit price and how it was reached: ``(unit, how)``.

    The agent tier's price of the SKU, else the member level's price of the
    SKU, else the list price less the member level's discount (rounded half
    up to the minor unit, never below one minor unit); never more than the
    list price. ``how`` is None for the list price, else ``{"source": "tier"
    | "level_price" | "level_discount", "tier" | "level": code, "level_name"?,
    "discount_bp"?}``."""
    for kind, ref in (("tier", tier), ("level", level)):
        if ref:
            special = db.scalar(select(SkuPrice.price).where(SkuPrice.sku_id == sku.id, SkuPrice.kind == kind,
                                                             SkuPrice.ref == ref))
            if special is not None:
                how = {"source": "tier", "tier": ref} if kind == "tier" else {"source": "level_price", "level": ref}
                if kind == "level":
                    how["level_name"] = _level_name(db, ref)
                return min(special, sku.price), how
    if level:
        from kameng.levels import MemberLevel, discounted

        row = db.execute(select(MemberLevel.name, MemberLevel.discount_bp).where(MemberLevel.code == level)).first()
        if row is not None and row.discount_bp > 0:
            return discounted(sku.price, row.discount_bp), {"source": "level_discount", "level": level,
                                                             "level_name": row.name, "discount_bp": row.discount_bp}
    return sku.price, None


def _level_name(db, code: str) -> str:
    from kameng.levels import MemberLevel

    return db.scalar(select(MemberLevel.name).where(MemberLevel.code == code)) or code


def price_for(db, sku: Sku, level: str | None = None, tier: str | None = None) -> int:
    """A buyer's unit price (:func:`buyer_price`): the agent tier price, else
    the member level price, else the list price less the level's discount."""
    return buyer_price(db, sku, level, tier)[0]


def stock_label(sku: Sku, mode: str = "number", few: int = 10):
    """What the storefront shows: the number, or plenty/few/out."""
    if sku.stock is None:
        return _("In stock") if mode != "number" else None
    if sku.stock <= 0:
        return _("Sold out")
    if mode == "number":
        return sku.stock
    return _("Only a few left") if sku.stock <= few else _("In stock")


def buyable(product: Product, sku: Sku) -> bool:
    return product.visible and not product.archived and sku.visible and (sku.stock is None or sku.stock > 0)
