"""Refunds, made safe to retry.

The core stores ``refund.refund_no`` before the first call and calls again
after a failure or a ``pending`` answer, so every call first asks the
platform whether the refund is already done:

- V2 sends ``out_refund_no = refund_no`` (the platform refunds a number once)
  and looks it up with ``api/pay/refundquery`` before sending.
- V1 has no merchant refund number at all (``api.php?act=refund``), so it
  reads the trade with ``act=order`` first: a trade already in status 2
  (refunded) is not refunded again. When this shop refunded part of the
  trade before and the platform does not say how much (``refundmoney``), it
  cannot tell, and the refund is reported failed for the admin to check in
  the epay backend, rather than risk paying twice.

Any failure once the refund request went out is ``pending``: the next call
asks first.
"""
from __future__ import annotations

from sqlalchemy import func, select

from kameng.money import MoneyError, parse_minor
from kameng.payments import GatewayError
from kameng.types import RefundResult

from kameng_epay import provider
from kameng_epay.config import Config

V1_REFUND_OK = ("0", "1")  # 彩虹 answers 0 (Order::refund); older builds and clones answer 1


def refunded_before(request, attempt, refund) -> int:
    """What this shop already refunded of ``attempt`` through other refunds (minor units)."""
    from kameng.orders.models import Refund

    return int(request.db.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.attempt_id == attempt.id, Refund.status == "succeeded", Refund.id != refund.id)) or 0)


def refund_v1(gateway, request, cfg: Config, attempt, refund, money: str) -> RefundResult:
    state = gateway.order_state(cfg, attempt.attempt_no)  # a GatewayError here is retried by the job
    if state is None:
        return RefundResult(status="failed", message="epay has no such order")
    status = provider.text(state.get("status"))
    if status == "2":
        before = refunded_before(request, attempt, refund)
        platform_total = provider.text(state.get("refundmoney"))
        if platform_total:
            try:
                done = parse_minor(platform_total, refund.currency) >= before + refund.amount
            except MoneyError:
                raise GatewayError("epay answered a malformed refundmoney") from None
            if done:
                return RefundResult(status="succeeded", message="epay shows this refund as done")
        elif before == 0:
            # the trade was refunded and this shop never refunded it otherwise: that was this refund
            return RefundResult(status="succeeded", message="epay shows the order as refunded")
        else:
            return RefundResult(status="failed", message="epay V1 cannot tell whether this partial refund was "
                                                         "made; check the epay backend, then record it by hand")
    elif status != "1":
        return RefundResult(status="failed", message=f"the order is not paid at epay (status {status[:8]})")
    try:
        data = provider.v1_refund(cfg, attempt.attempt_no, money)
    except GatewayError as exc:
        return RefundResult(status="pending", message=str(exc))
    if provider.code_of(data) in V1_REFUND_OK:
        return RefundResult(status="succeeded", provider_refund_no=str(data.get("refund_no") or "")[:128])
    return RefundResult(status="failed", message=f"epay refused the refund: {provider.clean_message(data.get('msg'))}")


def refund_v2(cfg: Config, attempt, refund, money: str) -> RefundResult:
    found = provider.v2_call(cfg, "pay/refundquery", {"out_refund_no": refund.refund_no})
    if provider.code_of(found) == provider.V2_OK and provider.text(found.get("status")) == "1":
        return RefundResult(status="succeeded", provider_refund_no=str(found.get("refund_no") or "")[:128])
    try:
        data = provider.v2_call(cfg, "pay/refund", {"out_trade_no": attempt.attempt_no, "money": money,
                                                    "out_refund_no": refund.refund_no})
    except GatewayError as exc:
        return RefundResult(status="pending", message=str(exc))
    if provider.code_of(data) == provider.V2_OK:
        return RefundResult(status="succeeded", provider_refund_no=str(data.get("refund_no") or "")[:128])
    return RefundResult(status="failed", message=f"epay refused the refund: {provider.clean_message(data.get('msg'))}")
