"""A buyer's own pages: registering, the account overview, the profile,
the order history and the balance; and finding a guest order again
(``/query``)."""
from __future__ import annotations

import re
import unicodedata

from pyramid.httpexceptions import HTTPFound, HTTPSeeOther
from pyramid.renderers import get_renderer
from pyramid.security import remember
from pyramid.view import view_config
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from kameng import accounts, notifications, risk, wallet
from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import format_minor
from kameng.orders import access, service, states
from kameng.orders.checkout import normalize_contact
from kameng.orders.models import Order
from kameng.payments.service import available_gateways
from kameng.security import SESSION_VERSION
from kameng.storefront.views import LOGIN_LOCKED, safe_next
from kameng.theming import tpl

PAGE_SIZE = 20
RECENT = 5
LOOKUP_LIST = 10  # orders one contact lookup shows at most
NAME_LENGTH = 100  # users.display_name


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

BAD_PHONE = _("Enter a phone number of 6 to 15 digits, with an optional + in front, or leave it empty.")
PHONE_TAKEN = _("This phone number belongs to another account.")
ACCOUNT_EXISTS = _("An account with this email already exists. Sign in instead.")


def read_phone(raw: str) -> tuple[str | None, object]:
    """``(phone or None, error or None)`` from an optional phone input."""
    raw = raw.strip()
    if not raw:
        return None, None
    try:
        return accounts.normalize_phone(raw), None
    except accounts.AccountError:
        return None, BAD_PHONE


def _register_error(db, email: str, phone: str | None, password: str, again: str):
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
        return ACCOUNT_EXISTS
    if phone is not None and accounts.user_by_phone(db, phone) is not None:
        return PHONE_TAKEN
    return None


def create_buyer(request, email: str, password: str, phone: str | None):
    """The new buyer account, with the plugins told
    (``kameng_user_registered``) and ``account.registered`` emitted; a
    plugin's :class:`APIError` refuses it and nothing is written."""
    db = request.db
    try:
        with db.begin_nested():
            user = accounts.create_user(db, email, password, role="buyer", phone=phone)
            request.hooks.kameng_user_registered(request=request, user=user)
            notifications.emit(db, "account.registered", {"user_id": user.id, "to": user.email})
    except (IntegrityError, accounts.AccountError):
        # the same email or phone, registered by another request since the form's checks
        request.tm.doom()
        raise APIError(409, "account_exists",
                       _("An account with this email or phone number already exists.")) from None
    except APIError:
        request.tm.doom()
        raise
    return user


@view_config(route_name="register", renderer=tpl("storefront/register.pt"))
def register(request):
    next_url = request.params.get("next", "")[:500]
    if request.user is not None:
        return HTTPFound(safe_next(request, next_url, request.route_url("account")))
    form = {"email": "", "phone": "", "error": None}
    if request.method == "POST":
        email = request.POST.get("email", "").replace("\x00", "").strip()[:254]
        form["phone"] = request.POST.get("phone", "").replace("\x00", "").strip()[:30]
        password = request.POST.get("password", "")[:200]
        form["email"] = email
        phone, form["error"] = read_phone(form["phone"])
        try:
            # asked first: an anti-fraud plugin counts every attempt, a mistyped one too
            subject = {"email": email, **({"phone": phone or form["phone"]} if form["phone"] else {})}
            risk.check(request, "register", **subject)
            if form["error"] is None:
                form["error"] = _register_error(request.db, email, phone, password,
                                                request.POST.get("password2", "")[:200])
            if form["error"] is None:
                user = create_buyer(request, email, password, phone)
                held = list(request.session.get(access.SESSION_ORDERS, []))  # guest orders of this browser
                headers = remember(request, user.id)
                if held:
                    request.session[access.SESSION_ORDERS] = held
                request.session.flash(request.localizer.translate(_("Welcome! Your account is ready.")), "info")
                return HTTPFound(safe_next(request, next_url, request.route_url("account")), headers=headers)
            request.response.status = 400
        except APIError as exc:
            form["error"] = exc.message
            request.response.status = exc.status
    return {"form": form, "next": next_url}


# -- the account ---------------------------------------------------------------------------------


def _orders_of(db, user, limit: int, offset: int = 0, status: str = "", number: str = "") -> list[Order]:
    stmt = select(Order).where(Order.user_id == user.id)
    if status:
        stmt = stmt.where(Order.status == status)
    if number:
        stmt = stmt.where(Order.order_no.contains(number, autoescape=True))
    return list(db.scalars(stmt.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit).offset(offset)))


@view_config(route_name="account", renderer=tpl("storefront/account.pt"), permission="account")
def account(request):
    user, currency = request.user, request.shop["currency"]
    count = request.db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user.id)) or 0
    return {"user": user, "balance": money(wallet.balance(request.db, user.id), currency), "count": count,
            "orders": [order_row(request, o) for o in _orders_of(request.db, user, RECENT)], "account_nav": _nav()}


