"""The admin pages under ``/-/coupons/``: coupons (list, create, edit,
disable, batch generation, CSV export), promotions and sale prices.

Every form posts with the session's CSRF token (checked by the core); a
refused input is shown on the form with the field at fault, and nothing is
written (the transaction is doomed). While the plugin is disabled the core
answers 404 here by itself.
"""
from __future__ import annotations

import datetime as dt
import json
import re

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.renderers import get_renderer
from pyramid.response import Response
from pyramid.view import view_config, view_defaults
from sqlalchemy import func, select

from kameng import audit, money
from kameng.catalog.models import Category, Product, Sku
from kameng.i18n import _

from kameng_coupons import PLUGIN_ID, service
from kameng_coupons.models import FIXED, RELEASED, USED, Coupon, Promotion, Redemption, Sale, SaleUse
from kameng_coupons.pricing import ids, sale_left, tier_text, tiers_of

PAGE_SIZE = 50
TIER_ROWS = 5
MAX_QUERY = 64
USE_LABELS = {USED: _("Used"), RELEASED: _("Given back")}
TEMPLATES = "kameng_coupons:templates/"


def _clean(value) -> str:
    return value.replace("\x00", "") if isinstance(value, str) else ""


def _local(value: dt.datetime | None) -> str:
    """A time for a ``datetime-local`` input (UTC, to the minute)."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M") if value is not None else ""


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M") if value is not None else ""


def _pager(request, route: str, total: int, page: int, query: dict) -> dict:
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)

    def url(n):
        return request.route_url(route, _query={**query, "page": n})

    return {"page": page, "pages": pages, "total": total,
            "prev": url(page - 1) if page > 1 else None, "next": url(page + 1) if page < pages else None}


def _page_number(request) -> int:
    raw = request.GET.get("page", "1")
    return int(raw) if re.fullmatch(r"[0-9]{1,6}", raw or "") else 1


def _scope_from_form(post, data: dict) -> None:
    scope = post.get("scope", "all")
    data["scope"] = scope
    if scope == "categories":
        data["categories"] = post.getall("categories")
    elif scope == "products":
        data["products"] = post.getall("products")
    elif scope == "skus":
        data["skus"] = [c for c in re.split(r"[\s,，]+", _clean(post.get("skus", ""))) if c]


COUPON_FIELDS = ("code", "kind", "value", "max_discount", "min_amount", "max_uses", "per_buyer", "starts_at",
                 "ends_at", "note")


def coupon_form_data(post) -> dict:
    data = {name: _clean(post.get(name, "")) for name in COUPON_FIELDS}
    data["active"] = post.get("active") == "1"
    _scope_from_form(post, data)
    return data


def _form_values(post) -> dict:
    """What the form shows again after a refusal: the posted text."""
    values = {k: _clean(v) for k, v in post.items() if k != "csrf_token"}
    values["categories"] = [_clean(v) for v in post.getall("categories")]
    values["products"] = [_clean(v) for v in post.getall("products")]
    values["active"] = "1" if post.get("active") == "1" else ""
    return values


def _coupon_values(db, coupon: Coupon, currency: str) -> dict:
    """A stored coupon as the form shows it."""
    targets = ids(coupon.targets)
    skus = service.target_codes(db, coupon) if coupon.scope == "skus" else []
    return {"code": coupon.code, "kind": coupon.kind,
            "value": service.value_text(coupon.kind, coupon.value, currency),
            "max_discount": money.format_minor(coupon.max_discount, currency) if coupon.max_discount is not None
            else "", "min_amount": money.format_minor(coupon.min_amount, currency) if coupon.min_amount else "",
            "max_uses": str(coupon.max_uses or ""), "per_buyer": str(coupon.per_buyer or ""),
            "starts_at": _local(coupon.starts_at), "ends_at": _local(coupon.ends_at), "note": coupon.note,
            "active": "1" if coupon.active else "", "scope": coupon.scope,
            "categories": [str(t) for t in targets] if coupon.scope == "categories" else [],
            "products": [str(t) for t in targets] if coupon.scope == "products" else [],
            "skus": " ".join(skus)}


NEW_COUPON = {"kind": FIXED, "active": "1", "scope": "all", "categories": [], "products": [], "skus": ""}


@view_defaults(permission="admin")
class AdminViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db
        self.currency = request.shop["currency"]

    def tr(self, message) -> str:
        return self.request.localizer.translate(message)

    def flash(self, message, queue="info"):
        self.request.session.flash(self.tr(message), queue)

    def refuse(self, exc: service.InputError) -> dict:
        """The transaction is doomed; the error is shown at its field."""
        self.request.tm.doom()
        self.request.response.status = exc.status
        field = exc.field.split("[", 1)[0] or "other"
        return {field: self.tr(exc.message)}

    def choices(self) -> dict:
        db = self.db
        return {
            "categories": db.execute(select(Category.id, Category.name).order_by(Category.sort, Category.id)).all(),
            "products": db.execute(select(Product.id, Product.name).where(Product.archived.is_(False))
                                   .order_by(Product.sort, Product.id).limit(1000)).all(),
        }

    def common(self, **values) -> dict:
        fields = get_renderer(TEMPLATES + "fields.pt").implementation()
        return {"fields": fields, "currency": self.currency, "when": _when, "tr": self.tr,
                "kind_labels": service.KIND_LABELS, "scope_labels": service.SCOPE_LABELS,
                "status_labels": service.STATUS_LABELS, "window_required": False, "no_skus": False,
                **self.choices(), **values}

    def actor(self) -> str:
        return audit.actor_of(self.request)

    # -- coupons -----------------------------------------------------------------------------------

    @view_config(route_name="coupons.list", request_method="GET", renderer=TEMPLATES + "coupons.pt")
    def coupons(self):
        request, db = self.request, self.db
        q = _clean(request.GET.get("q", "")).strip()[:MAX_QUERY]
        status = request.GET.get("status", "")
        status = status if status in service.STATUSES else ""
        batch = _clean(request.GET.get("batch", "")).strip()[:64]
        query = {k: v for k, v in (("q", q), ("status", status), ("batch", batch)) if v}
        stmt = service.coupon_query(q, status, batch)
        total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        pg = _pager(request, "coupons.list", total, _page_number(request), query)
        rows = db.scalars(stmt.order_by(Coupon.id.desc()).offset((pg["page"] - 1) * PAGE_SIZE)
                          .limit(PAGE_SIZE)).all()
        return self.common(rows=rows, q=q, status=status, batch=batch, pager=pg, statuses=service.STATUSES,
                           status_of=service.status_of, value_text=service.value_text,
                           fmt=lambda m: money.format_minor(m, self.currency), batches=service.batches(db),
                           export_url=request.route_url("coupons.export", _query=query))

    @view_config(route_name="coupons.new", request_method="GET", renderer=TEMPLATES + "coupon.pt")
    def new_coupon(self):
        return self.common(coupon=None, values=dict(NEW_COUPON), errors={}, redemptions=[])

    @view_config(route_name="coupons.new", request_method="POST", renderer=TEMPLATES + "coupon.pt")
    def create_coupon(self):
        post = self.request.POST
        try:
            values = service.coupon_values(self.db, coupon_form_data(post), self.currency, naive_utc=True)
            coupon = service.create_coupon(self.db, values)
        except service.InputError as exc:
            return self.common(coupon=None, values=_form_values(post), errors=self.refuse(exc), redemptions=[])
        audit.record(self.db, self.actor(), "coupons.create", f"coupon:{coupon.id}", code=coupon.code)
        self.flash(_("Coupon ${code} created.", mapping={"code": coupon.code}))
        return HTTPFound(self.request.route_url("coupons.edit", id=coupon.id))

    def _coupon_or_404(self) -> Coupon:
        coupon = self.db.get(Coupon, int(self.request.matchdict["id"]))
        if coupon is None:
            raise HTTPNotFound()
        return coupon

    def _redemptions(self, coupon: Coupon) -> list:
        return self.db.scalars(select(Redemption).where(Redemption.coupon_id == coupon.id)
                               .order_by(Redemption.id.desc()).limit(100)).all()

    def _coupon_page(self, coupon, values, errors):
        return self.common(coupon=coupon, values=values, errors=errors, redemptions=self._redemptions(coupon),
                           use_labels=USE_LABELS, status=service.status_of(coupon),
                           fmt=lambda m: money.format_minor(m, self.currency))

    @view_config(route_name="coupons.edit", request_method="GET", renderer=TEMPLATES + "coupon.pt")
    def edit_coupon(self):
        coupon = self._coupon_or_404()
        return self._coupon_page(coupon, _coupon_values(self.db, coupon, self.currency), {})

    @view_config(route_name="coupons.edit", request_method="POST", renderer=TEMPLATES + "coupon.pt")
    def save_coupon(self):
        coupon = self._coupon_or_404()
        post = self.request.POST
        try:
            values = service.coupon_values(self.db, coupon_form_data(post), self.currency, naive_utc=True,
                                           with_code=False)
            service.update_coupon(self.db, coupon, values)
        except service.InputError as exc:
            errors = self.refuse(exc)
            return self._coupon_page(coupon, {**_form_values(post), "code": coupon.code}, errors)
        audit.record(self.db, self.actor(), "coupons.update", f"coupon:{coupon.id}", code=coupon.code)
        self.flash(_("Coupon ${code} saved.", mapping={"code": coupon.code}))
        return HTTPFound(self.request.route_url("coupons.edit", id=coupon.id))

    @view_config(route_name="coupons.toggle", request_method="POST")
    def toggle_coupon(self):
        coupon = self._coupon_or_404()
        coupon.active = not coupon.active
        audit.record(self.db, self.actor(), "coupons.enable" if coupon.active else "coupons.disable",
                     f"coupon:{coupon.id}", code=coupon.code)
        self.flash(_("Coupon ${code} enabled.", mapping={"code": coupon.code}) if coupon.active
                   else _("Coupon ${code} disabled: it no longer applies to new orders.",
                          mapping={"code": coupon.code}))
        return HTTPFound(self.request.route_url("coupons.edit", id=coupon.id))

    # -- batches -----------------------------------------------------------------------------------

    @view_config(route_name="coupons.batch", request_method="GET", renderer=TEMPLATES + "batch.pt")
    def batch_form(self):
        values = {**NEW_COUPON, "max_uses": "1", "per_buyer": "1", "count": "100", "prefix": ""}
        return self.common(values=values, errors={}, max_batch=service.MAX_BATCH)

    @view_config(route_name="coupons.batch", request_method="POST", renderer=TEMPLATES + "batch.pt")
    def batch_generate(self):
        post = self.request.POST
        length = self.request.plugin_settings(PLUGIN_ID).get("batch_code_length") or 10
        try:
            count = service.parse_int(_clean(post.get("count", "")), "count", 1, service.MAX_BATCH)
            if count is None:
                raise service.InputError("count", _("Give how many codes to make."))
            values = service.coupon_values(self.db, coupon_form_data(post), self.currency, naive_utc=True,
                                           with_code=False)
            batch, made = service.generate_batch(self.db, values, _clean(post.get("prefix", "")), count, length)
        except service.InputError as exc:
            return self.common(values=_form_values(post), errors=self.refuse(exc), max_batch=service.MAX_BATCH)
        audit.record(self.db, self.actor(), "coupons.batch", f"batch:{batch}", count=made)
        self.flash(_("${n} codes made in batch ${batch}. Export them as CSV from this list.",
                     mapping={"n": made, "batch": batch}))
        return HTTPFound(self.request.route_url("coupons.list", _query={"batch": batch}))

    @view_config(route_name="coupons.export", request_method="GET")
    def export(self):
        request = self.request
        q = _clean(request.GET.get("q", "")).strip()[:MAX_QUERY]
        status = request.GET.get("status", "")
        status = status if status in service.STATUSES else ""
        batch = _clean(request.GET.get("batch", "")).strip()[:64]
        body = service.export_csv(self.db, service.coupon_query(q, status, batch), self.currency)
        audit.record(self.db, self.actor(), "coupons.export", f"batch:{batch}" if batch else "", q=q, status=status)
        resp = Response(body=body, content_type="text/csv", charset="utf-8")
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        name = re.sub(r"[^A-Za-z0-9_-]", "", batch) or "coupons"
        resp.headers["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
        resp.headers["Cache-Control"] = "no-store"
        return resp

    # -- promotions --------------------------------------------------------------------------------

    @view_config(route_name="coupons.promotions", request_method="GET", renderer=TEMPLATES + "promotions.pt")
    def promotions(self):
        rows = self.db.scalars(select(Promotion).order_by(Promotion.id.desc())).all()
        return self.common(rows=rows, tiers_of=tiers_of, tier_text=tier_text, now=dt.datetime.now(dt.timezone.utc))

    def _promotion_values(self, promotion: Promotion | None) -> dict:
        values = {"name": "", "active": "1", "scope": "all", "categories": [], "products": [], "starts_at": "",
                  "ends_at": ""}
        tiers = []
        if promotion is not None:
            targets = [str(t) for t in ids(promotion.targets)]
            values.update(name=promotion.name, active="1" if promotion.active else "", scope=promotion.scope,
                          categories=targets if promotion.scope == "categories" else [],
                          products=targets if promotion.scope == "products" else [],
                          starts_at=_local(promotion.starts_at), ends_at=_local(promotion.ends_at))
            tiers = service.promotion_tiers_input(promotion, self.currency)
        for i in range(TIER_ROWS):
            tier = tiers[i] if i < len(tiers) else {"threshold": "", "kind": "amount", "value": ""}
            values[f"threshold_{i}"], values[f"tier_kind_{i}"], values[f"tier_value_{i}"] = (
                tier["threshold"], tier["kind"], tier["value"])
        return values

    def _promotion_form(self, post) -> dict:
        data = {"name": _clean(post.get("name", "")), "active": post.get("active") == "1",
                "starts_at": _clean(post.get("starts_at", "")), "ends_at": _clean(post.get("ends_at", ""))}
        _scope_from_form(post, data)
        tiers = []
        for i in range(TIER_ROWS):
            threshold = _clean(post.get(f"threshold_{i}", "")).strip()
            value = _clean(post.get(f"tier_value_{i}", "")).strip()
            if threshold or value:
                tiers.append({"threshold": threshold, "kind": post.get(f"tier_kind_{i}", ""), "value": value})
        data["tiers"] = tiers
        return data

    def _promotion_page(self, promotion, values, errors):
        return self.common(promotion=promotion, values=values, errors=errors, tier_rows=range(TIER_ROWS))

    @view_config(route_name="coupons.promotion.new", request_method="GET", renderer=TEMPLATES + "promotion.pt")
    def new_promotion(self):
        return self._promotion_page(None, self._promotion_values(None), {})

    def _save_promotion(self, promotion: Promotion | None):
        post = self.request.POST
        try:
            values = service.promotion_values(self.db, self._promotion_form(post), self.currency, naive_utc=True)
        except service.InputError as exc:
            return self._promotion_page(promotion, _form_values(post), self.refuse(exc))
        now = dt.datetime.now(dt.timezone.utc)
        if promotion is None:
            promotion = Promotion(**values, created_at=now, updated_at=now)
            self.db.add(promotion)
            self.db.flush()
            action = "coupons.promotion.create"
        else:
            for name, value in values.items():
                setattr(promotion, name, value)
            promotion.updated_at = now
            action = "coupons.promotion.update"
        audit.record(self.db, self.actor(), action, f"promotion:{promotion.id}", name=promotion.name,
                     tiers=json.loads(promotion.tiers), active=promotion.active)
        self.flash(_("Promotion ${name} saved.", mapping={"name": promotion.name}))
        return HTTPFound(self.request.route_url("coupons.promotions"))

    @view_config(route_name="coupons.promotion.new", request_method="POST", renderer=TEMPLATES + "promotion.pt")
    def create_promotion(self):
        return self._save_promotion(None)

    def _promotion_or_404(self) -> Promotion:
        promotion = self.db.get(Promotion, int(self.request.matchdict["id"]))
        if promotion is None:
            raise HTTPNotFound()
        return promotion

    @view_config(route_name="coupons.promotion", request_method="GET", renderer=TEMPLATES + "promotion.pt")
    def edit_promotion(self):
        promotion = self._promotion_or_404()
        return self._promotion_page(promotion, self._promotion_values(promotion), {})

    @view_config(route_name="coupons.promotion", request_method="POST", renderer=TEMPLATES + "promotion.pt")
    def update_promotion(self):
        return self._save_promotion(self._promotion_or_404())

    # -- sale prices -------------------------------------------------------------------------------

    @view_config(route_name="coupons.sales", request_method="GET", renderer=TEMPLATES + "sales.pt")
    def sales(self):
        rows = self.db.execute(select(Sale, Sku.code, Sku.name, Sku.price).join(Sku, Sku.id == Sale.sku_id)
                               .order_by(Sale.id.desc()).limit(500)).all()
        return self.common(rows=rows, now=dt.datetime.now(dt.timezone.utc), sale_left=sale_left,
                           fmt=lambda m: money.format_minor(m, self.currency))

    def _sale_values(self, sale: Sale | None) -> dict:
        if sale is None:
            return {"sku": self.request.GET.get("sku", "")[:64], "price": "", "cap": "", "starts_at": "",
                    "ends_at": "", "active": "1"}
        code = self.db.scalar(select(Sku.code).where(Sku.id == sale.sku_id)) or ""
        return {"sku": code, "price": money.format_minor(sale.price, self.currency), "cap": str(sale.cap),
                "starts_at": _local(sale.starts_at), "ends_at": _local(sale.ends_at),
                "active": "1" if sale.active else ""}

    def _sale_page(self, sale, values, errors):
        uses = []
        if sale is not None:
            uses = self.db.scalars(select(SaleUse).where(SaleUse.sale_id == sale.id)
                                   .order_by(SaleUse.id.desc()).limit(100)).all()
        return self.common(sale=sale, values=values, errors=errors, uses=uses, use_labels=USE_LABELS,
                           fmt=lambda m: money.format_minor(m, self.currency))

    def _save_sale(self, sale: Sale | None):
        post = self.request.POST
        data = {k: _clean(post.get(k, "")) for k in ("sku", "price", "cap", "starts_at", "ends_at")}
        data["active"] = post.get("active") == "1"
        try:
            values = service.sale_values(self.db, data, self.currency, naive_utc=True, existing=sale)
        except service.InputError as exc:
            return self._sale_page(sale, _form_values(post), self.refuse(exc))
        now = dt.datetime.now(dt.timezone.utc)
        if sale is None:
            sale = Sale(**values, sold=0, created_at=now, updated_at=now)
            self.db.add(sale)
            self.db.flush()
            action = "coupons.sale.create"
        else:
            for name, value in values.items():
                setattr(sale, name, value)
            sale.updated_at = now
            action = "coupons.sale.update"
        audit.record(self.db, self.actor(), action, f"sale:{sale.id}", sku=data["sku"],
                     price=money.format_minor(sale.price, self.currency), cap=sale.cap, active=sale.active)
        self.flash(_("Sale price saved."))
        return HTTPFound(self.request.route_url("coupons.sales"))

    @view_config(route_name="coupons.sale.new", request_method="GET", renderer=TEMPLATES + "sale.pt")
    def new_sale(self):
        return self._sale_page(None, self._sale_values(None), {})

    @view_config(route_name="coupons.sale.new", request_method="POST", renderer=TEMPLATES + "sale.pt")
    def create_sale(self):
        return self._save_sale(None)

    def _sale_or_404(self) -> Sale:
        sale = self.db.get(Sale, int(self.request.matchdict["id"]))
        if sale is None:
            raise HTTPNotFound()
        return sale

    @view_config(route_name="coupons.sale", request_method="GET", renderer=TEMPLATES + "sale.pt")
    def edit_sale(self):
        sale = self._sale_or_404()
        return self._sale_page(sale, self._sale_values(sale), {})

    @view_config(route_name="coupons.sale", request_method="POST", renderer=TEMPLATES + "sale.pt")
    def update_sale(self):
        return self._save_sale(self._sale_or_404())

