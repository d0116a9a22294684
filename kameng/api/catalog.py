"""The catalog API: public reads and the admin API (API.md).

Public: ``GET /api/v1/categories``, ``/products``, ``/products/{id}`` — only
what a buyer may see (visible, not archived, in no hidden category). Admin
(an admin token or session): categories, products, SKUs, card-key imports
and stock counts. Validation is :mod:`kameng.catalog.service`'s; this module
turns its :class:`CatalogError` into a 422 naming the field, and dooms the
transaction first so a half-saved product never commits.
"""
from __future__ import annotations

import io
import json
import re

from pyramid.view import view_config
from sqlalchemy import func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload

from kameng import audit, money
from kameng.api import api_csrf, json_body
from kameng.catalog import service
from kameng.catalog.models import Category, Product, Sku, SkuPrice
from kameng.catalog.service import CatalogError
from kameng.errors import APIError
from kameng.i18n import _
from kameng.inventory import service as inventory
from kameng.inventory.models import KeyImport

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000
MAX_QUERY = 100
MAX_KEYS_BODY = 20 * 1024 * 1024  # a key import upload, in bytes
MAX_SEPARATOR = 10
MAX_PATTERN = 200  # what the service keeps of a recharge field's pattern
_ID = re.compile(r"^[1-9][0-9]{0,8}\Z")  # ids the database can hold on every backend
_LIKE_ESCAPE = "/"
PRODUCT_FIELDS = ("name", "type", "category_id", "description", "instructions", "images", "tags",
                  "recharge_fields", "hot", "recommended", "visible", "archived", "sort")
SKU_FIELDS = ("name", "price", "cost_price", "min_quantity", "max_quantity", "low_stock_threshold", "sort",
              "visible", "attributes", "stock", "level_prices", "tier_prices")
TEXT_TYPES = ("", "text/plain", "text/csv", "application/octet-stream")


# -- helpers --------------------------------------------------------------------------


def _body(request) -> dict:
    """The JSON object of the request; a pathologically nested body is a 400 too."""
    try:
        return json_body(request)
    except RecursionError:
        raise APIError(400, "invalid_request", _("The body is not valid JSON.")) from None


def _invalid(request, exc: CatalogError, field: str | None = None) -> APIError:
    request.tm.doom()  # nothing of a failed save is committed
    return APIError(422, "invalid_request", exc.message, field=field or exc.field)


def _loads(text, default):
    try:
        value = json.loads(text) if text else default
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


def _currency(request) -> str:
    return request.shop["currency"]


def _fmt(request, minor: int | None) -> str | None:
    return None if minor is None else money.format_minor(minor, _currency(request))


def _tags(product: Product) -> list[str]:
    return [t for t in (product.tags or "").split(",") if t]


def _int_param(request, name: str, default: int, hi: int) -> int:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"\d{1,9}", raw) or int(raw) < 1:
        raise APIError(400, "invalid_request", _("${name} must be a positive whole number", mapping={"name": name}),
                       field=name)
    return min(int(raw), hi)


