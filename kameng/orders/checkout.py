"""Order creation: validate, price, reserve and record in one transaction.

Every refusal is an :class:`~kameng.errors.APIError` raised before anything
is written, or raised after and rolled back by the request's transaction:
nothing is ever half-written.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass, field

from pyramid_retry import mark_error_retryable
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from kameng.catalog import recharge
from kameng.catalog.models import Product, Sku
from kameng.catalog.service import CODE as SKU_CODE
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.i18n import _
from kameng.inventory import service as inventory
from kameng.money import MAX_MINOR
from kameng import risk
from kameng.orders import pricing, states
from kameng.orders.models import Order
from kameng.orders.querypass import hash_query_password

log = logging.getLogger(__name__)

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}\Z")
PHONE = re.compile(r"^\+?[0-9]{6,15}\Z")
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{8,128}\Z")
#: card keys stay reserved this much longer than the order, so the order's
#: own expiry (which also returns coupons) always runs first
RESERVATION_GRACE = dt.timedelta(minutes=10)


class RetryOrder(Exception):
    """Another request with the same idempotency key committed first: run
    the request again and it finds that order."""


mark_error_retryable(RetryOrder)


def new_order_no() -> str:
    """20 digits: the time for sorting, then 8 random digits."""
    return utcnow().strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(10 ** 8):08d}"


def _access_key(request) -> bytes:
    secret = request.registry.settings["kameng.session_secret"]
    return hashlib.sha256(b"kameng-order-access\0" + secret.encode()).digest()


def access_token(request, order_no: str) -> str:
    """The order's capability token (256-bit HMAC of its number): whoever
    holds it may read the order. Derived, so it is never stored."""
    return hmac.new(_access_key(request), order_no.encode(), hashlib.sha256).hexdigest()


def check_access_token(request, order_no: str, token) -> bool:
    return isinstance(token, str) and len(token) == 64 and hmac.compare_digest(access_token(request, order_no),
                                                                               token)


@dataclass
class OrderRequest:
    """What a buyer asks for, from the API body or the checkout form."""

    sku: str
    quantity: object
    contact: str = ""
    query_password: str = ""
    payment_method: str = ""
    channel: str | None = None
    recharge: dict = field(default_factory=dict)
    coupon: str = ""
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """What "the same request" means for idempotency."""
        body = {"sku": self.sku, "quantity": self.quantity, "contact": self.contact,
                "query_password": self.query_password, "payment_method": self.payment_method,
                "channel": self.channel, "recharge": self.recharge, "coupon": self.coupon}
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


@dataclass
class Draft:
    """An order about to be created, as anti-fraud plugins see it
    (``kameng_risk_check_order``)."""

    product: Product
    sku: Sku
    quantity: int
    contact: str
    user: object | None
    client_ip: str
    payment_method: str
    recharge: dict
    quote: pricing.Quote | None = None


def _invalid(code: str, message, status: int = 422, **extra) -> APIError:
    return APIError(status, code, message, **extra)


def parse_quantity(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _invalid("invalid_quantity", _("The quantity must be a whole number."))
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,6}", value.strip()):
            raise _invalid("invalid_quantity", _("The quantity must be a whole number."))
        value = int(value)
    return value


def find_sku(db, code) -> tuple[Product, Sku]:
    # a code that no SKU can have is not looked up (PostgreSQL refuses NUL in text)
    if not isinstance(code, str) or not SKU_CODE.match(code):
        raise _invalid("unknown_sku", _("There is no such product option."), status=404)
    row = db.execute(select(Sku, Product).join(Product, Sku.product_id == Product.id)
                     .where(Sku.code == code)).first()
    if row is None or not (row.Product.visible and not row.Product.archived and row.Sku.visible):
        raise _invalid("unknown_sku", _("There is no such product option."), status=404)
    return row.Product, row.Sku


#: ``kameng.orders.agent_max_quantity`` when the setting is absent
AGENT_MAX_QUANTITY = 1000


def agent_max_quantity(request) -> int:
    """The most one order of an agent may have (``kameng.orders.agent_max_quantity``; 0: no more than a buyer)."""
    try:
        value = int(request.registry.settings.get("kameng.orders.agent_max_quantity", AGENT_MAX_QUANTITY))
    except (TypeError, ValueError):
        value = AGENT_MAX_QUANTITY
    return max(0, min(value, 999_999))


def max_quantity(request, sku: Sku, user=None) -> int:
    """The most one order of ``sku`` may have for ``user``: the SKU's own
    limit; for an agent (bulk purchase) the larger of it and
    ``kameng.orders.agent_max_quantity``."""
    high = sku.max_quantity
    if user is not None and getattr(user, "role", None) == "agent":
        high = max(high, agent_max_quantity(request))
    return high


def check_quantity(sku: Sku, quantity: int, high: int | None = None) -> None:
    """``quantity`` within the SKU's limits (``high``: another maximum, :func:`max_quantity`)."""
    high = sku.max_quantity if high is None else high
    if not sku.min_quantity <= quantity <= high:
        raise _invalid("invalid_quantity", _("Order between ${min} and ${max} of this option.",
                                             mapping={"min": sku.min_quantity, "max": high}),
                       min_quantity=sku.min_quantity, max_quantity=high)


