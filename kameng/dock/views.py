"""The docking API's endpoints: goods and prices for the calling account,
its balance, orders paid from it (idempotent on ``out_order_no``).

Every view authenticates first (:func:`kameng.dock.auth.authenticate`),
which also records the nonce in the request's transaction. Orders go
through the same pipeline as the shop's own (:func:`create_order`,
:func:`start_payment`): the account's price, stock reservations, anti-fraud
hooks and the audit trail are the core's.
"""
from __future__ import annotations

import hmac
import json
import re

from pyramid.view import view_config
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from kameng import httpclient, strictjson, wallet
from kameng.accounts import User
from kameng.api.catalog import _public_categories
from kameng.catalog.models import Product
from kameng.dock.auth import authenticate
from kameng.dock.models import DockOrder, request_hash
from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import format_minor
from kameng.orders import pricing, service
from kameng.orders.checkout import OrderRequest, RetryOrder, create_order
from kameng.orders.models import Order

#: out_order_no: characters that travel unchanged in a URL path
OUT_ORDER_NO = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
MAX_BODY = 64 * 1024
MAX_CALLBACK_URL = 1000
_ID = re.compile(r"[1-9][0-9]{0,8}")


def _iso(value):
    """Whole seconds: MariaDB keeps no fractions, and the answer that
    created an order must equal every later read of it."""
    return value.replace(microsecond=0).isoformat() if value is not None else None


# -- goods -------------------------------------------------------------------------------------


def _public_products(db, product_id: int | None = None) -> list[Product]:
    cats = _public_categories(db)
    stmt = (select(Product).where(Product.visible.is_(True), Product.archived.is_(False),
                                  or_(Product.category_id.is_(None), Product.category_id.in_([c.id for c in cats])))
            .options(selectinload(Product.skus), selectinload(Product.category)))
    if product_id is not None:
        stmt = stmt.where(Product.id == product_id)
    return list(db.scalars(stmt.order_by(Product.sort, Product.id)))


def _loads(text, default):
    try:
        return json.loads(text or "")
    except ValueError:
        return default


def goods_json(request, user, product: Product) -> dict:
    """A product as the calling account may buy it: its own price per SKU
    (the core's pricing for that account, one unit, no coupon)."""
    currency = request.shop["currency"]
    skus = []
    for sku in sorted((s for s in product.skus if s.visible), key=lambda s: (s.sort or 0, s.id)):
        q = pricing.quote(request, product, sku, 1, user=user, contact=user.email)
        skus.append({"code": sku.code, "name": sku.name, "price": format_minor(q.amount, currency),
                     "stock": None if sku.stock is None else max(sku.stock, 0),
                     "min_quantity": sku.min_quantity, "max_quantity": sku.max_quantity,
                     "attributes": _loads(sku.attributes, {})})
    updated = getattr(product, "updated_at", None) or product.created_at
    return {"id": product.id, "name": product.name, "type": product.type,
            "category": product.category.name if product.category is not None else "",
            "description": product.description or "", "currency": currency,
            "recharge_fields": _loads(product.recharge_fields, []) if product.type == "direct_recharge" else [],
            "updated_at": _iso(updated), "skus": skus}


@view_config(route_name="dock.goods", request_method="GET", renderer="json", require_csrf=False)
def list_goods(request):
    caller = authenticate(request)
    items = [goods_json(request, caller.user, p) for p in _public_products(request.db)]
    return {"items": [g for g in items if g["skus"]]}


@view_config(route_name="dock.goods.one", request_method="GET", renderer="json", require_csrf=False)
def get_goods(request):
    caller = authenticate(request)
    raw = request.matchdict["id"]
    found = _public_products(request.db, int(raw)) if _ID.fullmatch(raw) else []
    item = goods_json(request, caller.user, found[0]) if found else None
    if item is None or not item["skus"]:
        raise APIError(404, "not_found", _("No such goods."))
    return item


# -- balance -----------------------------------------------------------------------------------


@view_config(route_name="dock.balance", request_method="GET", renderer="json", require_csrf=False)
def balance(request):
    caller = authenticate(request)
    currency = request.shop["currency"]
    return {"balance": format_minor(wallet.balance(request.db, caller.user.id), currency), "currency": currency}


# -- orders ------------------------------------------------------------------------------------


def order_json(request, link: DockOrder, order: Order, event: str | None = None) -> dict:
    """A docked order as its account sees it (also the callback's body)."""
    cur = order.currency
    keys = [{k: v for k, v in (("number", key["number"]), ("secret", key["secret"])) if v is not None}
            for key in service.keys_of(request, order)]
    out = {"out_order_no": link.out_order_no, "order_no": order.order_no, "status": order.status,
           "amount": format_minor(order.amount, cur), "currency": cur, "sku": order.sku_code,
           "quantity": order.quantity, "refunded": format_minor(order.refunded_amount, cur), "keys": keys,
           "created_at": _iso(order.created_at), "paid_at": _iso(order.paid_at),
           "delivered_at": _iso(order.delivered_at),
           "failure_reason": request.localizer.translate(_(order.failure_reason)) if order.failure_reason else None}
    note = service.delivery_text(request, order) if order.status in ("delivered", "refunded") else None
    if note:
        out["delivery_note"] = note
    if event is not None:
        out = {"event": event, **out}
    return out


