"""Who may see an order, and the core's limits on order creation and lookup.

An order opens for: an admin; its owner (session or token); whoever holds
its access token (the buyer's page polls with it); the browser session that
created it or looked it up; and anyone with its query password. Everything
else answers as if the order did not exist (404), so order numbers cannot
be probed.
"""
from __future__ import annotations

from kameng import passwords, ratelimit
from kameng.errors import APIError
from kameng.i18n import _
from kameng.orders.checkout import check_access_token

SESSION_ORDERS = "orders"
SESSION_MAX = 20  # orders a browser session remembers


def remember_order(request, order_no: str) -> None:
    """Let this browser session open the order without a password."""
    held = [n for n in request.session.get(SESSION_ORDERS, []) if n != order_no]
    request.session[SESSION_ORDERS] = (held + [order_no])[-SESSION_MAX:]


def in_session(request, order_no: str) -> bool:
    return order_no in request.session.get(SESSION_ORDERS, [])


def is_owner(request, order) -> bool:
    user = request.user
    return user is not None and (user.is_admin or (order.user_id is not None and order.user_id == user.id))


def can_view(request, order, token=None, password=None) -> bool:
    """Token, owner and session first (cheap); the query password last."""
    if order is None:
        return False
    if is_owner(request, order) or check_access_token(request, order.order_no, token):
        return True
    if in_session(request, order.order_no):
        return True
    if password:
        check_lookup_limit(request)
        return bool(order.query_password_hash) and passwords.verify_password(str(password)[:64],
                                                                              order.query_password_hash)
    return False


def _limit(request, name: str) -> int:
    try:
        return int(request.registry.settings.get(f"kameng.limits.{name}", 0))
    except ValueError:
        return 0


def _hit(request, name: str) -> bool:
    engine = request.registry["kameng.write_engine"]
    return ratelimit.hit(engine, f"{name}:{request.client_addr or '-'}", _limit(request, name))


def check_lookup_limit(request) -> None:
    if not _hit(request, "lookups_per_ip_per_minute"):
        raise APIError(429, "rate_limited", _("Too many order lookups from your address. Wait a minute and try "
                                              "again."))


def check_order_limit(request) -> None:
    if not _hit(request, "orders_per_ip_per_minute"):
        raise APIError(429, "rate_limited", _("Too many orders from your address. Wait a minute and try again."))