def normalize_contact(contact) -> str:
    """The form a contact is stored and looked up in: trimmed; a phone
    number without spaces and dashes (so "138 0013 8000" finds 13800138000)."""
    contact = contact.strip() if isinstance(contact, str) else ""
    compact = contact.replace(" ", "").replace("-", "")
    return compact if PHONE.match(compact) else contact


def check_contact(contact, user) -> str:
    contact = normalize_contact(contact)
    if not contact and user is not None:
        return user.email
    if not (EMAIL.match(contact) or PHONE.match(contact)) or len(contact) > 254 or "\x00" in contact:
        raise _invalid("invalid_contact", _("Enter an email address or a phone number, so that you can find "
                                            "this order again."))
    return contact


def check_query_password(password, user) -> str:
    if user is not None and not password:
        return ""
    if not isinstance(password, str) or not 4 <= len(password) <= 64:
        raise _invalid("invalid_query_password", _("Choose a query password of 4 to 64 characters; you need "
                                                   "it to look this order up."))
    return password


def check_recharge(product: Product, values) -> dict:
    if product.type != "direct_recharge":
        return {}
    try:
        return recharge.validate(recharge.parse_spec(product.recharge_fields), values)
    except recharge.RechargeError as exc:
        raise _invalid("invalid_recharge_account", exc.message, field=exc.field) from None


def check_payment_method(request, method, channel, user) -> None:
    from kameng.payments.service import get_gateway

    if method == "balance":
        if user is None:
            raise _invalid("payment_method_unavailable", _("Sign in to pay with your balance."))
        return
    gateway = get_gateway(request, method) if isinstance(method, str) else None
    if gateway is None:
        raise _invalid("payment_method_unavailable", _("This payment method is not available."))
    if channel is not None and (not isinstance(channel, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", channel)
                                or channel not in {code for code, _label in gateway.channels()}):
        raise _invalid("payment_method_unavailable", _("This payment channel is not available."))


#: kept for plugins written against 0.1: :func:`kameng.risk.fold`
risk_verdict = risk.fold


def check_coupon_attempt(request, coupon: str, contact: str, user) -> None:
    """Ask the anti-fraud hooks about a coupon attempt (guessing codes is
    limited like logins), once per request and code: a checkout whose
    refusal re-renders its page is one attempt, not two."""
    asked = request.__dict__.setdefault("_kameng_coupons_asked", set())
    if not coupon or coupon in asked:
        return
    asked.add(coupon)
    risk.check(request, "coupon", coupon=coupon, contact=contact, user_id=user.id if user is not None else None)


def applied_coupon(q: pricing.Quote) -> bool:
    """Whether an adjustment took the coupon code the buyer entered."""
    wanted = q.coupon.casefold()
    return any((a.code or "").casefold() == wanted for a in q.adjustments)


def scoped_key(user, key) -> str | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str) or not IDEMPOTENCY_KEY.match(key):
        raise _invalid("invalid_request", _("The Idempotency-Key must be 8 to 128 letters, digits or -_.:"),
                       status=400)
    return f"{'u%d' % user.id if user is not None else 'g'}:{key}"