def _page(request) -> tuple[int, int]:
    page = _int_param(request, "page", 1, 10 ** 9)
    if page > MAX_PAGE:
        raise APIError(400, "invalid_request", _("page is too large"), field="page")
    return page, _int_param(request, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (``%`` and ``_`` are not wildcards)."""
    for ch in (_LIKE_ESCAPE, "%", "_"):
        text = text.replace(ch, _LIKE_ESCAPE + ch)
    return f"%{text}%"


def _public_categories(db) -> list[Category]:
    """Visible categories whose ancestors are all visible, ordered by sort then id."""
    cats = db.scalars(select(Category).order_by(Category.sort, Category.id)).all()
    by_id = {c.id: c for c in cats}

    def shown(c: Category) -> bool:
        seen = set()
        while c is not None:
            if not c.visible or c.id in seen:
                return False
            seen.add(c.id)
            c = by_id.get(c.parent_id) if c.parent_id else None
        return True

    return [c for c in cats if shown(c)]


def _subtree(categories: list[Category], root: int) -> list[int]:
    """``root`` and every category under it, among ``categories``."""
    children: dict[int, list[int]] = {}
    ids = {c.id for c in categories}
    for c in categories:
        if c.parent_id:
            children.setdefault(c.parent_id, []).append(c.id)
    if root not in ids:
        return []
    out, todo = [], [root]
    while todo:
        cid = todo.pop()
        if cid not in out:
            out.append(cid)
            todo.extend(children.get(cid, ()))
    return out


def _keep_name(data: dict) -> None:
    """A change may leave out the name, not blank it (the service only
    requires one on creation)."""
    if isinstance(data.get("name"), str) and not data["name"].strip():
        raise CatalogError("name", _("is required"))


def _product_input(data: dict) -> dict:
    """Accept a list for ``tags`` (the service takes comma-separated text) and
    refuse recharge field declarations the service cannot check safely."""
    data = dict(data)
    _keep_name(data)
    tags = data.get("tags")
    if isinstance(tags, list):
        if not all(isinstance(t, str) for t in tags):
            raise CatalogError("tags", _("must be a list of text"))
        data["tags"] = ",".join(t.replace(",", " ").replace("，", " ") for t in tags)
    fields = data.get("recharge_fields")
    if isinstance(fields, list):
        for item in fields:
            if not isinstance(item, dict):
                continue  # the service names this error
            if "kind" in item and not isinstance(item["kind"], str):
                raise CatalogError("recharge_fields", _("the kind of a field must be text"))
            pattern = item.get("pattern")
            if isinstance(pattern, str) and len(pattern) > MAX_PATTERN:
                raise CatalogError("recharge_fields", _("a pattern must be at most ${n} characters",
                                                        mapping={"n": MAX_PATTERN}))
    return data


def _sku_field(data, field: str) -> str:
    """The field a SKU error is about; a bad level or tier price is named by
    the service after its code alone, so give it its place."""
    if field in SKU_FIELDS or field in ("code",) or not isinstance(data, dict):
        return field
    for kind in ("level_prices", "tier_prices"):
        if isinstance(data.get(kind), dict) and field in data[kind]:
            return f"{kind}.{field}"
    return field


class _Tracked(list):
    """The SKU list handed to :func:`service.save_product`; remembers which
    entry is being saved, so an error can say ``skus[1].price``."""

    at: int | None = None

    def __iter__(self):
        for i, item in enumerate(list.__iter__(self)):
            self.at = i
            yield item


# -- JSON shapes ----------------------------------------------------------------------------


def category_json(c: Category, admin: bool = False) -> dict:
    out = {"id": c.id, "name": c.name, "parent_id": c.parent_id, "icon": c.icon or "", "sort": c.sort or 0}
    if admin:
        out["visible"] = bool(c.visible)
    return out


def _special_prices(db, skus: list[Sku]) -> dict[int, dict[str, dict[str, int]]]:
    out: dict[int, dict[str, dict[str, int]]] = {s.id: {"level": {}, "tier": {}} for s in skus}
    if skus:
        for row in db.scalars(select(SkuPrice).where(SkuPrice.sku_id.in_(list(out))).order_by(SkuPrice.ref)):
            out[row.sku_id].setdefault(row.kind, {})[row.ref] = row.price
    return out


def sku_json(request, sku: Sku, admin: bool = False, special: dict | None = None) -> dict:
    stock = sku.stock if sku.stock is None else max(sku.stock, 0)
    out = {"code": sku.code, "name": sku.name,
           "price": _fmt(request, sku.price if admin else service.price_for(request.db, sku)),
           "stock": stock, "min_quantity": sku.min_quantity, "max_quantity": sku.max_quantity,
           "attributes": _loads(sku.attributes, {})}
    if admin:
        special = special if special is not None else _special_prices(request.db, [sku])[sku.id]
        out.update({
            "id": sku.id, "product_id": sku.product_id, "cost_price": _fmt(request, sku.cost_price or 0),
            "visible": bool(sku.visible), "low_stock_threshold": sku.low_stock_threshold or 0,
            "sort": sku.sort or 0,
            "level_prices": {k: _fmt(request, v) for k, v in special.get("level", {}).items()},
            "tier_prices": {k: _fmt(request, v) for k, v in special.get("tier", {}).items()}})
    return out


def _ordered(skus) -> list[Sku]:
    return sorted(skus, key=lambda s: (s.sort or 0, s.id))


def product_json(request, product: Product, admin: bool = False) -> dict:
    skus = _ordered(product.skus) if admin else [s for s in _ordered(product.skus) if s.visible]
    special = _special_prices(request.db, skus) if admin else {}
    out = {"id": product.id, "name": product.name, "type": product.type, "category_id": product.category_id,
           "description": product.description or "", "instructions": product.instructions or "",
           "images": _loads(product.images, []), "tags": _tags(product), "hot": bool(product.hot),
           "recommended": bool(product.recommended), "recharge_fields": _loads(product.recharge_fields, []),
           "skus": [sku_json(request, s, admin, special.get(s.id)) for s in skus]}
    if admin:
        out.update({"visible": bool(product.visible), "archived": bool(product.archived), "sort": product.sort or 0,
                    "created_at": product.created_at.isoformat() if product.created_at else None})
    return out


def summary_json(request, product: Product, admin: bool = False) -> dict:
    skus = [s for s in product.skus if s.visible]
    prices = [service.price_for(request.db, s) for s in skus]
    images = _loads(product.images, [])
    out = {"id": product.id, "name": product.name, "type": product.type, "category_id": product.category_id,
           "image": images[0] if images else None, "tags": _tags(product), "hot": bool(product.hot),
           "recommended": bool(product.recommended),
           "min_price": _fmt(request, min(prices)) if prices else None,
           "in_stock": any(service.buyable(product, s) for s in skus)}
    if admin:
        out.update({"visible": bool(product.visible), "archived": bool(product.archived)})
    return out


# -- public ---------------------------------------------------------------------------------


@view_config(route_name="api.categories", request_method="GET", renderer="json", require_csrf=False)
def list_categories(request):
    return {"items": [category_json(c) for c in _public_categories(request.db)]}


def _product_list(request, admin: bool):
    page, per_page = _page(request)
    stmt = select(Product)
    cats = request.db.scalars(select(Category)).all() if admin else _public_categories(request.db)
    if not admin:
        stmt = stmt.where(Product.visible.is_(True), Product.archived.is_(False),
                          or_(Product.category_id.is_(None), Product.category_id.in_([c.id for c in cats])))
    category = request.GET.get("category", "").strip()
    if category:
        if not re.fullmatch(r"\d{1,9}", category):
            raise APIError(400, "invalid_request", _("category must be a category id"), field="category")
        stmt = stmt.where(Product.category_id.in_(_subtree(cats, int(category))))
    q = request.GET.get("q", "").replace("\x00", "").strip()[:MAX_QUERY]  # PostgreSQL refuses NUL in text
    if q:
        pattern = _like(q)
        stmt = stmt.where(or_(Product.name.ilike(pattern, escape=_LIKE_ESCAPE),
                              Product.tags.ilike(pattern, escape=_LIKE_ESCAPE)))
    total = request.db.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = request.db.scalars(stmt.order_by(Product.sort, Product.id).offset((page - 1) * per_page)
                              .limit(per_page).options(selectinload(Product.skus))).all()
    return {"items": [summary_json(request, p, admin) for p in rows], "total": total, "page": page,
            "per_page": per_page}


@view_config(route_name="api.products", request_method="GET", renderer="json", require_csrf=False)
def list_products(request):
    return _product_list(request, admin=False)


def _load_product(request) -> Product | None:
    pid = request.matchdict["id"]
    if not _ID.match(pid):
        return None
    return request.db.scalar(select(Product).where(Product.id == int(pid)).options(selectinload(Product.skus)))


@view_config(route_name="api.product", request_method="GET", renderer="json", require_csrf=False)
def get_product(request):
    product = _load_product(request)
    if (product is None or not product.visible or product.archived
            or (product.category_id is not None
                and product.category_id not in {c.id for c in _public_categories(request.db)})):
        raise APIError(404, "not_found", _("No such product."))
    return product_json(request, product)


# -- admin: categories and products ----------------------------------------------------------------


@view_config(route_name="api.admin.categories", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def admin_list_categories(request):
    cats = request.db.scalars(select(Category).order_by(Category.sort, Category.id))
    return {"items": [category_json(c, admin=True) for c in cats]}


@view_config(route_name="api.admin.categories", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def admin_create_category(request):
    data = _body(request)
    try:
        category = service.save_category(request.db, data)
    except CatalogError as exc:
        raise _invalid(request, exc) from None
    audit.record(request.db, audit.actor_of(request), "category.create", f"category:{category.id}",
                 name=category.name)
    request.response.status = 201
    return category_json(category, admin=True)


def _admin_product(request) -> Product:
    product = _load_product(request)
    if product is None:
        raise APIError(404, "not_found", _("No such product."))
    return product


@view_config(route_name="api.admin.products", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def admin_list_products(request):
    return _product_list(request, admin=True)


@view_config(route_name="api.admin.products", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def admin_create_product(request):
    data = _body(request)
    skus = _Tracked(data["skus"]) if isinstance(data.get("skus"), list) else None
    try:
        data = _product_input(data)
        if skus is not None:
            data["skus"] = skus
        product = service.save_product(request.db, data, _currency(request))
    except CatalogError as exc:
        field = exc.field
        if skus is not None and skus.at is not None and not field.startswith("skus"):
            field = f"skus[{skus.at}].{_sku_field(skus[skus.at], field)}"
        raise _invalid(request, exc, field) from None
    request.db.refresh(product, ["skus"])
    audit.record(request.db, audit.actor_of(request), "product.create", f"product:{product.id}",
                 name=product.name, type=product.type, skus=[s.code for s in product.skus])
    request.response.status = 201
    return product_json(request, product, admin=True)


@view_config(route_name="api.admin.product", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def admin_get_product(request):
    return product_json(request, _admin_product(request), admin=True)


@view_config(route_name="api.admin.product", request_method="PATCH", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def admin_update_product(request):
    product = _admin_product(request)
    data = _body(request)
    data.pop("skus", None)  # SKUs change under /api/v1/admin/skus/{code}
    try:
        service.save_product(request.db, _product_input(data), _currency(request), product)
    except CatalogError as exc:
        raise _invalid(request, exc) from None
    audit.record(request.db, audit.actor_of(request), "product.update", f"product:{product.id}",
                 fields=sorted(k for k in data if k in PRODUCT_FIELDS))
    return product_json(request, product, admin=True)


@view_config(route_name="api.admin.product", request_method="DELETE", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def admin_delete_product(request):
    product = _admin_product(request)
    pid, name = product.id, product.name
    result = service.delete_product(request.db, product)
    audit.record(request.db, audit.actor_of(request), f"product.{'delete' if result == 'deleted' else 'archive'}",
                 f"product:{pid}", name=name)
    return {"result": result}


# -- admin: SKUs and card keys -------------------------------------------------------------------


def _admin_sku(request) -> Sku:
    code = request.matchdict["code"]
    # a code no SKU can have is not looked up (PostgreSQL refuses NUL in text)
    sku = request.db.scalar(select(Sku).where(Sku.code == code)) if service.CODE.match(code) else None
    if sku is None:
        raise APIError(404, "not_found", _("No such SKU."))
    return sku


@view_config(route_name="api.admin.sku", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def admin_get_sku(request):
    return sku_json(request, _admin_sku(request), admin=True)


@view_config(route_name="api.admin.sku", request_method="PATCH", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def admin_update_sku(request):
    sku = _admin_sku(request)
    data = _body(request)
    data.pop("code", None)  # a SKU's code is its name in orders and docking: it never changes
    try:
        _keep_name(data)
        service.save_sku(request.db, data, _currency(request), sku=sku)
    except CatalogError as exc:
        raise _invalid(request, exc, _sku_field(data, exc.field)) from None
    audit.record(request.db, audit.actor_of(request), "sku.update", f"sku:{sku.code}",
                 fields=sorted(k for k in data if k in SKU_FIELDS))
    return sku_json(request, sku, admin=True)


def _separator(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_SEPARATOR or "\n" in value or "\r" in value:
        raise APIError(422, "invalid_request", _("separator must be up to ${n} characters on one line",
                                                 mapping={"n": MAX_SEPARATOR}), field="separator")
    return value


def _too_large() -> APIError:
    return APIError(413, "too_large", _("An upload may be at most ${n} MB.", mapping={"n": MAX_KEYS_BODY >> 20}))


def _key_lines(request) -> tuple[list[str] | io.StringIO, int, str | None, str]:
    """The uploaded keys as lines, their count, the separator and the source."""
    ctype = (request.content_type or "").lower()
    is_json = ctype == "application/json" or ctype.endswith("+json")
    if not is_json and ctype not in TEXT_TYPES and not ctype.startswith("text/"):
        raise APIError(415, "unsupported_media_type", _("Send the keys as text/plain or as JSON."))
    raw = request.body_file.read(MAX_KEYS_BODY + 1)
    if len(raw) > MAX_KEYS_BODY:
        raise _too_large()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise APIError(400, "invalid_request", _("The body is not UTF-8 text.")) from None
    if "\x00" in text:  # a binary file, or text sent as UTF-16: nothing of it is imported
        raise APIError(400, "invalid_request", _("The body is not text: it contains NUL bytes. Send UTF-8 text."))
    # the source is stored: PostgreSQL refuses NUL in text
    source = request.GET.get("source", "").replace("\x00", "").strip()[:255] or "api"
    if is_json:
        try:
            body = json.loads(text or "{}")
        except (ValueError, RecursionError):
            raise APIError(400, "invalid_request", _("The body is not valid JSON.")) from None
        if not isinstance(body, dict):
            raise APIError(400, "invalid_request", _("The body must be a JSON object."))
        keys = body.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise APIError(422, "invalid_request", _("keys must be a list of text"), field="keys")
        separator = _separator(body["separator"] if "separator" in body else request.GET.get("separator"))
        if isinstance(body.get("source"), str) and body["source"].replace("\x00", "").strip():
            source = body["source"].replace("\x00", "").strip()[:255]
        # one key per entry: an entry spanning lines is not a key (NUL makes the parser count it invalid)
        lines = [k if "\n" not in k and "\r" not in k else "\x00" for k in keys]
        return lines, sum(1 for k in lines if k.strip()), separator, source
    separator = _separator(request.GET.get("separator"))
    total = sum(1 for line in io.StringIO(text, newline=None) if line.strip())
    return io.StringIO(text, newline=None), total, separator, source


@view_config(route_name="api.admin.sku.keys", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def admin_import_keys(request):
    if (request.content_length or 0) > MAX_KEYS_BODY:
        raise _too_large()
    sku = _admin_sku(request)
    if sku.product.type != "card_key":
        raise APIError(409, "wrong_product_type", _("Only card-key products take keys."))
    sku_id, code, actor = sku.id, sku.code, audit.actor_of(request)
    lines, total, separator, source = _key_lines(request)
    # The import commits in its own transactions, chunk by chunk (so an admin
    # can watch its progress): end this request's transaction first, which on
    # SQLite holds the write lock they need.
    request.tm.commit()
    request.tm.begin()
    try:
        report = inventory.import_keys(lambda: Session(request.registry["kameng.write_engine"]),
                                       request.registry["kameng.keyring"], sku_id, lines, separator=separator,
                                       source=source, actor=actor, total=total)
    except OperationalError:  # whole chunks only: what was saved stays
        raise APIError(503, "import_stopped", inventory.IMPORT_STOPPED) from None
    audit.record(request.db, actor, "keys.import", f"sku:{code}", import_id=report.batch_id, lines=report.lines,
                 imported=report.imported, duplicates=report.duplicates, invalid=report.invalid)
    return {"imported": report.imported, "skipped": report.skipped, "duplicates": report.duplicates,
            "invalid": report.invalid, "invalid_lines": report.invalid_lines, "lines": report.lines,
            "import_id": report.batch_id}


@view_config(route_name="api.admin.sku.stock", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def admin_sku_stock(request):
    sku = _admin_sku(request)
    return {**inventory.counts(request.db, sku.id), "stock": sku.stock}


@view_config(route_name="api.admin.sku.imports", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def admin_sku_imports(request):
    sku = _admin_sku(request)
    rows = request.db.scalars(select(KeyImport).where(KeyImport.sku_id == sku.id)
                              .order_by(KeyImport.id.desc()).limit(100))
    return {"items": [{"id": r.id, "source": r.source, "created_by": r.created_by, "total": r.total,
                       "lines": r.lines, "imported": r.imported, "duplicates": r.duplicates, "invalid": r.invalid,
                       "created_at": r.created_at.isoformat() if r.created_at else None} for r in rows]}
