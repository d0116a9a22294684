"""The captcha's routes and the admin pages (risk log, blacklist test,
purchase limits). While the plugin is disabled the core answers 404 here."""
from __future__ import annotations

import datetime as dt
import math

from pyramid.csrf import check_csrf_origin, check_csrf_token
from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.renderers import render
from pyramid.response import Response
from pyramid.view import view_config
from sqlalchemy import func, select

from kameng import audit
from kameng.catalog.models import Product
from kameng.db import utcnow
from kameng.errors import json_error
from kameng.i18n import _

from kameng_antifraud import backends, blacklist, captcha, config, risklog
from kameng_antifraud.models import ProductLimit, RiskEvent

PAGE_SIZE = 50
NO_STORE = "no-store, max-age=0"


def _no_store(request) -> None:
    def header(_request, response):
        response.headers["Cache-Control"] = NO_STORE

    request.add_response_callback(header)


def _clean(value, limit: int = 254) -> str:
    """Text from a query or a form: no NUL (PostgreSQL refuses it), bounded."""
    return value.replace("\x00", "").strip()[:limit] if isinstance(value, str) else ""


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


# -- the captcha -----------------------------------------------------------------------------------


def captcha_field(request, cfg) -> str:
    """The captcha input for a storefront form (a ``form.*`` slot)."""
    cid = captcha.new_challenge(request, cfg)
    _no_store(request)  # the page holds a one-use challenge: never cached
    return render("kameng_antifraud:templates/captcha_field.pt",
                  {"cid": cid, "image_url": request.route_url("antifraud.captcha.image", id=cid) if cid else "",
                   "length": captcha.LENGTH}, request=request)


def _csrf_with_session(view):
    """API callers without the shop's session cookie need no CSRF token; a
    request riding on the session sends it (form field ``csrf_token`` or
    header ``X-CSRF-Token``), as for the rest of the API, and over HTTPS
    comes from the shop's own origin (the core's check for every form)."""

    def wrapper(context, request):
        if "kameng_session" in request.cookies and not request.authorization:
            check_csrf_origin(request, raises=True)
            check_csrf_token(request, token="csrf_token", header="X-CSRF-Token", raises=True)
        return view(context, request)

    return wrapper


@view_config(route_name="antifraud.captcha.new", request_method="POST", renderer="json", require_csrf=False,
             decorator=_csrf_with_session)
def new_captcha(request):
    """``{"id", "image_url", "expires_in"}`` for API callers."""
    cfg = config.read(request)
    cid = captcha.new_challenge(request, cfg)
    _no_store(request)
    if cid is None:
        from kameng.ratelimit import set_retry_after

        set_retry_after(request, 60)
        return json_error(request, 429, "rate_limited",
                          _("Too many captcha pictures from your address. Wait a minute and try again."))
    return {"id": cid, "image_url": request.route_url("antifraud.captcha.image", id=cid),
            "expires_in": captcha.TTL_SECONDS}


@view_config(route_name="antifraud.captcha.image", request_method="GET")
def captcha_image(request):
    answer = captcha.answer_of(request, config.read(request), request.matchdict.get("id"))
    if answer is None:
        raise HTTPNotFound()
    resp = Response(body=captcha.draw(answer), content_type="image/png")
    resp.headers["Cache-Control"] = NO_STORE
    return resp


# -- admin: the risk log -----------------------------------------------------------------------------

ACTIONS = ("order", "coupon", "login", "register", "lookup", "password_reset")
ACTION_LABELS = {"order": _("Order"), "coupon": _("Coupon"), "login": _("Sign-in"), "register": _("Registration"),
                 "lookup": _("Order lookup"), "password_reset": _("Password reset")}
