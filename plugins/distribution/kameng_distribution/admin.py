"""The admin's distribution pages, under ``/-/distribution/admin/``:
overview (top earners), commissions, the withdrawal queue, per-product
rates, referrers, and one account's referral record."""
from __future__ import annotations

import math

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.renderers import get_renderer
from pyramid.view import view_config
from sqlalchemy import func, or_, select

from kameng import accounts, audit
from kameng.accounts import User
from kameng.catalog.models import Product
from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import format_minor
from kameng.types import SettingError

from kameng_distribution import config, ledger, members, service
from kameng_distribution.config import FULL, MAX_LEVELS
from kameng_distribution.models import PENDING, Commission, LedgerEntry, Member, ProductRate, Withdrawal
from kameng_distribution.views import STATUS_LABELS, clean

PAGE_SIZE = 50
T = "kameng_distribution:templates/"
WITHDRAWAL_STATUSES = ("pending", "paid_balance", "paid_manual", "rejected")
COMMISSION_STATUSES = ("credited", "partially_reversed", "reversed")


def fmt(minor, currency) -> str:
    return f"{currency} {format_minor(int(minor or 0), currency)}"


def when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _int(raw, default=None):
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else default


def pager(request, route, total, page, query) -> dict:
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(page or 1, 1), pages)

    def url(n):
        return request.route_url(route, _query={**{k: v for k, v in query.items() if v}, "page": n})

    return {"page": page, "pages": pages, "total": total,
            "prev": url(page - 1) if page > 1 else None, "next": url(page + 1) if page < pages else None}


def base(request, **values) -> dict:
    nav = get_renderer(T + "admin_nav.pt").implementation()
    return {"nav": nav, "fmt": fmt, "when": when, "currency": request.shop["currency"], "labels": STATUS_LABELS, **values}


def _emails(db, ids) -> dict:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return dict(db.execute(select(User.id, User.email).where(User.id.in_(ids))).all())


def find_account(db, text: str) -> User | None:
    """An account by email, by referral code, or by ``#id``."""
    text = (text or "").strip()
    if not text:
        return None
    if text.startswith("#"):
        uid = _int(text[1:])
        return db.get(User, uid) if uid is not None else None
    if "@" in text:
        return accounts.find_user(db, text)
    member = members.by_code(db, text)
    return db.get(User, member.user_id) if member is not None else None


# -- overview --------------------------------------------------------------------------------


@view_config(route_name="distribution.admin", request_method="GET", permission="admin",
             renderer=T + "admin_overview.pt")
def overview(request):
    db = request.db
    q = clean(request.GET.get("q"), 254)
    if q:
        user = find_account(db, q)
        if user is not None:
            return HTTPSeeOther(request.route_url("distribution.admin.user", id=user.id))
    net = func.sum(Commission.amount - Commission.reversed_amount)
    top = db.execute(select(Commission.beneficiary_id, net.label("net"), func.count().label("n"))
                     .group_by(Commission.beneficiary_id).order_by(net.desc(), Commission.beneficiary_id)
                     .limit(20)).all()
    ids = [row.beneficiary_id for row in top]
    direct = dict(db.execute(select(Member.referrer_id, func.count()).where(Member.referrer_id.in_(ids))
                             .group_by(Member.referrer_id)).all()) if ids else {}
    emails = _emails(db, ids)
    totals = db.execute(select(func.coalesce(func.sum(Commission.amount), 0),
                               func.coalesce(func.sum(Commission.reversed_amount), 0))).one()
    pending = db.execute(select(func.count(), func.coalesce(func.sum(Withdrawal.amount), 0))
                         .where(Withdrawal.status == PENDING)).one()
    paid = db.scalar(select(func.coalesce(func.sum(Withdrawal.net), 0))
                     .where(Withdrawal.status.in_(("paid_balance", "paid_manual")))) or 0
    bound = db.scalar(select(func.count()).select_from(Member).where(Member.referrer_id.is_not(None))) or 0
    rows = [{"user_id": r.beneficiary_id, "email": emails.get(r.beneficiary_id, f"#{r.beneficiary_id}"),
             "net": int(r.net or 0), "orders": r.n, "direct": direct.get(r.beneficiary_id, 0),
             "balance": ledger.balance(db, r.beneficiary_id)} for r in top]
    cfg = config.read(request)
    return base(request, rows=rows, credited=int(totals[0]), reversed=int(totals[1]), pending_count=pending[0],
                pending_amount=int(pending[1]), paid=int(paid), bound=bound, q=q, not_found=bool(q),
                levels=cfg.levels, rates=[config.format_percent(r) for r in cfg.rates[:cfg.levels]])


# -- commissions -----------------------------------------------------------------------------


@view_config(route_name="distribution.admin.commissions", request_method="GET", permission="admin",
             renderer=T + "admin_commissions.pt")
