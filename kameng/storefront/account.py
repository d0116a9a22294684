"""A buyer's own pages: registering, the account overview, the order
history and the balance; and finding a guest order again (``/query``)."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound, HTTPSeeOther
from pyramid.renderers import get_renderer
from pyramid.security import remember
from pyramid.view import view_config
from sqlalchemy import func, select

from kameng import accounts, wallet
from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import format_minor
from kameng.orders import access, service, states
from kameng.orders.checkout import normalize_contact
from kameng.orders.models import Order
from kameng.payments.service import available_gateways
from kameng.storefront.views import safe_next
from kameng.theming import tpl

PAGE_SIZE = 20
RECENT = 5
LOOKUP_LIST = 10  # orders one contact lookup shows at most


def money(minor: int, currency: str) -> str:
    return f"{currency} {format_minor(minor, currency)}"


def order_row(request, order: Order) -> dict:
    return {"no": order.order_no, "url": request.route_url("order", order_no=order.order_no),
            "name": f"{order.product_name} {order.sku_name}".strip(), "quantity": order.quantity,
            "amount": money(order.amount, order.currency), "status": order.status,
            "label": states.LABELS.get(order.status, order.status),
            "created": order.created_at.strftime("%Y-%m-%d %H:%M")}


def _nav():
    return get_renderer(tpl("storefront/account_nav.pt")).implementation()


def page_number(request) -> int:
    raw = request.params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 10_000 else 1


# -- registering ---------------------------------------------------------------------------------


def _register_error(db, email: str, password: str, again: str):
    try:
        accounts.normalize_email(email)
    except accounts.AccountError:
        return _("Enter a valid email address.")
    try:
        accounts.check_password_strength(password)
    except accounts.AccountError:
        return _("Choose a password of at least 10 characters.")
    if password != again:
        return _("The two passwords differ.")
    if accounts.find_user(db, email) is not None:
        return _("An account with this email already exists. Sign in instead.")
    return None


@view_config(route_name="register", renderer=tpl("storefront/register.pt"))
def register(request):
    next_url = request.params.get("next", "")[:500]
    if request.user is not None:
        return HTTPFound(safe_next(request, next_url, request.route_url("account")))
    form = {"email": "", "error": None}
    if request.method == "POST":
        email = request.POST.get("email", "").strip()[:254]
        password = request.POST.get("password", "")[:200]
        form["email"] = email
        form["error"] = _register_error(request.db, email, password, request.POST.get("password2", "")[:200])
        if form["error"] is None:
            user = accounts.create_user(request.db, email, password, role="buyer")
            held = list(request.session.get(access.SESSION_ORDERS, []))  # guest orders of this browser
            headers = remember(request, user.id)
            if held:
                request.session[access.SESSION_ORDERS] = held
            request.session.flash(request.localizer.translate(_("Welcome! Your account is ready.")), "info")
            return HTTPFound(safe_next(request, next_url, request.route_url("account")), headers=headers)
        request.response.status = 400
    return {"form": form, "next": next_url}


# -- the account ---------------------------------------------------------------------------------


def _orders_of(db, user, limit: int, offset: int = 0) -> list[Order]:
    return list(db.scalars(select(Order).where(Order.user_id == user.id)
                           .order_by(Order.created_at.desc(), Order.id.desc()).limit(limit).offset(offset)))


@view_config(route_name="account", renderer=tpl("storefront/account.pt"), permission="account")
def account(request):
    user, currency = request.user, request.shop["currency"]
    count = request.db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user.id)) or 0
    return {"user": user, "balance": money(wallet.balance(request.db, user.id), currency), "count": count,
            "orders": [order_row(request, o) for o in _orders_of(request.db, user, RECENT)], "account_nav": _nav()}


@view_config(route_name="account.orders", renderer=tpl("storefront/account_orders.pt"), permission="account")
def account_orders(request):
    user, page = request.user, page_number(request)
    rows = _orders_of(request.db, user, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    return {"orders": [order_row(request, o) for o in rows[:PAGE_SIZE]], "page": page, "account_nav": _nav(),
            "prev_url": request.route_url("account.orders", _query={"page": page - 1}) if page > 1 else None,
            "next_url": (request.route_url("account.orders", _query={"page": page + 1})
                         if len(rows) > PAGE_SIZE else None)}


@view_config(route_name="account.balance", renderer=tpl("storefront/account_balance.pt"), permission="account")
def account_balance(request):
    user, page, currency = request.user, page_number(request), request.shop["currency"]
    entries = wallet.entries(request.db, user.id, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return {
        "balance": money(wallet.balance(request.db, user.id), currency),
        "entries": [{"at": e.created_at.strftime("%Y-%m-%d %H:%M"), "reason": wallet.REASONS.get(e.reason, e.reason),
                     "amount": money(e.amount, e.currency), "credit": e.amount > 0,
                     "after": money(e.balance_after, e.currency), "note": e.note,
                     "url": (request.route_url("order", order_no=e.note)
                             if e.reason in ("order", "refund") and e.note.isdigit() else None)}
                    for e in entries[:PAGE_SIZE]],
        "page": page, "account_nav": _nav(), "topup_error": None, "topup_amount": "",
        "gateways": [{"id": g.identifier, "name": g.public_name or g.identifier, "is_test": g.is_test}
                     for g in available_gateways(request)],
        "prev_url": request.route_url("account.balance", _query={"page": page - 1}) if page > 1 else None,
        "next_url": request.route_url("account.balance", _query={"page": page + 1})
        if len(entries) > PAGE_SIZE else None,
    }


# -- finding an order again ----------------------------------------------------------------------

NOT_FOUND = _("No order matches what you entered. Check the details and try again.")


def _lookup_number(request, number: str, password: str):
    order = service.get(request.db, number)
    if order is None:
        access.check_password(request, number, None, password)  # an unknown number counts as a guess too
        return None
    return order if access.can_view(request, order, password=password) else None


def _lookup_contact(request, contact: str, password: str) -> list[Order]:
    """The newest orders of a contact whose own query password matches;
    one lookup against the limit however many there are."""
    candidates = request.db.scalars(
        select(Order).where(Order.contact.in_({contact, contact.lower(), normalize_contact(contact)}),
                            Order.query_password_hash != "")
        .order_by(Order.created_at.desc(), Order.id.desc()).limit(LOOKUP_LIST))
    return access.check_contact_password(request, contact, candidates, password)


@view_config(route_name="lookup", renderer=tpl("storefront/lookup.pt"))
def lookup(request):
    form = {"by": "number", "order_no": "", "contact": "", "error": None}
    found = None
    if request.method == "POST":
        post = request.POST
        form["by"] = "contact" if post.get("by") == "contact" else "number"
        password = post.get("query_password", "")[:64]
        try:
            if form["by"] == "number":
                form["order_no"] = "".join(post.get("order_no", "").split())[:24]
                order = _lookup_number(request, form["order_no"], password) if password else None
                if order is not None:
                    access.remember_order(request, order.order_no)
                    return HTTPSeeOther(request.route_url("order", order_no=order.order_no))
            else:
                # PostgreSQL refuses NUL in text, even in a WHERE clause
                form["contact"] = post.get("contact", "").replace("\x00", "").strip()[:254]
                found = _lookup_contact(request, form["contact"], password) if form["contact"] and password else []
                for order in reversed(found):
                    access.remember_order(request, order.order_no)
            if not found:
                form["error"] = NOT_FOUND
                request.response.status = 404
        except APIError as exc:  # too many lookups
            form["error"] = exc.message
            request.response.status = exc.status
    return {"form": form, "found": [order_row(request, o) for o in found] if found else None}
