"""A buyer's agent page and the key exports of an order.

``/account/agent``: a buyer applies to become an agent (one application
waits at a time; a rejected one shows the reason and may apply again). An
agent sees its tier, a price list of every SKU on sale at its own price
(``/account/agent/prices.csv`` as CSV), and manages its own docking API
keys: creates one (the secret is shown on the answer page once), lists and
revokes them (:mod:`kameng.dock.manage`, audited).

``/orders/{order_no}/keys.txt`` and ``/orders/{order_no}/keys.csv``: the
keys of a delivered order as a file, for whoever may open the order's page
(its owner's session or API token, the admin, its access token, the
browser session that placed or looked it up: :func:`kameng.orders.access.can_view`).
Never cached; the audit log names who exported how many keys, never the keys.
"""
from __future__ import annotations

import csv
import io
import logging

from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound, HTTPSeeOther
from pyramid.renderers import get_renderer
from pyramid.response import Response
from pyramid.view import view_config

from kameng import agents, audit, levels, wallet
from kameng.admin.orders import csv_cell, when
from kameng.catalog.service import buyer_price
from kameng.dock import manage
from kameng.dock.models import find_key, keys_of_user
from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import format_minor
from kameng.orders import pricing, service, states
from kameng.theming import tpl

log = logging.getLogger(__name__)
PAGE = tpl("storefront/agent.pt")
NO_STORE = "no-store"
FORMATS = ("txt", "csv")
#: the key ids an agent may hold at once (the docking API's own limit)
MAX_KEYS = manage.MAX_KEYS
#: what the agent page tells about the docking API (docs/docking.md has the whole guide)
DOCK_ENDPOINTS = ("GET goods", "GET goods/{id}", "GET balance", "POST orders", "GET orders/{out_order_no}")
SIGNING = "METHOD\\nPATH\\nSORTED_QUERY\\nSHA256_HEX(BODY)\\nTIMESTAMP\\nNONCE"


def includeme(config):
    config.add_route("account.agent", "/account/agent")
    config.add_route("account.agent.prices", "/account/agent/prices.csv", request_method="GET")
    config.add_route("account.agent.keys", "/account/agent/keys", request_method="POST")
    config.add_route("account.agent.key.revoke", "/account/agent/keys/{key_id}/revoke", request_method="POST")
    config.add_route("order.keys", "/orders/{order_no}/keys.{fmt}", request_method="GET")
    config.scan("kameng.storefront.agents")


def _nav():
    return get_renderer(tpl("storefront/account_nav.pt")).implementation()


def _money(minor: int, currency: str) -> str:
    return f"{currency} {format_minor(minor, currency)}"


# -- the member level on the account overview -----------------------------------------------------


def level_block(request):
    """The account's member level, its discount and what is missing for the
    next level, as a block for the account overview (None: the shop has no
    levels, or the account is an admin)."""
    from pyramid.renderers import render

    from kameng.types import StorefrontBlock

    user = request.user
    if user is None or user.role == "admin":
        return None
    currency = request.shop["currency"]
    info = levels.level_info(request.db, user, currency)
    if info is None:
        return None
    nxt = info["next"]
    missing = None
    if nxt is not None:
        missing = {"paid": _money(nxt["paid_missing"], currency) if nxt["paid_missing"] is not None else None,
                   "topup": _money(nxt["topup_missing"], currency) if nxt["topup_missing"] is not None else None}
    html = render(tpl("storefront/level_box.pt"), {"info": info, "next": nxt, "missing": missing,
                                                    "paid": _money(info["paid"], currency),
                                                    "topup": _money(info["topup"], currency)}, request=request)
    return StorefrontBlock(slot="account.top", html=html, order=10)


# -- the price list --------------------------------------------------------------------------------


def price_rows(request, user) -> list[dict]:
    """Every SKU on sale (as the docking API lists them) at ``user``'s own
    unit price, before promotions and coupons: ``{"product", "code",
    "name", "list", "price", "stock"}`` in minor units."""
    from kameng.dock.views import _public_products

    level, tier = pricing.price_refs(user)
    rows = []
    for product in _public_products(request.db):
        for sku in sorted((s for s in product.skus if s.visible), key=lambda s: (s.sort or 0, s.id)):
            unit, _how = buyer_price(request.db, sku, level=level, tier=tier)
            rows.append({"product": product.name, "code": sku.code, "name": sku.name, "list": sku.price,
                         "price": unit, "stock": None if sku.stock is None else max(sku.stock, 0)})
    return rows


def _agent_or_403(request):
    user = request.user
    if user is None or user.role != "agent":
        raise HTTPForbidden()
    return user


# -- the page --------------------------------------------------------------------------------------


def agent_page(request, error=None, error_field=None, note="", created=None, secret=None, key_values=None,
               key_error=None) -> dict:
    user, db, currency = request.user, request.db, request.shop["currency"]
    request.response.headers["Cache-Control"] = NO_STORE
    is_agent = user.role == "agent"
    out = {"user": user, "account_nav": _nav(), "is_agent": is_agent, "status": user.agent_status or "",
           "status_label": agents.STATUS_LABELS.get(user.agent_status or "", ""), "error": error,
           "error_field": error_field, "note": note, "max_note": agents.MAX_NOTE,
           "can_apply": user.role == "buyer" and user.agent_status != agents.APPLIED,
           "prices": [], "keys": [], "created": created, "secret": secret, "when": when,
           "key_values": key_values or {"name": "", "ip_allowlist": ""}, "key_error": key_error,
           "level": None, "bulk_max": None}
    if is_agent:
        from kameng.orders.checkout import agent_max_quantity

        out["prices"] = [{**r, "list_text": _money(r["list"], currency), "price_text": _money(r["price"], currency),
                          "cheaper": r["price"] < r["list"]} for r in price_rows(request, user)]
        out["keys"] = keys_of_user(db, user.id)
        out["active_keys"] = sum(1 for k in out["keys"] if k.active)
        out["max_keys"] = MAX_KEYS
        out["balance"] = _money(wallet.balance(db, user.id), currency)
        out["dock_url"] = request.public_url("dock.goods").rsplit("/", 1)[0] + "/"
        out["bulk_max"] = agent_max_quantity(request)
        out["endpoints"] = " · ".join(DOCK_ENDPOINTS)
        out["signing"] = SIGNING
        level = levels.get_level(db, user.level) if user.level else None
        out["level"] = level.name if level is not None else None
    return out