RULES = ("blacklist", "watchlist", "captcha", *config.LIMITS, *config.CAPS, "product_limit")
VERDICT_LABELS = {"deny": _("Refused"), "review": _("Held for review")}
RULE_LABELS = {"blacklist": _("Blacklist"), "watchlist": _("Watchlist"), "captcha": _("Captcha"),
               "max_unpaid_per_contact": _("Unpaid orders per contact"),
               "max_unpaid_per_ip": _("Unpaid orders per IP address"), "product_limit": _("Purchase limit")}
RULE_LABELS.update({f.name: f.label for f in config.SETTINGS if f.name in config.LIMITS})


def _parse_date(value):
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


@view_config(route_name="antifraud.log", request_method="GET", permission="admin",
             renderer="kameng_antifraud:templates/log.pt")
def log_page(request):
    params = request.GET
    f = {"action": _clean(params.get("action"), 20), "rule": _clean(params.get("rule"), 64),
         "verdict": _clean(params.get("verdict"), 10), "ip": _clean(params.get("ip"), 64),
         "contact": _clean(params.get("contact")), "from": _clean(params.get("from"), 10),
         "to": _clean(params.get("to"), 10)}
    stmt = select(RiskEvent)
    if f["action"] in ACTIONS:
        stmt = stmt.where(RiskEvent.action == f["action"])
    if f["rule"] in RULES:
        stmt = stmt.where(RiskEvent.rule == f["rule"])
    if f["verdict"] in VERDICT_LABELS:
        stmt = stmt.where(RiskEvent.verdict == f["verdict"])
    if f["ip"]:
        if f["ip"].endswith("*"):
            prefix = f["ip"][:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(RiskEvent.ip.like(prefix + "%", escape="\\"))
        else:
            stmt = stmt.where(RiskEvent.ip == f["ip"])
    if f["contact"]:
        stmt = stmt.where(RiskEvent.contact_hash == risklog.contact_hash(request, f["contact"]))
    start, end = _parse_date(f["from"]), _parse_date(f["to"])
    if start:
        stmt = stmt.where(RiskEvent.created_at >= dt.datetime.combine(start, dt.time(), dt.timezone.utc))
    if end:
        stmt = stmt.where(RiskEvent.created_at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time(),
                                                                      dt.timezone.utc))
    db = request.db
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    pages = max(1, math.ceil(total / PAGE_SIZE))
    try:
        page = min(max(int(params.get("page", 1)), 1), pages)
    except (TypeError, ValueError):
        page = 1
    rows = db.scalars(stmt.order_by(RiskEvent.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    query = {k: v for k, v in f.items() if v}

    def url(n):
        return request.route_url("antifraud.log", _query={**query, "page": n})

    cfg = config.read(request)
    return {"rows": rows, "filters": f, "active": bool(query), "total": total, "when": _when,
            "pager": {"page": page, "pages": pages, "prev": url(page - 1) if page > 1 else None,
                      "next": url(page + 1) if page < pages else None},
            "actions": ACTIONS, "action_labels": ACTION_LABELS, "rules": RULES, "rule_labels": RULE_LABELS, "verdict_labels": VERDICT_LABELS,
            "backend": backends.describe(request, cfg), "retention": cfg.log_retention_days}


# -- admin: would this be blocked? ---------------------------------------------------------------------


@view_config(route_name="antifraud.test", request_method="GET", permission="admin",
             renderer="kameng_antifraud:templates/test.pt")
def test_page(request):
    """Checks a contact and an address against the lists as they are saved.
    A GET form: it changes nothing."""
    cfg = config.read(request)
    contact, ip = _clean(request.GET.get("contact")), _clean(request.GET.get("ip"), 64)
    results = None
    ip_error = False
    if contact or ip:
        if ip and blacklist.client_ip(ip) is None:
            ip_error = True
        emails, phones = blacklist.split_contact(contact)
        results = []
        for name, label, entries in (("blacklist", _("Blacklist"), cfg.blacklist),
                                     ("watchlist", _("Watchlist"), cfg.watchlist)):
            entry = blacklist.match(entries, emails=emails, phones=phones, ip=ip or None)
            results.append({"list": name, "label": label, "entry": entry,
                            "kind": blacklist.KIND_LABELS.get(entry.kind) if entry else None})
    return {"contact": contact, "ip": ip, "results": results, "ip_error": ip_error,
            "counts": {"blacklist": len(cfg.blacklist), "watchlist": len(cfg.watchlist)},
            "unusable_contact": bool(contact) and not any(blacklist.split_contact(contact)),
            "settings_url": request.route_url("admin.plugin", id=config.PLUGIN_ID)}


# -- admin: purchase limits per product ---------------------------------------------------------------


def _limits_page(request, error=None, values=None, status=200):
    db = request.db
    rows = db.execute(select(ProductLimit, Product).join(Product, Product.id == ProductLimit.product_id)
                      .order_by(Product.name, Product.id)).all()
    products = db.execute(select(Product.id, Product.name).where(Product.archived.is_(False))
                          .order_by(Product.name, Product.id)).all()
    request.response.status = status
    return {"rows": rows, "products": products, "error": error, "values": values or {}, "when": _when}


@view_config(route_name="antifraud.limits", request_method="GET", permission="admin",
             renderer="kameng_antifraud:templates/limits.pt")
def limits_page(request):
    return _limits_page(request)


def _whole(value, low: int, high: int):
    value = _clean(value, 12)
    if not value.isdigit():
        return None
    n = int(value)
    return n if low <= n <= high else None


@view_config(route_name="antifraud.limits", request_method="POST", permission="admin",
             renderer="kameng_antifraud:templates/limits.pt")
def save_limit(request):
    """Set (or replace) a product's limit."""
    form = request.POST
    values = {k: _clean(form.get(k), 12) for k in ("product_id", "max_quantity", "window_days")}
    product_id = _whole(form.get("product_id"), 1, 2**31 - 1)
    product = request.db.get(Product, product_id) if product_id else None
    max_quantity = _whole(form.get("max_quantity"), 1, 1_000_000)
    window_days = _whole(form.get("window_days") or "0", 0, 3650)
    if product is None:
        return _limits_page(request, _("Choose a product."), values, 422)
    if max_quantity is None:
        return _limits_page(request, _("The most per buyer must be a whole number from 1 to 1000000."), values, 422)
    if window_days is None:
        return _limits_page(request, _("The period must be a whole number of days from 0 (ever) to 3650."),
                            values, 422)
    db = request.db
    limit = db.scalar(select(ProductLimit).where(ProductLimit.product_id == product.id).with_for_update())
    if limit is None:
        limit = ProductLimit(product_id=product.id, max_quantity=max_quantity, window_days=window_days)
        db.add(limit)
    else:
        limit.max_quantity, limit.window_days = max_quantity, window_days
        limit.updated_at = utcnow()
    audit.record(db, audit.actor_of(request), "antifraud.limit.save", str(product.id),
                 max_quantity=max_quantity, window_days=window_days)
    db.flush()
    request.session.flash(request.localizer.translate(
        _("Saved the purchase limit of ${name}.", mapping={"name": product.name})), "info")
    return HTTPFound(request.route_url("antifraud.limits"))


@view_config(route_name="antifraud.limit.delete", request_method="POST", permission="admin")
def delete_limit(request):
    try:
        limit_id = int(request.matchdict["id"])
    except (TypeError, ValueError):
        raise HTTPNotFound() from None
    db = request.db
    limit = db.get(ProductLimit, limit_id) if 0 < limit_id < 2**31 else None
    if limit is None:
        raise HTTPNotFound()
    audit.record(db, audit.actor_of(request), "antifraud.limit.delete", str(limit.product_id))
    db.delete(limit)
    db.flush()
    request.session.flash(request.localizer.translate(_("Removed the purchase limit.")), "info")
    return HTTPFound(request.route_url("antifraud.limits"))
