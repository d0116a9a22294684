"""Topping the balance up through a gateway (the member area's balance page).

The balance is credited by the gateway's notify, through the same core path
as an order payment (:func:`kameng.wallet.topup_paid`); these pages only
start the payment and show what the gateway asks the buyer to do.
"""
from __future__ import annotations

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config
from sqlalchemy import select

from kameng import money, wallet
from kameng.errors import APIError
from kameng.i18n import _
from kameng.payments.models import PaymentAttempt
from kameng.payments.service import get_gateway, payment_action
from kameng.storefront.account import account_balance
from kameng.storefront.orders import NO_STORE, qr_svg
from kameng.theming import tpl


def _refuse(request, message, status: int, amount: str):
    request.tm.doom()
    data = account_balance(request)
    data.update({"topup_error": message, "topup_amount": amount})
    request.response.status = status
    return data


@view_config(route_name="account.topup", request_method="POST", permission="account",
             renderer=tpl("storefront/account_balance.pt"))
def start(request):
    currency = request.shop["currency"]
    raw = (request.POST.get("amount") or "").strip()[:20]
    try:
        amount = money.parse_minor(raw, currency)
    except money.MoneyError:
        return _refuse(request, _('Write the amount as a decimal like "100.00".'), 422, raw)
    try:
        attempt, action = wallet.start_topup(request, request.user, amount, request.POST.get("gateway", ""))
    except APIError as exc:
        return _refuse(request, exc.message, exc.status, raw)
    if action.kind == "redirect":
        return HTTPSeeOther(action.url)
    return HTTPSeeOther(request.route_url("account.topup.pay", attempt_no=attempt.attempt_no))


@view_config(route_name="account.topup.pay", request_method="GET", permission="account",
             renderer=tpl("storefront/topup_pay.pt"))
def pay(request):
    attempt = request.db.scalar(select(PaymentAttempt).where(
        PaymentAttempt.attempt_no == request.matchdict["attempt_no"][:64], PaymentAttempt.purpose == "topup",
        PaymentAttempt.user_id == request.user.id))
    if attempt is None:
        raise HTTPNotFound()
    gateway = get_gateway(request, attempt.gateway)
    if attempt.status != "pending" or gateway is None:
        return HTTPSeeOther(request.route_url("account.balance"))
    try:
        action = payment_action(request, gateway, attempt)
    except APIError as exc:
        request.session.flash(request.localizer.translate(exc.message), "error")
        return HTTPSeeOther(request.route_url("account.balance"))
    if action.kind == "redirect":
        return HTTPSeeOther(action.url)
    request.response.headers["Cache-Control"] = NO_STORE
    return {"attempt": attempt, "gateway": gateway, "action": action,
            "amount": f"{attempt.currency} {money.format_minor(attempt.amount, attempt.currency)}",
            "qr": qr_svg(action.payload) if action.kind == "qrcode" and action.payload else None,
            "fields": sorted((str(k), str(v)) for k, v in (action.fields or {}).items()),
            "balance_url": request.route_url("account.balance")}
