"""The admin API for orders and accounts (API.md "Admin API").

``GET /api/v1/admin/orders`` (filters as on the admin page), ``GET
/api/v1/admin/orders/{order_no}`` (the order with its payments, their
notifications, refunds and full trail), ``POST
/api/v1/admin/orders/{order_no}/{action}`` for ``deliver``, ``redeliver``,
``refund``, ``refund_paid``, ``cancel`` and ``replace_key``; accounts:
``GET``/``POST /api/v1/admin/users``, ``GET``/``PATCH
/api/v1/admin/users/{id}`` (role, agent tier, member level) and ``POST
/api/v1/admin/users/{id}/balance``.

The rules are :mod:`kameng.orders.service`'s; a refusal there is an
:class:`~kameng.errors.APIError` answered as JSON, and its transaction is
rolled back by pyramid_tm. Every action needs a ``reason`` and is written to
the audit log.
"""
from __future__ import annotations

import re

from pyramid.view import view_config
from sqlalchemy import func, select

from kameng import audit, money
from kameng.accounts import User
from kameng.admin import orders as admin_orders
from kameng.admin.users import adjust_balance, balances, create_account, update_membership, user_query
from kameng.api import api_csrf, json_body
from kameng.api.catalog import MAX_QUERY, _page
from kameng.api.orders import order_json
from kameng.errors import APIError
from kameng.i18n import _
from kameng.orders import service, states
from kameng.orders.models import Order, Refund
from kameng.payments.models import PaymentNotice

ACTIONS = ("deliver", "redeliver", "refund", "refund_paid", "cancel", "replace_key")
_ID = re.compile(r"^[1-9][0-9]{0,8}\Z")
MAX_REASON = admin_orders.MAX_REASON
MAX_TEXT = admin_orders.MAX_TEXT


def _invalid(message, field: str, status: int = 422) -> APIError:
    return APIError(status, "invalid_request", message, field=field)


def summary_json(request, order: Order) -> dict:
    """An order in the admin list."""
    cur = order.currency
    return {"order_no": order.order_no, "status": order.status,
            "status_label": request.localizer.translate(states.LABELS[order.status]),
            "product_type": order.product_type, "product": order.product_name, "sku": order.sku_code,
            "sku_name": order.sku_name, "quantity": order.quantity, "amount": money.format_minor(order.amount, cur),
            "refunded": money.format_minor(order.refunded_amount, cur), "currency": cur,
            "payment_method": order.payment_method or None, "contact": order.contact, "user_id": order.user_id,
            "held": order.held or None, "created_at": order.created_at.isoformat(),
            "paid_at": order.paid_at.isoformat() if order.paid_at else None,
            "delivered_at": order.delivered_at.isoformat() if order.delivered_at else None}


def admin_order_json(request, order: Order) -> dict:
    """:func:`kameng.api.orders.order_json` for the shop, each payment with
    the notifications received for it."""
    out = order_json(request, order, admin=True)
    nos = [p["attempt_no"] for p in out.get("payments", [])]
    notices: dict[str, list] = {no: [] for no in nos}
    if nos:
        for n in request.db.scalars(select(PaymentNotice).where(PaymentNotice.attempt_no.in_(nos))
                                    .order_by(PaymentNotice.id)):
            notices[n.attempt_no].append({"received_at": n.received_at.isoformat(), "verified": n.verified,
                                          "outcome": n.outcome, "detail": n.detail})
    for p in out.get("payments", []):
        p["notices"] = notices.get(p["attempt_no"], [])
    out["refundable"] = money.format_minor(max(service.refundable(request.db, order), 0), order.currency)
    return out


def _filters(request) -> admin_orders.OrderFilters:
    f = admin_orders.parse_filters(request.GET)
    if f.errors:
        name = min(f.errors)
        raise _invalid(_("${name} is not a value this filter takes", mapping={"name": name}), name, status=400)
    return f