def replayed(db, scoped: str | None, fingerprint: str) -> Order | None:
    """The order an earlier request with this key created, or None; a
    different request under the same key is a 409."""
    if scoped is None:
        return None
    order = db.scalar(select(Order).where(Order.idempotency_key == scoped))
    if order is not None and not hmac.compare_digest(order.request_hash, fingerprint):
        raise _invalid("idempotency_conflict", _("This Idempotency-Key was used for a different order."),
                       status=409)
    return order


def expiry_minutes(request) -> int:
    return max(int(request.registry.settings.get("kameng.orders.expire_minutes", 15)), 1)


def take_counted_stock(db, sku: Sku, quantity: int) -> None:
    """For goods without card keys but with a stock count: take it atomically."""
    res = db.execute(update(Sku).where(Sku.id == sku.id, Sku.stock >= quantity)
                     .values(stock=Sku.stock - quantity).execution_options(synchronize_session=False))
    if res.rowcount != 1:
        raise _invalid("out_of_stock", _("Sorry, this option is sold out."), status=409)


def out_of_stock() -> APIError:
    return _invalid("out_of_stock", _("Sorry, not enough left in stock for this order."), status=409)


#: ``session.info`` key: ids of the orders this transaction created (they have no payment attempt yet)
NEW_ORDERS = "kameng.new_orders"


