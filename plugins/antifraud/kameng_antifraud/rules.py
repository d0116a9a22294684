"""The checks behind the risk hooks.

An order (``kameng_risk_check_order``) goes through, in this order:

1. the blacklist (contact, the account's email and phone, the address): 403 ``blocked``;
2. the captcha, when ``order`` (or ``coupon``, for an order naming a coupon) needs one: 400 ``captcha_required``;
3. the rate limits (per address, contact and account): 429 ``rate_limited``;
4. the caps on unpaid orders (per contact or account, and per address): 429 ``rate_limited``,
   ``Retry-After`` until the first of them expires;
5. the product's purchase limit per buyer: 403 ``blocked``;
6. the watchlist: the order is accepted and held for review.

Another action (``kameng_risk_check``: login, register, lookup,
password_reset, coupon) goes through the blacklist (the address for every
action; the email address and phone number for register and coupon), its
captcha and its rate limit.

Every refusal and review is written to the risk log. Nothing here writes
to the request's transaction.
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import and_, func, or_, select

from kameng.catalog.models import Sku
from kameng.db import utcnow
from kameng.i18n import _
from kameng.orders import states
from kameng.orders.models import Order
from kameng.types import RiskVerdict

from kameng_antifraud import backends, blacklist, captcha, config, risklog
from kameng_antifraud.models import ProductLimit

log = logging.getLogger(__name__)

MISTAKE = _("Contact the shop if you think this is a mistake.")
BLOCKED = {
    ("order", "email"): _("Orders with this email address are not accepted. Contact the shop if you think this "
                          "is a mistake."),
    ("order", "phone"): _("Orders with this phone number are not accepted. Contact the shop if you think this is "
                          "a mistake."),
    ("order", "ip"): _("Orders from your network are not accepted. Contact the shop if you think this is a "
                       "mistake."),
    ("register", "email"): _("Accounts cannot be created with this email address. Contact the shop if you think "
                             "this is a mistake."),
    ("register", "phone"): _("Accounts cannot be created with this phone number. Contact the shop if you think "
                             "this is a mistake."),
    ("register", "ip"): _("Accounts cannot be created from your network. Contact the shop if you think this is a "
                          "mistake."),
    ("other", "ip"): _("Requests from your network are not accepted. Contact the shop if you think this is a "
                       "mistake."),
}
CAPTCHA_MISSING = _("Type the characters shown in the picture.")
CAPTCHA_WRONG = _("The characters did not match the picture, or it expired. Type the ones in the new picture.")
TOO_MANY = {
    "orders_per_ip_per_minute": _("Too many orders from your address. Wait a minute and try again."),
    "orders_per_contact_per_hour": _("Too many orders for this contact. Try again later."),
    "orders_per_account_per_hour": _("Too many orders from your account. Try again later."),
    "lookups_per_ip_per_minute": _("Too many order lookups from your address. Wait a minute and try again."),
    "logins_per_ip_per_minute": _("Too many sign-in attempts from your address. Wait a minute and try again."),
    "registrations_per_ip_per_hour": _("Too many new accounts from your address. Try again later."),
    "password_resets_per_ip_per_hour": _("Too many password reset requests from your address. Try again later."),
    "coupon_attempts_per_ip_per_minute": _("Too many coupon attempts from your address. Wait a minute and try "
                                           "again."),
}
UNPAID = {
    "max_unpaid_per_contact": _("You already have unpaid orders waiting. Pay for them, or wait until they expire, "
                                "before you place another one."),
    "max_unpaid_per_ip": _("There are too many unpaid orders from your address. Pay for them, or wait until they "
                           "expire, before you place another one."),
}
#: the rate limit of each action of ``kameng_risk_check``
ACTION_LIMITS = {"login": "logins_per_ip_per_minute", "register": "registrations_per_ip_per_hour",
                 "lookup": "lookups_per_ip_per_minute", "password_reset": "password_resets_per_ip_per_hour",
                 "coupon": "coupon_attempts_per_ip_per_minute"}
#: statuses whose units count against a purchase limit (a pending order only until it expires)
BOUGHT = (states.PAID, states.DELIVERING, states.DELIVERED)


class Refusal(Exception):
    def __init__(self, verdict: RiskVerdict, rule: str, detail: str = ""):
        super().__init__(rule)
        self.verdict, self.rule, self.detail = verdict, rule, detail


def _deny(code: str, message, rule: str, detail: str = "", retry_after: int = 0) -> Refusal:
    reason = f"antifraud: {rule}" + (f" {detail}" if detail else "")
    return Refusal(RiskVerdict(action="deny", code=code, user_message=message, reasons=(reason,),
                               retry_after=retry_after, score=100), rule, detail)


class Check:
    """The checks of one request."""

    def __init__(self, request, action: str, ip: str, contact: str = "", user_id=None):
        self.request, self.action, self.ip = request, action, (ip or "")[:64]
        self.contact, self.user_id = contact or "", user_id
        self.cfg = config.read(request)
        self._counters = None

    @property
    def counters(self):
        if self._counters is None:
            self._counters = backends.counters(self.request, self.cfg)
        return self._counters

    # -- the rules -----------------------------------------------------------------------------------

    def blacklist(self, emails=(), phones=()) -> None:
        if not self.cfg.blacklist:
            return
        entry = blacklist.match(self.cfg.blacklist, emails=emails, phones=phones, ip=self.ip)
        if entry is None:
            return
        kind = "order" if self.action in ("order", "coupon") else "register" if self.action == "register" else "other"
        message = BLOCKED.get((kind, entry.subject)) or BLOCKED[("other", "ip")]
        raise _deny("blocked", message, "blacklist", entry.describe())

    def captcha(self, needed: bool) -> None:
        if not needed:
            return
        result = captcha.verify(self.request, self.cfg)
        if result == captcha.OK:
            return
        raise _deny("captcha_required", CAPTCHA_MISSING if result == captcha.MISSING else CAPTCHA_WRONG,
                    "captcha", result)

    def limits(self, buckets) -> None:
        """``buckets``: ``(setting, key)``; every one counts, the longest wait wins."""
        over = []
        for setting, key in buckets:
            limit = self.cfg.limits.get(setting, 0)
            if limit <= 0 or not key:
                continue
            window = config.LIMITS[setting][0]
            wait = self.counters.hit(f"{setting}:{key}", limit, window)
            if wait:
                over.append((wait, setting))
        if over:
            wait, setting = max(over)
            raise _deny("rate_limited", TOO_MANY[setting], setting, f"limit {self.cfg.limits[setting]}",
                        retry_after=wait)

    # -- the log ---------------------------------------------------------------------------------------

    def log(self, verdict: RiskVerdict, rule: str, detail: str = "") -> None:
        risklog.record(self.request, action=self.action, verdict=verdict.action, code=verdict.code, rule=rule,
                       ip=self.ip, contact=self.contact, user_id=self.user_id, detail=detail,
                       counters=self.counters)


def _contact_key(request, contact: str) -> str:
    """A counter key for a contact: its keyed hash (the same for every
    spelling of it), so no address is stored in the clear."""
    return risklog.contact_hash(request, contact)[:40]


# -- orders ----------------------------------------------------------------------------------------


def _unpaid(db, where, now) -> tuple[int, dt.datetime | None]:
    row = db.execute(select(func.count(Order.id), func.min(Order.expires_at))
                     .where(Order.status == states.PENDING, Order.expires_at > now, where)).one()
    return row[0] or 0, row[1]


def _wait_until(when, now) -> int:
    if when is None:
        return 60
    return max(1, int((when - now).total_seconds() + 0.999))


def _buyer_filter(contact: str, user):
    conds = []
    normal = risklog.normalize_contact(contact)
    if normal:
        conds.append(func.lower(Order.contact) == normal)
    if user is not None:
        conds.append(Order.user_id == user.id)
    return or_(*conds) if conds else None


def unpaid_caps(check: Check, draft) -> None:
    db, now = check.request.db, utcnow()
    cap = check.cfg.caps["max_unpaid_per_contact"]
    buyer = _buyer_filter(draft.contact, draft.user)
    if cap > 0 and buyer is not None:
        count, first = _unpaid(db, buyer, now)
        if count >= cap:
            raise _deny("rate_limited", UNPAID["max_unpaid_per_contact"], "max_unpaid_per_contact",
                        f"{count} unpaid, cap {cap}", retry_after=_wait_until(first, now))
    cap = check.cfg.caps["max_unpaid_per_ip"]
    if cap > 0 and check.ip:
        count, first = _unpaid(db, Order.client_ip == check.ip, now)
        if count >= cap:
            raise _deny("rate_limited", UNPAID["max_unpaid_per_ip"], "max_unpaid_per_ip",
                        f"{count} unpaid, cap {cap}", retry_after=_wait_until(first, now))


def bought(db, product_id: int, contact: str, user, window_days: int, now=None) -> int:
    """Units of the product this buyer has in paid, delivered and unexpired
    unpaid orders (within ``window_days``; 0: ever)."""
    now = now or utcnow()
    buyer = _buyer_filter(contact, user)
    if buyer is None:
        return 0
    stmt = (select(func.coalesce(func.sum(Order.quantity), 0))
            .where(Order.sku_id.in_(select(Sku.id).where(Sku.product_id == product_id)),
                   Order.product_id == product_id, buyer,
                   or_(Order.status.in_(BOUGHT), and_(Order.status == states.PENDING, Order.expires_at > now))))
    if window_days > 0:
        stmt = stmt.where(Order.created_at >= now - dt.timedelta(days=window_days))
    return int(db.scalar(stmt) or 0)


def product_limit(check: Check, draft) -> None:
    db = check.request.db
    limit = db.scalar(select(ProductLimit).where(ProductLimit.product_id == draft.product.id))
    if limit is None or limit.max_quantity <= 0:
        return
    had = bought(db, draft.product.id, draft.contact, draft.user, limit.window_days)
    if had + draft.quantity <= limit.max_quantity:
        return
    left = max(0, limit.max_quantity - had)
    mapping = {"max": limit.max_quantity, "days": limit.window_days, "left": left}
    if limit.window_days > 0:
        message = (_("This product is limited to ${max} per buyer every ${days} days. You can order ${left} more "
                     "now.", mapping=mapping) if left else
                   _("This product is limited to ${max} per buyer every ${days} days, and you have reached it.",
                     mapping=mapping))
    else:
        message = (_("This product is limited to ${max} per buyer. You can order ${left} more.", mapping=mapping)
                   if left else _("This product is limited to ${max} per buyer, and you have reached it.",
                                  mapping=mapping))
    raise _deny("blocked", message, "product_limit", f"product {draft.product.id}: {had} + {draft.quantity} > "
                                                     f"{limit.max_quantity}")


def check_order(request, draft) -> RiskVerdict | None:
    user = draft.user
    contact = draft.contact or (user.email if user is not None else "")
    check = Check(request, "order", draft.client_ip, contact, user.id if user is not None else None)
    cfg = check.cfg
    emails, phones = blacklist.split_contact(contact)
    if user is not None:
        emails.append(user.email or "")
        phones.append(getattr(user, "phone", None) or "")
    coupon = bool(draft.quote is not None and getattr(draft.quote, "coupon", ""))
    try:
        check.blacklist(emails, phones)
        check.captcha("order" in cfg.captcha or ("coupon" in cfg.captcha and coupon))
        check.limits([("orders_per_ip_per_minute", blacklist.ip_bucket(check.ip)),
                      ("orders_per_contact_per_hour", _contact_key(request, contact)),
                      ("orders_per_account_per_hour", str(user.id) if user is not None else "")])
        unpaid_caps(check, draft)
        product_limit(check, draft)
    except Refusal as refusal:
        check.log(refusal.verdict, refusal.rule, refusal.detail)
        return refusal.verdict
    if cfg.watchlist:
        entry = blacklist.match(cfg.watchlist, emails=emails, phones=phones, ip=check.ip)
        if entry is not None:
            verdict = RiskVerdict(action="review", reasons=(f"antifraud: watchlist {entry.describe()}",), score=50)
            check.log(verdict, "watchlist", entry.describe())
            return verdict
    return None


# -- other actions ----------------------------------------------------------------------------------


def check_action(request, action: str, subject: dict) -> RiskVerdict | None:
    if action not in ACTION_LIMITS:
        return None
    subject = subject or {}
    contact = str(subject.get("contact") or subject.get("email") or subject.get("phone") or "")[:254]
    check = Check(request, action, str(subject.get("ip") or request.remote_addr or ""), contact,
                  subject.get("user_id"))
    emails, phones = [], []
    if action in ("register", "coupon"):
        for value in (subject.get("email"), subject.get("phone"), subject.get("contact")):
            e, p = blacklist.split_contact(str(value or ""))
            emails += e
            phones += p
    try:
        check.blacklist(emails, phones)
        check.captcha(action in check.cfg.captcha)
        check.limits([(ACTION_LIMITS[action], blacklist.ip_bucket(check.ip))])
    except Refusal as refusal:
        check.log(refusal.verdict, refusal.rule, refusal.detail)
        return refusal.verdict
    return None
