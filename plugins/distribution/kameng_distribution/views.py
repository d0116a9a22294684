"""The referrer's own pages: ``/-/distribution/`` (link, code, referrals,
commissions, balance, ledger, withdrawals) and the landing link
``/-/distribution/r/{code}``. While the plugin is disabled the core answers
404 here by itself."""
from __future__ import annotations

import re

from pyramid.httpexceptions import HTTPFound, HTTPSeeOther
from pyramid.view import view_config
from sqlalchemy import func, select

from kameng.errors import APIError
from kameng.i18n import _
from kameng.money import format_minor

from kameng_distribution import capture, config, ledger, members, service
from kameng_distribution.models import Commission, Withdrawal

TEMPLATE = "kameng_distribution:templates/referrer.pt"
LIST = 50

STATUS_LABELS = {
    "credited": _("Credited"), "partially_reversed": _("Partly reversed"), "reversed": _("Reversed"),
    "pending": _("Pending"), "paid_balance": _("Paid to balance"), "paid_manual": _("Paid"),
    "rejected": _("Rejected"),
}


@view_config(route_name="distribution.landing", request_method="GET")
def landing(request):
    """A referral link: remember the code and go to the home page."""
    response = HTTPFound(request.route_url("home"))
    referrer = members.by_code(request.db, request.matchdict.get("code"))
    if referrer is not None:
        capture.set_cookie(request, response, referrer.code)
    return response


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(raw, limit: int) -> str:
    """A form value as text: control characters (NUL, which PostgreSQL
    refuses even in a WHERE clause) dropped, stripped, at most ``limit``."""
    return _CONTROL.sub("", raw if isinstance(raw, str) else "").strip()[:limit]


def _money(minor: int, currency: str) -> str:
    return f"{currency} {format_minor(minor, currency)}"


def page(request, withdraw_error=None, form=None) -> dict:
    db, user = request.db, request.user
    cfg = config.read(request)
    currency = request.shop["currency"]
    member = members.ensure(db, user.id)
    counts = members.counts(db, user.id, cfg.levels)
    commissions = db.scalars(select(Commission).where(Commission.beneficiary_id == user.id)
                             .order_by(Commission.id.desc()).limit(LIST)).all()
    earned = db.scalar(select(func.coalesce(func.sum(Commission.amount - Commission.reversed_amount), 0))
                       .where(Commission.beneficiary_id == user.id)) or 0
    withdrawals = db.scalars(select(Withdrawal).where(Withdrawal.user_id == user.id)
                             .order_by(Withdrawal.id.desc()).limit(LIST)).all()
    balance = ledger.balance(db, user.id)
    return {
        "code": member.code,
        "link": request.public_url("home", _query={"ref": member.code}),
        "short_link": request.public_url("distribution.landing", code=member.code),
        "levels": cfg.levels,
        "rates": [config.format_percent(r) for r in cfg.rates[:cfg.levels]],
        "counts": counts,
        "referrals": members.referrals(db, user.id, cfg.levels, limit=LIST),
        "commissions": [{"order_no": c.order_no, "level": c.level, "amount": _money(c.amount, c.currency),
                         "reversed": _money(c.reversed_amount, c.currency) if c.reversed_amount else "",
                         "status": c.status, "label": STATUS_LABELS.get(c.status, c.status),
                         "at": c.created_at.strftime("%Y-%m-%d %H:%M")} for c in commissions],
        "earned": _money(int(earned), currency),
        "balance": _money(balance, currency),
        "negative": balance < 0,
        "entries": [{"at": e.created_at.strftime("%Y-%m-%d %H:%M"), "kind": ledger.KINDS.get(e.kind, e.kind),
                     "amount": _money(e.amount, e.currency), "credit": e.amount > 0,
                     "after": _money(e.balance_after, e.currency), "note": e.note}
                    for e in ledger.entries(db, user.id, limit=LIST)],
        "withdrawals": [{"no": w.withdrawal_no, "amount": _money(w.amount, w.currency),
                         "fee": _money(w.fee, w.currency), "net": _money(w.net, w.currency), "status": w.status,
                         "label": STATUS_LABELS.get(w.status, w.status), "note": w.note,
                         "at": w.created_at.strftime("%Y-%m-%d %H:%M")} for w in withdrawals],
        "min_withdrawal": _money(cfg.min_withdrawal, currency),
        "fee": config.format_percent(cfg.fee),
        "withdraw_error": withdraw_error,
        "form": form or {"amount": "", "payee": ""},
    }


@view_config(route_name="distribution.home", request_method="GET", permission="account", renderer=TEMPLATE)
def referrer_page(request):
    return page(request)


@view_config(route_name="distribution.withdraw", request_method="POST", permission="account", renderer=TEMPLATE)
def withdraw(request):
    currency = request.shop["currency"]
    form = {"amount": clean(request.POST.get("amount"), 20), "payee": clean(request.POST.get("payee"), 200)}
    try:
        amount = service.parse_amount(form["amount"], currency)
        withdrawal = service.request_withdrawal(request, request.user, amount, form["payee"])
    except APIError as exc:
        request.response.status = exc.status
        return page(request, withdraw_error=exc.message, form=form)
    request.session.flash(request.localizer.translate(_(
        "Withdrawal ${no} requested: ${net} will be paid once the shop approves it.",
        mapping={"no": withdrawal.withdrawal_no, "net": _money(withdrawal.net, withdrawal.currency)})), "info")
    return HTTPSeeOther(request.route_url("distribution.home"))