@view_config(route_name="account.agent", request_method="GET", renderer=PAGE, permission="account")
def agent_view(request):
    return agent_page(request)


@view_config(route_name="account.agent", request_method="POST", renderer=PAGE, permission="account")
def apply_view(request):
    """Apply to become an agent (a note for the shop)."""
    note = request.POST.get("note", "")[:2000]
    try:
        agents.apply(request.db, request.user, note, audit.actor_of(request))
    except APIError as exc:
        request.tm.doom()
        request.response.status = exc.status
        return agent_page(request, error=exc.message, error_field=exc.extra.get("field"), note=note[:agents.MAX_NOTE])
    log.info("agent_applied", extra={"user_id": request.user.id})
    request.session.flash(request.localizer.translate(_("Your application is sent. The shop will review it.")),
                          "info")
    return HTTPSeeOther(request.route_url("account.agent"))


@view_config(route_name="account.agent.prices", request_method="GET", permission="account")
def prices_csv(request):
    user = _agent_or_403(request)
    currency = request.shop["currency"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["product", "sku", "name", "list_price", "your_price", "currency", "stock"])
    for r in price_rows(request, user):
        writer.writerow([csv_cell(v) for v in (r["product"], r["code"], r["name"], format_minor(r["list"], currency),
                                                format_minor(r["price"], currency), currency,
                                                "" if r["stock"] is None else r["stock"])])
    resp = Response(body=("\ufeff" + buf.getvalue()).encode("utf-8"), content_type="text/csv", charset="utf-8")
    resp.headers["Content-Disposition"] = 'attachment; filename="prices.csv"'
    resp.headers["Cache-Control"] = NO_STORE
    return resp


@view_config(route_name="account.agent.keys", request_method="POST", renderer=PAGE, permission="account")
def create_key(request):
    """A new docking key of the agent itself; its secret is on this answer only."""
    user = _agent_or_403(request)
    values = {"name": request.POST.get("name", "")[:100], "ip_allowlist": request.POST.get("ip_allowlist", "")[:8000]}
    try:
        key, secret = manage.issue(request, user, values["name"], values["ip_allowlist"])
    except APIError as exc:
        request.tm.doom()
        request.response.status = exc.status
        return agent_page(request, key_values=values, key_error=exc.message)
    log.info("dock_key_created_by_agent", extra={"user_id": user.id, "key_id": key.key_id})
    return agent_page(request, created=key, secret=secret)


@view_config(route_name="account.agent.key.revoke", request_method="POST", permission="account")
def revoke_key(request):
    user = _agent_or_403(request)
    key = find_key(request.db, request.matchdict.get("key_id"), lock=True)
    if key is None or key.user_id != user.id:
        raise HTTPNotFound()
    manage.revoke(request, key)
    request.session.flash(request.localizer.translate(_("Key ${key} is revoked: requests signed with it are refused "
                                                        "from now on.", mapping={"key": key.key_id})), "info")
    return HTTPSeeOther(request.route_url("account.agent"))


# -- key exports -----------------------------------------------------------------------------------


def keys_txt(keys: list[dict]) -> str:
    """One key a line: the secret, or ``number<TAB>secret`` where the key has
    a number (the format ``kameng keys import`` and the admin's import read
    with a tab separator)."""
    return "".join((f"{k['number']}\t{k['secret']}" if k.get("number") else k["secret"]) + "\r\n" for k in keys)


def keys_csv(order, keys: list[dict]) -> str:
    """A spreadsheet of the keys; a cell that a spreadsheet would read as a
    formula (starting with = + - @) gets a leading ``'``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["n", "order_no", "sku", "number", "secret"])
    for n, k in enumerate(keys, 1):
        writer.writerow([csv_cell(v) for v in (n, order.order_no, order.sku_code, k.get("number") or "",
                                                k["secret"])])
    return "\ufeff" + buf.getvalue()


@view_config(route_name="order.keys", request_method="GET")
def export_keys(request):
    from kameng.storefront.orders import viewable_order

    fmt = request.matchdict.get("fmt")
    if fmt not in FORMATS:
        raise HTTPNotFound()
    order = viewable_order(request)
    keys = service.keys_of(request, order) if order.status == states.DELIVERED else []
    if not keys:
        raise HTTPNotFound()
    if fmt == "txt":
        resp = Response(body=keys_txt(keys).encode("utf-8"), content_type="text/plain", charset="utf-8")
    else:
        resp = Response(body=keys_csv(order, keys).encode("utf-8"), content_type="text/csv", charset="utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="{order.order_no}-keys.{fmt}"'
    resp.headers["Cache-Control"] = NO_STORE
    resp.headers["X-Content-Type-Options"] = "nosniff"
    actor = request.user.email if request.user is not None else "buyer"
    audit.record(request.db, actor, "order.keys_export", order.order_no, format=fmt, count=len(keys))
    log.info("order_keys_exported", extra={"order_no": order.order_no, "format": fmt, "count": len(keys)})
    return resp