def create_order(request, req: OrderRequest, user=None) -> tuple[Order, bool]:
    """Create an order (and reserve its stock) in the request's transaction.
    Returns ``(order, replayed)``; ``replayed`` is True when the
    idempotency key named an order created before."""
    db = request.db
    scoped = scoped_key(user, req.idempotency_key)
    fingerprint = req.fingerprint()
    query_password = check_query_password(req.query_password, user)
    # a keyed hash (kameng.orders.querypass), made before the first statement
    password_hash = hash_query_password(request.registry["kameng.keyring"], query_password) if query_password else ""
    earlier = replayed(db, scoped, fingerprint)
    if earlier is not None:
        return earlier, True
    product, sku = find_sku(db, req.sku)
    quantity = parse_quantity(req.quantity)
    high = max_quantity(request, sku, user)
    check_quantity(sku, quantity, high)
    if sku.stock is not None and sku.stock < quantity:
        raise out_of_stock()
    recharge_values = check_recharge(product, req.recharge)
    contact = check_contact(req.contact, user)
    check_payment_method(request, req.payment_method, req.channel, user)
    client_ip = (request.remote_addr or "")[:64]
    coupon = req.coupon.strip()[:64] if isinstance(req.coupon, str) else ""
    check_coupon_attempt(request, coupon, contact, user)
    q = pricing.quote(request, product, sku, quantity, user=user, coupon=coupon, contact=contact)
    if coupon and not applied_coupon(q):
        # a code no enabled plugin honours: never charge the full price silently
        raise _invalid("coupon_unavailable", _("This coupon cannot be used for this order."), status=409)
    if max(q.subtotal, q.amount) > MAX_MINOR:
        # the order's amounts must fit the database's INTEGER columns: fewer units do
        top = min(high, MAX_MINOR // max(q.unit_price, 1))
        raise _invalid("invalid_quantity", _("Order between ${min} and ${max} of this option.",
                                             mapping={"min": sku.min_quantity, "max": top}),
                       min_quantity=sku.min_quantity, max_quantity=top)
    if q.amount <= 0:
        # never hand goods over for nothing because discounts added up (SECURITY.md #36)
        raise _invalid("invalid_amount", _("The discounts leave nothing to pay; this order cannot be placed."))
    draft = Draft(product=product, sku=sku, quantity=quantity, contact=contact, user=user, client_ip=client_ip,
                  payment_method=req.payment_method, recharge=recharge_values, quote=q)
    verdict = risk.fold(request.hooks.kameng_risk_check_order(request=request, draft=draft))
    if verdict.action == "deny":
        log.info("order_blocked", extra={"reasons": list(verdict.reasons)[:5], "code": verdict.code or "blocked"})
        if not verdict.user_message and verdict.code in ("", "blocked"):
            verdict = risk.RiskVerdict(action="deny", code="blocked", user_message=_(
                "This order cannot be placed. Contact the shop if you think this is a mistake."))
        raise risk.refusal(request, verdict)
    from kameng.suppliers.service import binding_for_sku

    # a SKU a supplier fulfils holds no keys here: its stock is the count the sync keeps
    upstream = binding_for_sku(db, sku.id) is not None
    now = utcnow()
    order = Order(order_no=new_order_no(), status=states.PENDING, user_id=user.id if user is not None else None,
                  fulfilment="upstream" if upstream else "stock",
                  contact=contact, query_password_hash=password_hash,
                  product_id=product.id, sku_id=sku.id, product_type=product.type, product_name=product.name[:200],
                  sku_code=sku.code, sku_name=sku.name[:200], quantity=quantity, unit_price=q.unit_price,
                  subtotal=q.subtotal, discount=q.subtotal - q.amount, amount=q.amount, currency=q.currency,
                  pricing=json.dumps(q.steps, ensure_ascii=False), recharge=json.dumps(recharge_values,
                                                                                      ensure_ascii=False),
                  payment_method=req.payment_method, channel=req.channel, idempotency_key=scoped,
                  request_hash=fingerprint, held="; ".join(verdict.reasons)[:255] if verdict.action == "review" else "",
                  client_ip=client_ip, created_at=now, updated_at=now,
                  expires_at=now + dt.timedelta(minutes=expiry_minutes(request)))
    keyed = product.type == "card_key" and not upstream
    if user is not None and req.payment_method == "balance" and db.get_bind().dialect.name in ("mysql", "mariadb"):
        # InnoDB: the order insert takes a shared lock on the user row (the
        # foreign key) that the wallet's exclusive lock would then wait on,
        # against a twin order doing the same: take the wallet's lock first
        from kameng.accounts import User

        db.execute(select(User.id).where(User.id == user.id).with_for_update())
    if (keyed or sku.stock is not None) and db.get_bind().dialect.name in ("mysql", "mariadb"):
        # InnoDB: inserting the order takes a shared lock on its SKU row (the
        # foreign key), and the stock update below needs an exclusive one; two
        # buyers of one SKU holding the shared lock deadlock (tests/test_order_races.py
        # saw a fifth of 100 buyers fail). Take the exclusive lock first: they queue.
        # PostgreSQL's foreign-key lock (KEY SHARE) does not block the update.
        db.execute(select(Sku.id).where(Sku.id == sku.id).with_for_update())
    try:
        with db.begin_nested():
            db.add(order)
            db.flush()
    except IntegrityError:
        if scoped is not None and db.scalar(select(Order.id).where(Order.idempotency_key == scoped)) is not None:
            return replayed(db, scoped, fingerprint), True
        raise RetryOrder() from None  # a concurrent twin (or an order number clash): try again
    db.info.setdefault(NEW_ORDERS, set()).add(order.id)
    if keyed:
        try:
            inventory.reserve(db, sku.id, quantity, order.order_no, order.expires_at + RESERVATION_GRACE)
        except inventory.OutOfStock:
            raise out_of_stock() from None
    elif sku.stock is not None:
        take_counted_stock(db, sku, quantity)
        order.stock_held = quantity
    states.note(db, order, "created", _("Order placed"), actor=_actor(request, user))
    if q.adjustments:
        request.hooks.kameng_adjustments_committed(request=request, order=order, adjustments=q.adjustments)
    request.hooks.kameng_order_created(request=request, order=order)
    log.info("order_created", extra={"order_no": order.order_no, "sku": sku.code, "quantity": quantity})
    return order, False


def _actor(request, user) -> str:
    if user is not None:
        return user.email
    return "buyer"
