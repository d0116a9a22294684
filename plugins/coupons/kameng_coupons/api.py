"""The admin API for coupons (API.md "Admin API"), with an admin token or an
admin session (then with the ``X-CSRF-Token`` header):

- ``POST /api/v1/admin/coupons`` ``{"code", "kind": "fixed" | "percent",
  "value", "max_discount"?, "min_amount"?, "max_uses"?, "per_buyer"?,
  "starts_at"?, "ends_at"?, "skus"?: [codes]}`` → 201 the coupon; also
  ``categories``/``products`` (ids), ``active`` and ``note``. 422
  ``invalid_request`` names the ``field``; a code in use is 409 ``code_taken``.
- ``GET /api/v1/admin/coupons?q=&status=&batch=&page=&per_page=`` →
  ``{"items": [...], "total": N}``.
- ``GET /api/v1/admin/coupons/{id}`` and ``PATCH`` (any of the fields above).
"""
from __future__ import annotations

import re

from pyramid.view import view_config
from sqlalchemy import func, select

from kameng import audit
from kameng.api import api_csrf, json_body
from kameng.errors import APIError
from kameng.i18n import _

from kameng_coupons import service
from kameng_coupons.models import Coupon

_ID = re.compile(r"[1-9][0-9]{0,8}")
MAX_PAGE = 1_000_000
MAX_PER_PAGE = 100
SCOPE_FIELDS = ("scope", "categories", "products", "skus")
#: what a PATCH may change; a field set to null is cleared
FIELDS = ("code", "kind", "value", "max_discount", "min_amount", "max_uses", "per_buyer", "starts_at", "ends_at",
          "active", "note", *SCOPE_FIELDS)


def _body(request) -> dict:
    try:
        return json_body(request)
    except RecursionError:
        raise APIError(400, "invalid_request", _("The body is not valid JSON.")) from None


def _refuse(request, exc: service.InputError) -> APIError:
    request.tm.doom()
    return APIError(exc.status, exc.code, exc.message, **({"field": exc.field} if exc.field else {}))


def _int_param(request, name: str, default: int, high: int) -> int:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or int(raw) < 1:
        raise APIError(400, "invalid_request", _("${name} must be a positive whole number", mapping={"name": name}),
                       field=name)
    return min(int(raw), high)


def _coupon(request) -> Coupon:
    raw = request.matchdict.get("id", "")
    coupon = request.db.get(Coupon, int(raw)) if _ID.fullmatch(raw) else None
    if coupon is None:
        raise APIError(404, "not_found", _("No such coupon."))
    return coupon


@view_config(route_name="coupons.api", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def list_coupons(request):
    db, currency = request.db, request.shop["currency"]
    status = request.GET.get("status", "")
    if status and status not in service.STATUSES:
        raise APIError(400, "invalid_request", _("The status must be one of: ${choices}.",
                                                 mapping={"choices": ", ".join(service.STATUSES)}), field="status")
    q = request.GET.get("q", "").replace("\x00", "").strip()[:64]
    batch = request.GET.get("batch", "").replace("\x00", "").strip()[:64]
    page = _int_param(request, "page", 1, MAX_PAGE)
    per_page = _int_param(request, "per_page", 20, MAX_PER_PAGE)
    stmt = service.coupon_query(q, status, batch)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.scalars(stmt.order_by(Coupon.id.desc()).offset((page - 1) * per_page).limit(per_page))
    return {"items": [service.coupon_json(db, c, currency) for c in rows], "total": total}


@view_config(route_name="coupons.api", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def create_coupon(request):
    db, currency = request.db, request.shop["currency"]
    data = _body(request)
    try:
        values = service.coupon_values(db, data, currency)
        coupon = service.create_coupon(db, values)
    except service.InputError as exc:
        raise _refuse(request, exc) from None
    audit.record(db, audit.actor_of(request), "coupons.create", f"coupon:{coupon.id}", code=coupon.code)
    request.response.status = 201
    return service.coupon_json(db, coupon, currency)


@view_config(route_name="coupons.api.one", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def get_coupon(request):
    return service.coupon_json(request.db, _coupon(request), request.shop["currency"])


@view_config(route_name="coupons.api.one", request_method="PATCH", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def update_coupon(request):
    db, currency = request.db, request.shop["currency"]
    coupon = _coupon(request)
    data = _body(request)
    merged = service.coupon_input(coupon, db, currency)
    if any(k in data for k in SCOPE_FIELDS):
        for name in SCOPE_FIELDS:
            merged.pop(name, None)
    merged.update({k: data[k] for k in FIELDS if k in data})
    if "kind" in data and data["kind"] != coupon.kind and "value" not in data:
        merged["value"] = None  # a fixed amount is no percentage: the new kind needs its own value
    if data.get("kind") == "fixed" and "max_discount" not in data:
        merged["max_discount"] = None
    try:
        values = service.coupon_values(db, merged, currency, exclude_id=coupon.id)
        service.update_coupon(db, coupon, values)
    except service.InputError as exc:
        raise _refuse(request, exc) from None
    audit.record(db, audit.actor_of(request), "coupons.update", f"coupon:{coupon.id}", code=coupon.code,
                 fields=sorted(k for k in data if k in FIELDS))
    return service.coupon_json(db, coupon, currency)