def commissions(request):
    db, params = request.db, request.GET
    status = params.get("status", "") if params.get("status", "") in COMMISSION_STATUSES else ""
    level = _int(params.get("level"))
    level = level if level in (1, 2, 3) else None
    q = clean(params.get("q"), 254)
    stmt = select(Commission)
    if status:
        stmt = stmt.where(Commission.status == status)
    if level:
        stmt = stmt.where(Commission.level == level)
    if q:
        user = find_account(db, q)
        conditions = [Commission.order_no == q.replace(" ", "")]
        if user is not None:
            conditions += [Commission.beneficiary_id == user.id, Commission.buyer_id == user.id]
        stmt = stmt.where(or_(*conditions))
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    query = {"status": status, "level": str(level or ""), "q": q}
    pg = pager(request, "distribution.admin.commissions", total, _int(params.get("page"), 1), query)
    rows = db.scalars(stmt.order_by(Commission.id.desc()).offset((pg["page"] - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    emails = _emails(db, [c.beneficiary_id for c in rows] + [c.buyer_id for c in rows])
    return base(request, rows=rows, emails=emails, pager=pg, status=status, level=level, q=q,
                statuses=COMMISSION_STATUSES, pct=config.format_percent)


# -- withdrawals -----------------------------------------------------------------------------


@view_config(route_name="distribution.admin.withdrawals", request_method="GET", permission="admin",
             renderer=T + "admin_withdrawals.pt")
def withdrawals(request):
    db, params = request.db, request.GET
    status = params.get("status", PENDING)
    status = status if status in WITHDRAWAL_STATUSES or status == "all" else PENDING
    stmt = select(Withdrawal)
    if status != "all":
        stmt = stmt.where(Withdrawal.status == status)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    pg = pager(request, "distribution.admin.withdrawals", total, _int(params.get("page"), 1), {"status": status})
    order = Withdrawal.id.asc() if status == PENDING else Withdrawal.id.desc()  # the queue: oldest first
    rows = db.scalars(stmt.order_by(order).offset((pg["page"] - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    return base(request, rows=rows, emails=_emails(db, [w.user_id for w in rows]), pager=pg, status=status,
                statuses=WITHDRAWAL_STATUSES, balances={w.user_id: ledger.balance(db, w.user_id) for w in rows})


@view_config(route_name="distribution.admin.withdrawal", request_method="POST", permission="admin")
def decide_withdrawal(request):
    no, action = request.matchdict["no"], request.matchdict["action"]
    if action not in service.ACTIONS:
        raise HTTPNotFound()
    note = clean(request.POST.get("note"), 255)
    try:
        withdrawal = service.decide(request, no, action, note, audit.actor_of(request))
    except APIError as exc:
        if exc.status == 404:
            raise HTTPNotFound() from None
        request.session.flash(request.localizer.translate(exc.message), "error")
    else:
        messages = {"approve_balance": _("Withdrawal ${no}: ${net} paid to the account's balance."),
                    "paid_manual": _("Withdrawal ${no} recorded as paid by hand."),
                    "reject": _("Withdrawal ${no} rejected; the amount went back to the commission balance.")}
        request.session.flash(request.localizer.translate(_(messages[action], mapping={
            "no": withdrawal.withdrawal_no, "net": fmt(withdrawal.net, withdrawal.currency)})), "info")
    return HTTPSeeOther(request.route_url("distribution.admin.withdrawals"))


# -- per-product rates -----------------------------------------------------------------------


def _rate_field(raw: str, name: str):
    raw = (raw or "").strip()
    return None if raw == "" else config.parse_percent(raw, name)


@view_config(route_name="distribution.admin.rates", permission="admin", renderer=T + "admin_rates.pt")
def rates(request):
    db = request.db
    cfg = config.read(request)
    error, values = None, {}
    if request.method == "POST":
        values = {k: clean(request.POST.get(k), 8) for k in ("product_id", "rate_1", "rate_2", "rate_3")}
        try:
            saved = save_rates(request, values, cfg)
        except SettingError as exc:
            error = exc
            request.response.status = 422
        else:
            request.session.flash(request.localizer.translate(
                _("Rates of ${product} saved.", mapping={"product": saved}) if saved else _("Rates removed.")),
                "info")
            return HTTPSeeOther(request.route_url("distribution.admin.rates"))
    overrides = db.execute(select(ProductRate, Product.name).join(Product, Product.id == ProductRate.product_id)
                           .order_by(Product.name)).all()
    products = db.execute(select(Product.id, Product.name).where(Product.archived.is_(False))
                          .order_by(Product.name)).all()
    return base(request, overrides=overrides, products=products, error=error, values=values,
                global_rates=[config.format_percent(r) for r in cfg.rates], levels=cfg.levels,
                pct=config.format_percent)


def save_rates(request, values: dict, cfg: config.Config) -> str:
    """Set (or, all blank, remove) a product's own rates. Each 0–100; with
    the global rates of the levels left blank, those in use add up to at
    most 100."""
    db = request.db
    product = db.get(Product, _int(values.get("product_id"))) if _int(values.get("product_id")) else None
    if product is None:
        raise SettingError("product_id", _("Choose a product."))
    own = [_rate_field(values.get(f"rate_{n}"), f"rate_{n}") for n in range(1, MAX_LEVELS + 1)]
    effective = [o if o is not None else cfg.rates[n] for n, o in enumerate(own)]
    if sum(effective[:cfg.levels]) > FULL:
        raise SettingError("rate_1", _("the rates of the levels in use add up to more than 100"))
    row = db.get(ProductRate, product.id)
    actor = audit.actor_of(request)
    if all(o is None for o in own):
        if row is not None:
            db.delete(row)
        audit.record(db, actor, "distribution.rates.remove", f"product:{product.id}")
        return ""
    if row is None:
        row = ProductRate(product_id=product.id)
        db.add(row)
    row.rate_1, row.rate_2, row.rate_3 = own
    row.updated_by = actor[:254]
    audit.record(db, actor, "distribution.rates.set", f"product:{product.id}",
                 rates=[config.format_percent(o) for o in own])
    db.flush()
    return product.name


# -- referrers -------------------------------------------------------------------------------


@view_config(route_name="distribution.admin.referrers", permission="admin", renderer=T + "admin_referrers.pt")
def referrers(request):
    db = request.db
    error, values = None, {}
    if request.method == "POST":
        values = {k: clean(request.POST.get(k), 254) for k in ("account", "referrer")}
        try:
            user = change_referrer(request, values["account"], values["referrer"])
        except APIError as exc:
            error = exc.message
            request.response.status = exc.status
        else:
            request.session.flash(request.localizer.translate(
                _("The referrer of ${email} is changed.", mapping={"email": user.email})), "info")
            back = request.POST.get("back") == "user"
            return HTTPSeeOther(request.route_url("distribution.admin.user", id=user.id) if back
                                else request.route_url("distribution.admin.referrers"))
    recent = db.scalars(select(Member).where(Member.referrer_id.is_not(None))
                        .order_by(Member.bound_at.desc(), Member.user_id.desc()).limit(PAGE_SIZE)).all()
    emails = _emails(db, [m.user_id for m in recent] + [m.referrer_id for m in recent])
    return base(request, recent=recent, emails=emails, error=error, values=values,
                via_labels={"cookie": _("Link"), "form": _("Code typed"), "admin": _("Admin")})


def change_referrer(request, account: str, referrer: str) -> User:
    db = request.db
    user = find_account(db, account)
    if user is None:
        raise APIError(404, "unknown_account", _("No account matches ${what}.", mapping={"what": account or "—"}))
    target = None
    if referrer.strip():
        target = find_account(db, referrer)
        if target is None:
            raise APIError(404, "unknown_referrer", _("No account matches ${what}.", mapping={"what": referrer}))
        if target.id == user.id:
            raise APIError(422, "self_referral", _("An account cannot be its own referrer."))
    before = members.get(db, user.id)
    old = before.referrer_id if before is not None else None
    if not members.set_referrer(db, user.id, target.id if target else None):
        raise APIError(422, "referral_loop", _("That referrer is below this account in its own chain: it would "
                                               "make a loop."))
    audit.record(db, audit.actor_of(request), "distribution.referrer", f"user:{user.id}",
                 old=old, new=target.id if target else None)
    return user


# -- one account -----------------------------------------------------------------------------


@view_config(route_name="distribution.admin.user", request_method="GET", permission="admin",
             renderer=T + "admin_user.pt")
def user_page(request):
    db = request.db
    user = db.get(User, _int(request.matchdict.get("id"), 0))
    if user is None:
        raise HTTPNotFound()
    cfg = config.read(request)
    member = members.get(db, user.id)
    up = members.chain(db, user.id, MAX_LEVELS)
    emails = _emails(db, up)
    rows = db.scalars(select(Commission).where(Commission.beneficiary_id == user.id)
                      .order_by(Commission.id.desc()).limit(PAGE_SIZE)).all()
    entries = db.scalars(select(LedgerEntry).where(LedgerEntry.user_id == user.id)
                         .order_by(LedgerEntry.seq.desc()).limit(PAGE_SIZE)).all()
    wds = db.scalars(select(Withdrawal).where(Withdrawal.user_id == user.id)
                     .order_by(Withdrawal.id.desc()).limit(PAGE_SIZE)).all()
    below = []
    for n in range(1, MAX_LEVELS + 1):
        ids = members.level_ids(user.id, n)
        below += [{"level": n, "id": u.id, "email": u.email}
                  for u in db.scalars(select(User).where(User.id.in_(ids)).order_by(User.id.desc()).limit(PAGE_SIZE))]
    return base(request, user=user, member=member, chain=[(uid, emails.get(uid, f"#{uid}")) for uid in up],
                commissions=rows, entries=entries, withdrawals=wds, below=below,
                counts=members.counts(db, user.id, MAX_LEVELS), levels=cfg.levels,
                balance=ledger.balance(db, user.id), kinds=ledger.KINDS, pct=config.format_percent)