def _invalid(message, field: str, status: int = 422, code: str = "invalid_request") -> APIError:
    return APIError(status, code, message, field=field)


def read_body(request) -> dict:
    if (request.content_length or 0) > MAX_BODY:
        raise APIError(413, "too_large", _("The body is too large."))
    try:
        body = strictjson.loads(request.body or b"{}", max_bytes=MAX_BODY)
    except strictjson.StrictJSONError:
        raise APIError(400, "invalid_request", _("The body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise APIError(400, "invalid_request", _("The body must be a JSON object."))
    return body


def check_callback_url(value) -> str | None:
    """An http(s) URL this shop may call (kameng.httpclient's SSRF policy), or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_CALLBACK_URL:
        raise _invalid(_("callback_url must be a URL of at most 1000 characters."), "callback_url",
                       code="invalid_callback_url")
    try:
        if any(c < " " or c == "\x7f" for c in value):  # never in a URL; NUL would be a 500 on PostgreSQL
            raise ValueError("a control character")
        httpclient.check_url(value)
    except (httpclient.HttpError, ValueError):
        raise _invalid(_("callback_url must be a public https:// URL."), "callback_url",
                       code="invalid_callback_url") from None
    return value


def parse_order(body: dict) -> tuple[str, OrderRequest, str | None, str]:
    """``(out_order_no, order request, callback_url, request hash)`` from a POST body."""
    out_no = body.get("out_order_no")
    if not isinstance(out_no, str) or not OUT_ORDER_NO.fullmatch(out_no):
        raise _invalid(_("out_order_no must be 1 to 64 letters, digits or _.:-"), "out_order_no")
    sku = body.get("sku")
    if not isinstance(sku, str):
        raise _invalid(_("${field} must be text.", mapping={"field": "sku"}), "sku")
    recharge = body.get("recharge") or {}
    if not isinstance(recharge, dict):
        raise _invalid(_("recharge must be an object."), "recharge")
    quantity = body.get("quantity", 1)
    callback_url = check_callback_url(body.get("callback_url"))
    fingerprint = request_hash({"sku": sku, "quantity": quantity, "recharge": recharge,
                                "callback_url": callback_url})
    req = OrderRequest(sku=sku, quantity=quantity, payment_method=service.BALANCE, recharge=recharge,
                       idempotency_key=f"dock-out:{out_no}")
    return out_no, req, callback_url, fingerprint


def find_link(db, user_id: int, out_order_no: str) -> DockOrder | None:
    return db.scalar(select(DockOrder).where(DockOrder.user_id == user_id, DockOrder.out_order_no == out_order_no))


def _replay(request, link: DockOrder, fingerprint: str) -> dict:
    if not hmac.compare_digest(link.request_hash, fingerprint):
        raise APIError(409, "idempotency_conflict", _("This out_order_no was used for a different order."))
    request.response.headers["Idempotent-Replayed"] = "true"
    request.response.headers["Cache-Control"] = "no-store"
    return order_json(request, link, request.db.get(Order, link.order_id))


@view_config(route_name="dock.orders", request_method="POST", renderer="json", require_csrf=False)
def create(request):
    caller = authenticate(request)
    user, db = caller.user, request.db
    out_no, req, callback_url, fingerprint = parse_order(read_body(request))
    # One docked order of an account at a time: they would queue on its wallet
    # anyway, and taking the account's row first keeps two orders' foreign-key
    # locks on it (PostgreSQL KEY SHARE) from deadlocking with the wallet's
    # FOR UPDATE. A twin with the same out_order_no then finds the first here.
    db.execute(select(User.id).where(User.id == user.id).with_for_update())
    link = find_link(db, user.id, out_no)
    if link is not None:
        return _replay(request, link, fingerprint)
    req.contact = user.email
    order, replayed = create_order(request, req, user=user)
    if replayed:  # a concurrent twin committed first (PostgreSQL, MariaDB)
        link = find_link(db, user.id, out_no)
        if link is None:
            raise APIError(409, "idempotency_conflict", _("This out_order_no was used for a different order."))
        return _replay(request, link, fingerprint)
    actor = f"dock:{caller.key.key_id}"
    # the link first: paying delivers this shop's own keys at once (in this
    # answer), and the delivered callback is queued only for a linked order
    link = DockOrder(order_id=order.id, user_id=user.id, key_id=caller.key.key_id, out_order_no=out_no,
                     request_hash=fingerprint, callback_url=callback_url)
    try:
        with db.begin_nested():
            db.add(link)
            db.flush()
    except IntegrityError:
        raise RetryOrder() from None  # its twin won: run again and answer with that one
    # insufficient_balance (409) raises here and the transaction, order and all, rolls back
    service.start_payment(request, order, service.BALANCE, actor=actor)
    request.response.status = 201
    request.response.headers["Cache-Control"] = "no-store"
    return order_json(request, link, order)


@view_config(route_name="dock.order", request_method="GET", renderer="json", require_csrf=False)
def read(request):
    caller = authenticate(request)
    out_no = request.matchdict["out_order_no"]
    link = find_link(request.db, caller.user.id, out_no) if OUT_ORDER_NO.fullmatch(out_no) else None
    if link is None:
        raise APIError(404, "not_found", _("No order with this out_order_no."))
    request.response.headers["Cache-Control"] = "no-store"
    return order_json(request, link, request.db.get(Order, link.order_id))