@view_config(route_name="account.orders", renderer=tpl("storefront/account_orders.pt"), permission="account")
def account_orders(request):
    """The buyer's orders, newest first, a page at a time; filtered by
    status and by (part of) the order number."""
    user, page = request.user, page_number(request)
    status = request.params.get("status", "")
    status = status if status in states.STATUSES else ""
    number = re.sub(r"[^0-9]", "", request.params.get("q", ""))[:24]
    rows = _orders_of(request.db, user, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE, status=status, number=number)
    kept = {k: v for k, v in (("status", status), ("q", number)) if v}

    def page_url(n):
        return request.route_url("account.orders", _query={**kept, "page": n})

    return {"orders": [order_row(request, o) for o in rows[:PAGE_SIZE]], "page": page, "account_nav": _nav(),
            "status": status, "q": number, "filtered": bool(kept),
            "statuses": [(s, states.LABELS[s]) for s in states.STATUSES],
            "prev_url": page_url(page - 1) if page > 1 else None,
            "next_url": page_url(page + 1) if len(rows) > PAGE_SIZE else None}


# -- the profile ---------------------------------------------------------------------------------


def clean_name(raw: str) -> str:
    """A display name: one line, no control characters, at most 100 characters."""
    text = " ".join(raw.split())  # tabs and line breaks are spaces
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Co", "Cs"))
    return " ".join(text.split())[:NAME_LENGTH]


def _save_profile(request, user) -> object | None:
    """The display name and the phone from the form; an error message, or None."""
    post = request.POST
    phone, error = read_phone(post.get("phone", "").replace("\x00", "")[:30])
    if error is not None:
        return error
    if phone is not None and phone != user.phone:
        other = accounts.user_by_phone(request.db, phone)
        if other is not None and other.id != user.id:
            return PHONE_TAKEN
    try:
        with request.db.begin_nested():
            user.display_name = clean_name(post.get("display_name", "")[:500])
            user.phone = phone
            request.db.flush()
    except IntegrityError:  # taken a moment ago
        request.tm.doom()
        return PHONE_TAKEN
    return None


def _change_password(request, user) -> tuple[int, object] | None:
    """A new password, the current one confirming it; ``(status, message)``
    for a refusal. Every other device is signed out, this one stays."""
    post = request.POST
    current, new = post.get("current_password", "")[:200], post.get("new_password", "")[:200]
    try:
        accounts.check_password_strength(new)
    except accounts.AccountError:
        return 400, _("Choose a password of at least 10 characters.")
    if new != post.get("new_password2", "")[:200]:
        return 400, _("The two passwords differ.")
    settings = request.registry.settings
    # wrong current passwords count like wrong sign-ins: a borrowed session cannot guess it
    result = accounts.authenticate(request.db, user.email, current,
                                   max_failures=int(settings["kameng.login.max_failures"]),
                                   lockout_minutes=int(settings["kameng.login.lockout_minutes"]),
                                   engine=request.registry["kameng.write_engine"], sign_in=False)
    if result.locked_until is not None:
        return 429, LOGIN_LOCKED
    if not result.ok:
        return 400, _("The current password is wrong.")
    user.set_password(new)
    request.session[SESSION_VERSION] = user.session_version  # this session goes on
    return None


@view_config(route_name="account.profile", renderer=tpl("storefront/account_profile.pt"), permission="account")
def profile(request):
    """The display name and phone number, and changing the password; the
    email is shown, not changed."""
    user = request.user
    form = {"display_name": user.display_name, "phone": user.phone or "", "error": None, "password_error": None}
    if request.method == "POST":
        if request.POST.get("form") == "password":
            refusal = _change_password(request, user)
            if refusal is None:
                request.session.flash(request.localizer.translate(
                    _("Your password is changed. Every other device is signed out.")), "info")
                return HTTPSeeOther(request.route_url("account.profile"))
            request.response.status, form["password_error"] = refusal
        else:
            form["display_name"] = clean_name(request.POST.get("display_name", "")[:500])
            form["phone"] = request.POST.get("phone", "").replace("\x00", "").strip()[:30]
            form["error"] = _save_profile(request, user)
            if form["error"] is None:
                request.session.flash(request.localizer.translate(_("Your profile is saved.")), "info")
                return HTTPSeeOther(request.route_url("account.profile"))
            request.response.status = 400
    return {"user": user, "form": form, "account_nav": _nav()}


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
    risk.check(request, "lookup", order_no=number)
    order = service.get(request.db, number)
    if order is None:
        access.check_password(request, number, None, password)  # an unknown number counts as a guess too
        return None
    return order if access.can_view(request, order, password=password) else None


def _lookup_contact(request, contact: str, password: str) -> list[Order]:
    """The newest orders of a contact whose own query password matches;
    one lookup against the limit however many there are."""
    risk.check(request, "lookup", contact=normalize_contact(contact))
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
        except APIError as exc:  # too many lookups, or refused by an anti-fraud plugin
            form["error"] = exc.message
            request.response.status = exc.status
    return {"form": form, "found": [order_row(request, o) for o in found] if found else None}
