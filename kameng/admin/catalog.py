"""Admin pages for the catalog and card-key stock.

Categories (a tree), products with their SKUs, and for each card-key SKU its
keys: counts, a masked and paged list, reveal and void one key, import from
pasted text or an uploaded file (with a preview that writes nothing), the
recent import runs and an export of the available keys.

The rules live in :mod:`kameng.catalog.service` and
:mod:`kameng.inventory.service`; these views turn form posts into their
inputs and their :class:`CatalogError` into a form shown again with the
field's message (status 400, the transaction doomed so nothing half-saved
is committed). Every page works without JavaScript; ``admin-import.js`` only
shows an import's progress while its POST is in flight.
"""
from __future__ import annotations

import csv
import logging
import io
import json
import math
import re

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.renderers import get_renderer
from pyramid.response import Response
from pyramid.view import view_config, view_defaults
from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.attributes import set_committed_value

from kameng import audit, money
from kameng.admin.views import flash
from kameng.catalog import service as catalog
from kameng.catalog.models import PRODUCT_TYPES, Category, Product, Sku, SkuPrice
from kameng.catalog.service import CatalogError
from kameng.i18n import _
from kameng.inventory import service as inventory
from kameng.inventory.models import AVAILABLE, STATES, CardKey, KeyImport
from kameng.theming import tpl

PAGE_SIZE = 50
MAX_UPLOAD = 20 * 1024 * 1024  # bytes of an uploaded key file (and characters of pasted keys)
UPLOAD_SUFFIXES = (".txt", ".csv")
RECENT_IMPORTS = 20
PREVIEW_SAMPLE = 10  # masked lines shown by a preview

TYPE_LABELS = {"card_key": _("Card key"), "direct_recharge": _("Direct recharge"), "manual": _("Manual")}
STATE_LABELS = {"available": _("Available"), "reserved": _("Reserved"), "sold": _("Sold"), "void": _("Voided")}
# form value -> (separator given to the inventory service, label)
SEPARATORS = {
    "none": (None, _("None: one secret per line")),
    "comma": (",", _("Comma: number,secret")),
    "space": (" ", _("Space or tab: number secret")),
    "pipe": ("|", _("Bar: number|secret")),
    "dashes": ("----", _("Four dashes: number----secret")),
}

CATEGORY_FIELDS = ("name", "parent_id", "icon", "sort", "visible")
PRODUCT_FIELDS = ("name", "type", "category_id", "description", "instructions", "images", "tags",
                  "recharge_fields", "hot", "recommended", "visible", "archived", "sort")
PRODUCT_FLAGS = ("hot", "recommended", "visible", "archived")
SKU_FIELDS = ("code", "name", "price", "cost_price", "min_quantity", "max_quantity", "stock",
              "low_stock_threshold", "sort", "visible", "attributes", "level_prices", "tier_prices")
# the first SKU's fields on the new-product form (named sku_<field> there)
FIRST_SKU_FIELDS = ("code", "name", "price", "cost_price", "min_quantity", "max_quantity", "stock")

RECHARGE_EXAMPLE = ('[{"name": "phone", "label": "手机号", "kind": "mobile_cn"}, '
                    '{"name": "server", "label": "区服", "kind": "choice", "choices": ["电信一区", "网通一区"]}]')

log = logging.getLogger(__name__)


# -- helpers ---------------------------------------------------------------------------


