"""Who may see an order, and the core's limits on order creation and lookup.

An order opens for: an admin; its owner (session or token); whoever holds
its access token (the buyer's page polls with it); the browser session that
created it or looked it up; and anyone with its query password. Everything
else answers as if the order did not exist (404), so order numbers cannot
be probed.
"""
from __future__ import annotations

from kameng import ratelimit
from kameng.i18n import _
from kameng.orders.checkout import check_access_token, normalize_contact
from kameng.orders.querypass import hash_query_password, verify_query_password

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
        return check_password(request, order.order_no, order, password)
    return False


# -- guessing query passwords ----------------------------------------------------------------------
#
# Every guess counts against the address (kameng.limits.lookups_per_ip_per_minute,
# right ones too: each costs an Argon2 hash). Wrong ones also count against
# the order: kameng.limits.lookup_failures_per_order of them lock its lookup
# for kameng.limits.lookup_lockout_minutes, when even the right password is
# refused. A number no order has is counted and locked alike, so the lock
# tells no one that an order exists. Lookups by contact count against the
# contact the same way, and never open an order whose lookup is locked.

ORDER_LOCKED = _("Too many wrong query passwords for this order. Its lookup is paused for a while; try again "
                 "later.")
CONTACT_LOCKED = _("Too many wrong query passwords for this contact. Lookups are paused for a while; try again "
                   "later.")
_dummy_hash: list[str] = []


def _lockout(request) -> tuple[int, int]:
    return (ratelimit.setting(request, "kameng.limits.lookup_failures_per_order"),
            60 * ratelimit.setting(request, "kameng.limits.lookup_lockout_minutes"))


def _engine(request):
    return request.registry["kameng.write_engine"]


def _could_be_order_no(order_no) -> bool:
    return isinstance(order_no, str) and order_no.isdigit() and len(order_no) <= 24


def _burn(request, password: str) -> None:
    """As long as checking a real order's query password."""
    keyring = request.registry["kameng.keyring"]
    if not _dummy_hash:
        _dummy_hash.append(hash_query_password(keyring, "not-a-query-password"))
    verify_query_password(keyring, password, _dummy_hash[0])


def check_password(request, order_no: str, order, password) -> bool:
    """Whether ``password`` is the query password of ``order`` (``None``:
    no order has the number ``order_no``). Raises the 429 ``rate_limited``
    over the address's limit, or while the number's lookup is locked."""
    check_lookup_limit(request)
    password = str(password)[:64]
    if not _could_be_order_no(order_no):
        return False
    engine, key = _engine(request), f"lookup:{order_no}"
    left = ratelimit.locked_for(engine, key)
    if left:
        raise ratelimit.refuse(request, ORDER_LOCKED, left)
    if order is not None and order.query_password_hash:
        if verify_query_password(request.registry["kameng.keyring"], password, order.query_password_hash):
            return True
    else:
        _burn(request, password)
    ratelimit.fail(engine, key, *_lockout(request))
    return False


def check_contact_password(request, contact: str, candidates, password: str) -> list:
    """The ones of ``candidates`` (the contact's orders) that ``password``
    opens, leaving out any whose lookup is locked. Counts as one guess
    against the address and, when none matches, one against the contact."""
    check_lookup_limit(request)
    engine, key = _engine(request), f"lookup-contact:{normalize_contact(contact).lower()[:254]}"
    left = ratelimit.locked_for(engine, key)
    if left:
        raise ratelimit.refuse(request, CONTACT_LOCKED, left)
    candidates = list(candidates)
    keyring = request.registry["kameng.keyring"]
    locked = ratelimit.locked_keys(engine, {f"lookup:{o.order_no}" for o in candidates})
    found = [o for o in candidates if f"lookup:{o.order_no}" not in locked and o.query_password_hash
             and verify_query_password(keyring, password, o.query_password_hash)]
    if not found:
        ratelimit.fail(engine, key, *_lockout(request))
    return found


def _limit(request, name: str) -> int:
    return ratelimit.setting(request, f"kameng.limits.{name}")


def _hit(request, name: str) -> bool:
    # REMOTE_ADDR, never client_addr: X-Forwarded-For is the buyer's to
    # write; waitress sets REMOTE_ADDR from it only for a trusted proxy
    return ratelimit.hit(_engine(request), f"{name}:{request.remote_addr or '-'}", _limit(request, name))


def check_lookup_limit(request) -> None:
    if not _hit(request, "lookups_per_ip_per_minute"):
        raise ratelimit.refuse(request, _("Too many order lookups from your address. Wait a minute and try "
                                          "again."), ratelimit.retry_after())


def check_order_limit(request) -> None:
    if not _hit(request, "orders_per_ip_per_minute"):
        raise ratelimit.refuse(request, _("Too many orders from your address. Wait a minute and try again."),
                               ratelimit.retry_after())