@view_config(route_name="api.admin.orders", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def list_orders(request):
    page, per_page = _page(request)
    f = _filters(request)
    stmt = admin_orders.apply_filters(select(Order), f)
    total = request.db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = request.db.scalars(stmt.order_by(Order.id.desc()).offset((page - 1) * per_page).limit(per_page))
    return {"items": [summary_json(request, o) for o in rows], "total": total, "page": page, "per_page": per_page,
            "counts": admin_orders.status_counts(request.db, f)}


def _order(request, lock: bool = False) -> Order:
    order = service.get(request.db, request.matchdict["order_no"], lock=lock)
    if order is None:
        raise APIError(404, "not_found", _("No such order."))
    return order


@view_config(route_name="api.admin.order", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def get_order(request):
    request.response.headers["Cache-Control"] = "no-store"
    return admin_order_json(request, _order(request))


def _reason(body: dict) -> str:
    reason = body.get("reason")
    reason = admin_orders.clean(reason) if isinstance(reason, str) else None
    if not reason or not reason.strip():
        raise _invalid(_("reason is required: it is kept in the order's history"), "reason")
    if len(reason.strip()) > MAX_REASON:
        raise _invalid(_("The reason may be at most ${n} characters.", mapping={"n": MAX_REASON}), "reason")
    return reason.strip()


def _optional_text(body: dict, name: str, limit: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(_("${field} must be text.", mapping={"field": name}), name)
    if len(value) > limit:
        raise _invalid(_("${field} may be at most ${n} characters.", mapping={"field": name, "n": limit}), name)
    return value.strip()


@view_config(route_name="api.admin.order.action", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def order_action(request):
    action = request.matchdict["action"]
    if action not in ACTIONS:
        raise APIError(404, "not_found", _("No such action."))
    order = _order(request, lock=True)
    body = json_body(request)
    reason = _reason(body)
    actor = audit.actor_of(request)
    detail: dict = {}
    extra: dict = {}
    if action == "deliver":
        text = _optional_text(body, "text", MAX_TEXT)
        if order.status == states.FAILED and admin_orders.refund_started(request.db, order):
            raise APIError(409, "refund_started", _("A refund has been started for this order."))
        service.fulfil_by_hand(request, order, text, actor=actor)
        states.note(request.db, order, "note", reason, actor=actor, public=False)
        detail["with_text"] = bool(text)
    elif action == "redeliver":
        was = order.status
        service.redeliver(request, order, actor=actor, reason=reason)
        if was == states.PAID:
            states.note(request.db, order, "note", reason, actor=actor, public=False)
        detail.update({"from": was, "to": order.status})
    elif action == "refund":
        amount = body.get("amount")
        if amount is not None:
            try:
                amount = money.parse_minor(amount, order.currency)
            except money.MoneyError:
                raise _invalid(_("amount must be a decimal string like \"12.50\""), "amount") from None
            if amount <= 0:
                raise _invalid(_("amount must be more than zero"), "amount")
        destination = body.get("destination")
        if destination is not None and destination not in admin_orders.DESTINATIONS:
            raise _invalid(_("destination must be balance, gateway or auto"), "destination")
        refund = service.admin_refund(request, order, amount, reason,
                                      None if destination in (None, "auto") else destination)
        if refund is None:
            raise APIError(409, "nothing_to_refund", _("There is nothing left to refund."))
        detail.update({"refund_no": refund.refund_no, "amount": money.format_minor(refund.amount, refund.currency),
                       "destination": refund.destination})
        extra["refund"] = {"refund_no": refund.refund_no, "amount": detail["amount"],
                           "destination": refund.destination, "status": refund.status}
    elif action == "refund_paid":
        refund_no = body.get("refund_no")
        if not isinstance(refund_no, str) or not refund_no:
            raise _invalid(_("refund_no is required"), "refund_no")
        refund_no = admin_orders.clean(refund_no)
        refund = request.db.scalar(select(Refund).where(Refund.refund_no == refund_no, Refund.order_id == order.id)
                                   .with_for_update()) if len(refund_no) <= 32 else None
        if refund is None:
            raise APIError(404, "not_found", _("This order has no such refund."))
        if not admin_orders.payable_by_hand(refund):
            raise APIError(409, "not_manual_refund", _("Only a refund waiting to be paid by hand, or one the "
                                                       "gateway refused, can be marked as paid."))
        service.refund_by_hand(request, refund, actor=actor)
        states.note(request.db, order, "refund", reason, actor=actor, public=False)
        detail["refund_no"] = refund.refund_no
    elif action == "cancel":
        service.cancel(request, order, actor=actor, reason=reason)
    elif action == "replace_key":
        key_id = body.get("key_id")
        if isinstance(key_id, bool) or not isinstance(key_id, int) or not 0 < key_id < 2 ** 31:
            raise _invalid(_("key_id must be the id of one of the order's keys"), "key_id")
        result = service.replace_key(request, order, key_id, actor=actor, reason=reason)
        detail.update({"key_id": key_id, "result": result})
        extra["result"] = result
    audit.record(request.db, actor, f"order.{action}", order.order_no, reason=reason, **detail)
    request.db.flush()
    request.response.headers["Cache-Control"] = "no-store"
    return {**admin_order_json(request, order), **extra}


# -- accounts -----------------------------------------------------------------------------------------


def user_json(request, user: User, balance: int | None = None) -> dict:
    cur = request.shop["currency"]
    if balance is None:
        balance = balances(request.db, [user.id]).get(user.id, 0)
    return {"id": user.id, "email": user.email, "role": user.role, "active": bool(user.is_active),
            "balance": money.format_minor(balance, cur), "currency": cur,
            "created_at": user.created_at.isoformat() if user.created_at else None,
            "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
            "phone": getattr(user, "phone", None), "level": user.level, "level_manual": bool(user.level_manual),
            "tier": user.tier, "agent_status": user.agent_status or ""}


@view_config(route_name="api.admin.users", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def list_users(request):
    page, per_page = _page(request)
    q = admin_orders.clean(request.GET.get("q", "")).strip()[:MAX_QUERY]
    role = request.GET.get("role", "").strip()
    if role and role not in ("buyer", "agent", "admin"):
        raise _invalid(_("role must be buyer, agent or admin"), "role", status=400)
    stmt = user_query(q, role)
    total = request.db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = request.db.scalars(stmt.order_by(User.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
    bal = balances(request.db, [u.id for u in rows])
    return {"items": [user_json(request, u, bal.get(u.id, 0)) for u in rows], "total": total, "page": page,
            "per_page": per_page}


@view_config(route_name="api.admin.users", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def create_user(request):
    body = json_body(request)
    level = body.get("level")
    if level is not None and not isinstance(level, str):
        raise _invalid(_("The level is a member level's code."), "level")
    user = create_account(request.db, body.get("email"), body.get("password"), body.get("role", "buyer"),
                          level=level or None)
    audit.record(request.db, audit.actor_of(request), "user.create", f"user:{user.id}", email=user.email,
                 role=user.role, **({"level": user.level} if user.level else {}))
    request.response.status = 201
    return user_json(request, user, 0)


def matched_user(request) -> User:
    """The account named by the route's ``{id}``, or the API's 404."""
    raw = request.matchdict["id"]
    user = request.db.get(User, int(raw)) if _ID.match(raw) else None
    if user is None:
        raise APIError(404, "not_found", _("No such account."))
    return user


@view_config(route_name="api.admin.user", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def get_user(request):
    return user_json(request, matched_user(request))


@view_config(route_name="api.admin.user", request_method="PATCH", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def patch_user(request):
    """``{"role"?: "buyer" | "agent", "tier"?: code | null, "level"?: code | "" | null}``:
    a level's code is fixed by hand, ``""`` is no level (fixed by hand),
    ``null`` puts the account back under the level rules."""
    user = matched_user(request)
    body = json_body(request)
    update_membership(request, user, {k: body[k] for k in ("role", "tier", "level") if k in body})
    request.db.flush()
    return user_json(request, user)


@view_config(route_name="api.admin.user.balance", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def adjust_user_balance(request):
    user = matched_user(request)
    body = json_body(request)
    entry = adjust_balance(request, user, body.get("amount"), body.get("reason"))
    cur = request.shop["currency"]
    return {"balance": money.format_minor(entry.balance_after, cur), "currency": cur,
            "entry": {"seq": entry.seq, "amount": money.format_minor(entry.amount, cur), "reason": entry.reason,
                      "note": entry.note, "created_at": entry.created_at.isoformat() if entry.created_at else None}}