def _int_param(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _matched_id(request, name="id") -> int:
    value = _int_param(request.matchdict.get(name))
    if value is None or value < 1:
        raise HTTPNotFound()
    return value


def category_tree(db, exclude: int | None = None) -> list[tuple[Category, int]]:
    """Every category with its depth, parents before children, siblings by
    sort order; ``exclude`` leaves out a category and everything under it
    (the parents a category may not move to)."""
    cats = db.scalars(select(Category).order_by(Category.sort, Category.id)).all()
    ids = {c.id for c in cats}
    children: dict[int | None, list[Category]] = {}
    for c in cats:
        children.setdefault(c.parent_id if c.parent_id in ids else None, []).append(c)
    out: list[tuple[Category, int]] = []
    seen: set[int] = set()

    def walk(parent, depth):
        for c in children.get(parent, ()):
            if c.id in seen or c.id == exclude:
                continue
            seen.add(c.id)
            out.append((c, depth))
            walk(c.id, depth + 1)

    walk(None, 0)
    for c in cats:  # a loop written behind the service's back still shows up
        if c.id not in seen and c.id != exclude and exclude is None:
            seen.add(c.id)
            out.append((c, 0))
            walk(c.id, 1)
    return out


def _category_form():
    return get_renderer(tpl("admin/catalog/category_fields.pt")).implementation()


def _require(data: dict, *names) -> None:
    """The service requires a name only when creating: an edit that blanks
    it would save an empty name."""
    for name in names:
        if not str(data.get(name, "")).strip():
            raise CatalogError(name, _("is required"))


def _checkbox(post, name) -> str:
    return "1" if post.get(name) else "0"


def _pairs(text: str, field: str) -> dict:
    """``name=value`` lines (blank lines skipped) as a dict."""
    out = {}
    for no, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise CatalogError(field, _("line ${no}: write name=value", mapping={"no": no}))
        if name in out:
            raise CatalogError(field, _("line ${no}: ${name} is given twice", mapping={"no": no, "name": name}))
        out[name] = value
    return out


def _pairs_text(mapping: dict) -> str:
    return "\n".join(f"{k}={v}" for k, v in mapping.items())


def _raised_in(exc: BaseException, function) -> bool:
    """Whether ``exc`` was raised inside ``function`` (the service raises the
    same field names for a product and for its SKU: ``name``, ``sort``)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is function.__code__:
            return True
        tb = tb.tb_next
    return False


class FormErrors(dict):
    """Field name -> message; ``other`` holds an error about a field the form
    does not show, as ``(field, message)``."""

    other = None

    def put(self, exc: CatalogError, known, prefix=""):
        if exc.field in known:
            self[prefix + exc.field] = exc.message
        else:
            self.other = (exc.field, exc.message)


def _pager(request, route, total, page, **kw):
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(page, 1), pages)
    query = {k: v for k, v in kw.pop("_query", {}).items() if v not in (None, "")}

    def url(n):
        return request.route_url(route, _query={**query, "page": n}, **kw)

    return {"page": page, "pages": pages, "total": total,
            "prev": url(page - 1) if page > 1 else None, "next": url(page + 1) if page < pages else None}


# -- views -----------------------------------------------------------------------------


@view_defaults(permission="admin")
class CatalogViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db

    @property
    def currency(self) -> str:
        return self.request.shop["currency"]

    def fmt(self, minor):
        return money.format_minor(minor, self.currency) if minor is not None else ""

    def failed(self):
        """A save raised: the page is shown again (400) and nothing is committed."""
        self.request.response.status = 400
        self.request.tm.doom()

    def actor(self) -> str:
        return audit.actor_of(self.request)

    # -- categories ----------------------------------------------------------------------

    def _category_or_404(self) -> Category:
        category = self.db.get(Category, _matched_id(self.request))
        if category is None:
            raise HTTPNotFound()
        return category

    def _category_data(self) -> dict:
        post = self.request.POST
        data = {name: post.get(name, "") for name in ("name", "parent_id", "icon", "sort")}
        data["visible"] = _checkbox(post, "visible")
        return data

    @view_config(route_name="admin.categories", renderer=tpl("admin/catalog/categories.pt"))
    def categories(self):
        request, db = self.request, self.db
        errors = FormErrors()
        values = {"name": "", "parent_id": request.params.get("parent", ""), "icon": "", "sort": "0", "visible": "1"}
        if request.method == "POST":
            values = self._category_data()
            try:
                category = catalog.save_category(db, dict(values))
            except CatalogError as exc:
                errors.put(exc, CATEGORY_FIELDS)
                self.failed()
            else:
                audit.record(db, self.actor(), "category.create", str(category.id), name=category.name)
                flash(request, _("Category ${name} created.", mapping={"name": category.name}))
                return HTTPFound(request.route_url("admin.categories"))
        tree = category_tree(db)
        product_counts = dict(db.execute(select(Product.category_id, func.count()).group_by(Product.category_id)).all())
        return {"tree": tree, "product_counts": product_counts, "values": values, "errors": errors,
                "parents": tree, "category_form": _category_form()}

    @view_config(route_name="admin.category", renderer=tpl("admin/catalog/category.pt"))
    def category(self):
        request, db = self.request, self.db
        category = self._category_or_404()
        errors = FormErrors()
        values = {"name": category.name, "parent_id": str(category.parent_id or ""), "icon": category.icon or "",
                  "sort": str(category.sort or 0), "visible": "1" if category.visible else "0"}
        if request.method == "POST":
            values = self._category_data()
            try:
                _require(values, "name")
                catalog.save_category(db, dict(values), category)
            except CatalogError as exc:
                errors.put(exc, CATEGORY_FIELDS)
                self.failed()
            else:
                audit.record(db, self.actor(), "category.update", str(category.id), name=category.name)
                flash(request, _("Category ${name} saved.", mapping={"name": category.name}))
                return HTTPFound(request.route_url("admin.categories"))
        products = db.scalar(select(func.count()).select_from(Product).where(Product.category_id == category.id))
        children = db.scalar(select(func.count()).select_from(Category).where(Category.parent_id == category.id))
        return {"category": category, "values": values, "errors": errors, "products": products or 0,
                "children": children or 0, "parents": category_tree(db, exclude=category.id),
                "category_form": _category_form()}

    @view_config(route_name="admin.category.delete")
    def delete_category(self):
        request, db = self.request, self.db
        category = self._category_or_404()
        products = db.scalar(select(func.count()).select_from(Product).where(Product.category_id == category.id))
        children = db.scalar(select(func.count()).select_from(Category).where(Category.parent_id == category.id))
        if products or children:
            flash(request, _("${name} was not deleted: it still has ${products} products and ${children} "
                             "subcategories. Move or delete them first.",
                             mapping={"name": category.name, "products": products, "children": children}), "error")
            return HTTPFound(request.route_url("admin.category", id=category.id))
        name = category.name
        db.delete(category)
        db.flush()
        audit.record(db, self.actor(), "category.delete", str(category.id), name=name)
        flash(request, _("Category ${name} deleted.", mapping={"name": name}))
        return HTTPFound(request.route_url("admin.categories"))

    # -- products ------------------------------------------------------------------------

    def _product_or_404(self) -> Product:
        product = self.db.get(Product, _matched_id(self.request))
        if product is None:
            raise HTTPNotFound()
        return product

    @view_config(route_name="admin.products", renderer=tpl("admin/catalog/products.pt"))
    def products(self):
        request, db = self.request, self.db
        params = request.GET
        category = _int_param(params.get("category"))
        filters = {"category": category if category and 0 < category < 2 ** 31 else None,
                   "type": params.get("type", ""),
                   "q": params.get("q", "").replace("\x00", "").strip()[:100]}  # PostgreSQL refuses NUL
        if filters["type"] not in PRODUCT_TYPES:
            filters["type"] = ""
        stmt = select(Product)
        if filters["category"]:
            stmt = stmt.where(Product.category_id == filters["category"])
        if filters["type"]:
            stmt = stmt.where(Product.type == filters["type"])
        if filters["q"]:
            q = filters["q"]
            stmt = stmt.where(or_(Product.name.icontains(q, autoescape=True),
                                  Product.id.in_(select(Sku.product_id).where(Sku.code.icontains(q, autoescape=True)))))
        total = db.scalar(select(func.count()).select_from(stmt.subquery()))
        pager = _pager(request, "admin.products", total, _int_param(params.get("page"), 1), _query=filters)
        rows = db.scalars(stmt.order_by(Product.sort, Product.id).offset((pager["page"] - 1) * PAGE_SIZE)
                          .limit(PAGE_SIZE)).all()
        stats = {}
        if rows:
            stats = {pid: (n, stock or 0, unlimited) for pid, n, stock, unlimited in db.execute(
                select(Sku.product_id, func.count(Sku.id), func.sum(Sku.stock),
                       func.sum(case((Sku.stock.is_(None), 1), else_=0)))
                .where(Sku.product_id.in_([p.id for p in rows])).group_by(Sku.product_id)).all()}
        tree = category_tree(db)
        return {"rows": rows, "stats": stats, "filters": filters, "pager": pager, "tree": tree,
                "category_names": {c.id: c.name for c, _depth in tree}, "type_labels": TYPE_LABELS}

    def _product_values(self, product: Product | None) -> dict:
        if product is None:
            values = {"name": "", "type": "card_key", "category_id": self.request.params.get("category", ""),
                      "description": "", "instructions": "", "images": "", "tags": "", "recharge_fields": "",
                      "hot": "0", "recommended": "0", "visible": "1", "archived": "0", "sort": "0"}
            values.update({f"sku_{name}": "" for name in FIRST_SKU_FIELDS})
            values.update({"sku_min_quantity": "1", "sku_max_quantity": "100"})
            return values
        fields = json.loads(product.recharge_fields or "[]")
        return {"name": product.name, "type": product.type, "category_id": str(product.category_id or ""),
                "description": product.description or "", "instructions": product.instructions or "",
                "images": "\n".join(json.loads(product.images or "[]")), "tags": product.tags or "",
                "recharge_fields": json.dumps(fields, ensure_ascii=False, indent=2) if fields else "",
                **{flag: "1" if getattr(product, flag) else "0" for flag in PRODUCT_FLAGS},
                "sort": str(product.sort or 0)}

    def _product_data(self, new: bool) -> dict:
        post = self.request.POST
        data = {name: post.get(name, "") for name in ("name", "type", "category_id", "description",
                                                        "instructions", "images", "tags", "sort")}
        data["recharge_fields"] = post.get("recharge_fields", "").strip() or "[]"
        for flag in PRODUCT_FLAGS:
            if flag != "archived" or not new:
                data[flag] = _checkbox(post, flag)
        return data

    def _product_page(self, product, values, errors):
        return {"product": product, "values": values, "errors": errors, "tree": category_tree(self.db),
                "types": PRODUCT_TYPES, "type_labels": TYPE_LABELS, "recharge_example": RECHARGE_EXAMPLE,
                "skus": list(product.skus) if product is not None else [], "fmt": self.fmt,
                "key_counts": self._key_counts(product) if product is not None else {}}

    def _key_counts(self, product) -> dict:
        """Available keys per SKU of a card-key product (what the stock counter should say)."""
        if product.type != "card_key":
            return {}
        return dict(self.db.execute(select(CardKey.sku_id, func.count()).join(Sku).where(
            Sku.product_id == product.id, CardKey.state == AVAILABLE).group_by(CardKey.sku_id)).all())

    @view_config(route_name="admin.product.new", renderer=tpl("admin/catalog/product.pt"))
    def new_product(self):
        request, db = self.request, self.db
        values, errors = self._product_values(None), FormErrors()
        if request.method == "POST":
            data = self._product_data(new=True)
            post = request.POST
            sku = {name: post.get(f"sku_{name}", "") for name in FIRST_SKU_FIELDS if name != "stock"}
            if data["type"] != "card_key":
                sku["stock"] = post.get("sku_stock", "").strip()
            data["skus"] = [sku]
            values = {**data, **{f"sku_{k}": v for k, v in sku.items()}, "sku_stock": post.get("sku_stock", ""),
                      "recharge_fields": post.get("recharge_fields", "")}
            try:
                product = catalog.save_product(db, data, self.currency)
            except CatalogError as exc:
                if _raised_in(exc, catalog.save_sku) or exc.field.startswith("skus"):
                    errors.put(exc, FIRST_SKU_FIELDS, prefix="sku_")
                else:
                    errors.put(exc, PRODUCT_FIELDS)
                self.failed()
            else:
                audit.record(db, self.actor(), "product.create", str(product.id), name=product.name,
                             sku=sku["code"])
                flash(request, _("Product ${name} created.", mapping={"name": product.name}))
                return HTTPFound(request.route_url("admin.product", id=product.id))
        return self._product_page(None, values, errors)

    @view_config(route_name="admin.product", renderer=tpl("admin/catalog/product.pt"))
    def product(self):
        request, db = self.request, self.db
        product = self._product_or_404()
        values, errors = self._product_values(product), FormErrors()
        if request.method == "POST":
            data = self._product_data(new=False)
            values = {**data, "recharge_fields": request.POST.get("recharge_fields", "")}
            try:
                _require(data, "name")
                catalog.save_product(db, data, self.currency, product)
            except CatalogError as exc:
                errors.put(exc, PRODUCT_FIELDS)
                self.failed()
            else:
                audit.record(db, self.actor(), "product.update", str(product.id), name=product.name)
                flash(request, _("Product ${name} saved.", mapping={"name": product.name}))
                return HTTPFound(request.route_url("admin.product", id=product.id))
        return self._product_page(product, values, errors)

    @view_config(route_name="admin.product.delete")
    def delete_product(self):
        request, db = self.request, self.db
        product = self._product_or_404()
        name, pid = product.name, product.id
        # Product.skus has no delete cascade: were the collection loaded, the
        # ORM would answer a db.delete(product) by setting each SKU's
        # product_id to NULL (NOT NULL, so an IntegrityError). Seen as empty,
        # the SKUs are left to delete_product and the database's cascades.
        set_committed_value(product, "skus", [])
        outcome = catalog.delete_product(db, product)
        audit.record(db, self.actor(), f"product.{outcome}", str(pid), name=name)
        if outcome == "archived":
            flash(request, _("${name} was archived, not deleted: keys were sold or reserved from it and their "
                             "history stays. It is hidden from the shop.", mapping={"name": name}))
            return HTTPFound(request.route_url("admin.product", id=pid))
        flash(request, _("Product ${name} deleted.", mapping={"name": name}))
        return HTTPFound(request.route_url("admin.products"))

    # -- SKUs ----------------------------------------------------------------------------

    def _sku_or_404(self) -> Sku:
        code = self.request.matchdict["code"]
        # a code no SKU can have is not looked up (PostgreSQL refuses NUL in text)
        sku = self.db.scalar(select(Sku).where(Sku.code == code)) if catalog.CODE.match(code) else None
        if sku is None:
            raise HTTPNotFound()
        return sku

    def _sku_values(self, sku: Sku | None) -> dict:
        if sku is None:
            return {"code": "", "name": "", "price": "", "cost_price": "", "min_quantity": "1",
                    "max_quantity": "100", "stock": "", "low_stock_threshold": "0", "sort": "0", "visible": "1",
                    "attributes": "", "level_prices": "", "tier_prices": ""}
        special = {"level": {}, "tier": {}}
        for row in self.db.scalars(select(SkuPrice).where(SkuPrice.sku_id == sku.id).order_by(SkuPrice.ref)):
            special.setdefault(row.kind, {})[row.ref] = self.fmt(row.price)
        return {"code": sku.code, "name": sku.name, "price": self.fmt(sku.price),
                "cost_price": self.fmt(sku.cost_price or 0), "min_quantity": str(sku.min_quantity),
                "max_quantity": str(sku.max_quantity), "stock": "" if sku.stock is None else str(sku.stock),
                "low_stock_threshold": str(sku.low_stock_threshold or 0), "sort": str(sku.sort or 0),
                "visible": "1" if sku.visible else "0",
                "attributes": _pairs_text(json.loads(sku.attributes or "{}")),
                "level_prices": _pairs_text(special["level"]), "tier_prices": _pairs_text(special["tier"])}

    def _special_prices(self, text: str, field: str) -> dict:
        """``code=price`` lines, each price checked here so the error names
        this field (and a price of zero, which would give goods away, is refused)."""
        prices = _pairs(text, field)
        for code, value in prices.items():
            try:
                minor = money.parse_minor(value, self.currency)
            except money.MoneyError:
                raise CatalogError(field, _("the price for ${code} must be a decimal like \"12.50\"",
                                            mapping={"code": code})) from None
            if minor <= 0:
                raise CatalogError(field, _("the price for ${code} must be more than zero", mapping={"code": code}))
        return prices

    def _save_sku(self, product: Product, sku: Sku | None) -> Sku:
        post = self.request.POST
        data = {name: post.get(name, "") for name in ("name", "price", "cost_price", "min_quantity",
                                                        "max_quantity", "low_stock_threshold", "sort")}
        if sku is None:
            data["code"] = post.get("code", "")
        else:
            _require(data, "name", "price")
        data["visible"] = _checkbox(post, "visible")
        if product.type != "card_key":
            data["stock"] = post.get("stock", "").strip()
        data["attributes"] = _pairs(post.get("attributes", ""), "attributes")
        prices = {kind: self._special_prices(post.get(f"{kind}_prices", ""), f"{kind}_prices")
                  for kind in ("level", "tier")}
        saved = catalog.save_sku(self.db, data, self.currency, sku=sku, product=product)
        for kind, values in prices.items():
            try:
                catalog.set_special_prices(self.db, saved, kind, values, self.currency)
            except CatalogError as exc:
                raise CatalogError(f"{kind}_prices", exc.message) from None
        return saved

    def _sku_page(self, product, sku, values, errors):
        return {"product": product, "sku": sku, "values": values, "errors": errors,
                "type_labels": TYPE_LABELS,
                "counts": inventory.counts(self.db, sku.id) if sku is not None and product.type == "card_key"
                else None}

    @view_config(route_name="admin.sku.new", renderer=tpl("admin/catalog/sku.pt"))
    def new_sku(self):
        request = self.request
        product = self._product_or_404()
        values, errors = self._sku_values(None), FormErrors()
        if request.method == "POST":
            values = {name: request.POST.get(name, "") for name in SKU_FIELDS}
            values["visible"] = _checkbox(request.POST, "visible")
            try:
                sku = self._save_sku(product, None)
            except CatalogError as exc:
                errors.put(exc, SKU_FIELDS)
                self.failed()
            else:
                audit.record(self.db, self.actor(), "sku.create", sku.code, product=product.id)
                flash(request, _("SKU ${code} created.", mapping={"code": sku.code}))
                return HTTPFound(request.route_url("admin.product", id=product.id))
        return self._sku_page(product, None, values, errors)

    @view_config(route_name="admin.sku", renderer=tpl("admin/catalog/sku.pt"))
    def sku(self):
        request = self.request
        sku = self._sku_or_404()
        product = sku.product
        values, errors = self._sku_values(sku), FormErrors()
        if request.method == "POST":
            values = {name: request.POST.get(name, "") for name in SKU_FIELDS}
            values["code"] = sku.code
            values["visible"] = _checkbox(request.POST, "visible")
            try:
                self._save_sku(product, sku)
            except CatalogError as exc:
                errors.put(exc, SKU_FIELDS)
                self.failed()
            else:
                audit.record(self.db, self.actor(), "sku.update", sku.code, product=product.id)
                flash(request, _("SKU ${code} saved.", mapping={"code": sku.code}))
                return HTTPFound(request.route_url("admin.sku", code=sku.code))
        return self._sku_page(product, sku, values, errors)

    # -- card-key stock ------------------------------------------------------------------

    def _card_sku_or_404(self) -> Sku:
        sku = self._sku_or_404()
        if sku.product.type != "card_key":
            raise HTTPNotFound()
        return sku

    def _stock_page(self, sku: Sku, **extra):
        request, db = self.request, self.db
        state = request.GET.get("state", "")
        if state not in STATES:
            state = ""
        stmt = select(CardKey).where(CardKey.sku_id == sku.id)
        if state:
            stmt = stmt.where(CardKey.state == state)
        counts = inventory.counts(db, sku.id)
        total = counts[state] if state else sum(counts.values())
        pager = _pager(request, "admin.stock", total, _int_param(request.GET.get("page"), 1), code=sku.code,
                       _query={"state": state})
        keys = db.scalars(stmt.order_by(CardKey.id.desc()).offset((pager["page"] - 1) * PAGE_SIZE)
                          .limit(PAGE_SIZE)).all()
        imports = db.scalars(select(KeyImport).where(KeyImport.sku_id == sku.id).order_by(KeyImport.id.desc())
                             .limit(RECENT_IMPORTS)).all()
        page = {"sku": sku, "product": sku.product, "counts": counts, "state": state, "keys": keys,
                "pager": pager, "imports": imports, "state_labels": STATE_LABELS, "separators": SEPARATORS,
                "last_import_id": max((i.id for i in imports), default=0),
                "form": {"keys": "", "separator": "none"}, "preview": None, "report": None, "import_error": None}
        page.update(extra)
        return page

    @view_config(route_name="admin.stock", renderer=tpl("admin/catalog/stock.pt"))
    def stock(self):
        return self._stock_page(self._card_sku_or_404())

    def _uploaded_text(self):
        """``(text, source)`` from the uploaded file or else the textarea;
        raises :class:`CatalogError` (field ``keys``) when it cannot be read."""
        post = self.request.POST
        upload = post.get("file")
        if getattr(upload, "filename", None):
            filename = re.split(r"[\\/]", upload.filename)[-1].replace("\x00", "")  # stored: no NUL for PostgreSQL
            if not filename.lower().endswith(UPLOAD_SUFFIXES):
                raise CatalogError("file", _("Choose a .txt or .csv file."))
            raw = upload.file.read(MAX_UPLOAD + 1)
            if len(raw) > MAX_UPLOAD:
                raise CatalogError("file", _("The file is larger than 20 MB. Split it and import the parts."))
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise CatalogError("file", _("The file is not UTF-8 text. Save it as UTF-8 (in Excel: CSV UTF-8) "
                                             "and try again.")) from None
            if "\x00" in text:  # a binary file, or text saved as UTF-16: nothing of it is imported
                raise CatalogError("file", _("The file is not text: it contains NUL bytes. Save it as UTF-8 text "
                                             "and try again."))
            return text, filename[:255]
        text = post.get("keys", "")
        if len(text) > MAX_UPLOAD:
            raise CatalogError("keys", _("The pasted text is larger than 20 MB. Upload a file instead."))
        return text, "pasted"

    @view_config(route_name="admin.stock.import", renderer=tpl("admin/catalog/stock.pt"))
    def import_keys(self):
        request = self.request
        sku = self._card_sku_or_404()
        post = request.POST
        sep_name = post.get("separator", "none")
        form = {"keys": post.get("keys", "") if not getattr(post.get("file"), "filename", None) else "",
                "separator": sep_name if sep_name in SEPARATORS else "none"}
        try:
            if sep_name not in SEPARATORS:
                raise CatalogError("separator", _("Choose a separator from the list."))
            text, source = self._uploaded_text()
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            total = sum(1 for line in lines if line.strip())
            if not total:
                raise CatalogError("keys", _("Paste some keys or choose a file."))
        except CatalogError as exc:
            request.response.status = 400
            return self._stock_page(sku, form=form, import_error=exc.message)
        separator = SEPARATORS[sep_name][0]
        keyring = request.registry["kameng.keyring"]
        if post.get("action") != "import":
            result = inventory.preview(keyring, self.db, sku.id, lines, separator, limit=PREVIEW_SAMPLE)
            return self._stock_page(sku, form=form, preview={**result, "source": source})
        # import_keys commits each chunk in its own transaction (so the progress
        # shows, and a big file never sits in one): end the request's
        # transaction first, which on SQLite holds the write lock it needs.
        actor, sku_id = self.actor(), sku.id
        request.tm.commit()
        try:
            factory = request.registry["kameng.session_factory"]
            engine = request.registry["kameng.write_engine"]
            report = inventory.import_keys(lambda: factory(bind=engine), keyring, sku_id, lines, separator,
                                           source=source, actor=actor, total=total)
        except OperationalError:  # whole chunks only: what was saved stays, nothing half-written
            log.warning("keys_import_stopped", extra={"sku": sku_id})
            report = None
        finally:
            request.tm.begin()
        self.db = request.db
        sku = self.db.get(Sku, sku_id)
        if report is None:
            request.response.status = 503
            return self._stock_page(sku, form=form, import_error=inventory.IMPORT_STOPPED)
        audit.record(self.db, actor, "keys.import", sku.code, batch=report.batch_id, source=source,
                     lines=report.lines, imported=report.imported, duplicates=report.duplicates,
                     invalid=report.invalid)
        form["keys"] = ""
        return self._stock_page(sku, form=form, report=report)

    @view_config(route_name="admin.stock.export")
    def export_keys(self):
        request, db = self.request, self.db
        sku = self._card_sku_or_404()
        keyring = request.registry["kameng.keyring"]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(["number", "secret"])
        count = 0
        stmt = (select(CardKey).where(CardKey.sku_id == sku.id, CardKey.state == AVAILABLE).order_by(CardKey.id)
                .execution_options(yield_per=1000))
        for key in db.scalars(stmt):
            number, secret = inventory.reveal(keyring, key)
            writer.writerow([number or "", secret])
            count += 1
        audit.record(db, self.actor(), "keys.export", sku.code, count=count)
        resp = Response(body=buf.getvalue().encode("utf-8"), content_type="text/csv", charset="utf-8")
        resp.headers["Content-Disposition"] = f'attachment; filename="{sku.code}-available-keys.csv"'
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def _key_or_404(self) -> CardKey:
        key = self.db.get(CardKey, _matched_id(self.request))
        if key is None:
            raise HTTPNotFound()
        return key

    @view_config(route_name="admin.key.reveal", renderer=tpl("admin/catalog/key.pt"))
    def reveal_key(self):
        request, db = self.request, self.db
        key = self._key_or_404()
        sku = db.get(Sku, key.sku_id)
        number, secret = inventory.reveal(request.registry["kameng.keyring"], key)
        audit.record(db, self.actor(), "key.reveal", str(key.id), sku=sku.code)
        request.response.headers["Cache-Control"] = "no-store"
        return {"key": key, "sku": sku, "product": sku.product, "number": number, "secret": secret,
                "state_labels": STATE_LABELS,
                "back": request.route_url("admin.stock", code=sku.code, _query=self._back_query())}

    def _back_query(self) -> dict:
        post = self.request.POST
        query = {}
        if post.get("state") in STATES:
            query["state"] = post["state"]
        page = _int_param(post.get("page"))
        if page and page > 1:
            query["page"] = page
        return query

    @view_config(route_name="admin.key.void")
    def void_key(self):
        request, db = self.request, self.db
        key = self._key_or_404()
        sku = db.get(Sku, key.sku_id)
        if inventory.void(db, key.id):
            audit.record(db, self.actor(), "key.void", str(key.id), sku=sku.code)
            flash(request, _("Key #${id} is void: it will not be sold.", mapping={"id": key.id}))
        else:
            flash(request, _("Key #${id} was not voided: only an available key can be.", mapping={"id": key.id}),
                  "error")
        return HTTPFound(request.route_url("admin.stock", code=sku.code, _query=self._back_query()))
