"""Payment attempts and the core notify path.

A gateway plugin only verifies and reports; this module decides. It binds a
notification to its attempt (and so to the gateway and merchant), compares
amount and currency with what the attempt asked for, and moves the attempt
to ``paid`` exactly once, under a row lock. Replays answer success and change
nothing; a second, different trade for a paid attempt is recorded for refund.
"""
from __future__ import annotations

import json
import logging
import secrets

from sqlalchemy import select

from kameng import money
from kameng.db import utcnow
from kameng.payments.base import PaymentGateway
from kameng.payments.models import FAILED, PAID, PENDING, PaymentAttempt, PaymentNotice
from kameng.errors import APIError
from kameng.i18n import _
from kameng.payments.base import GatewayError
from kameng.types import Notification, PaymentAction

log = logging.getLogger(__name__)

_SENSITIVE = ("sign", "key", "secret", "token", "password", "signature", "cert")


def redact(params: dict) -> dict:
    """A copy of notify parameters safe to store and show: signatures, keys
    and tokens replaced, long values cut."""
    out = {}
    for k, v in list(params.items())[:100]:
        key = str(k)[:64]
        if any(s in key.lower() for s in _SENSITIVE):
            out[key] = "[redacted]"
        else:
            out[key] = str(v)[:300]
    return out


def build_registry(config, host) -> None:
    gateways: dict[str, tuple[str, type]] = {}
    for pid, cls in host.collect_by_plugin("kameng_payment_gateways"):
        if not (isinstance(cls, type) and issubclass(cls, PaymentGateway)):
            raise RuntimeError(f"plugin {pid} returned {cls!r}, not a PaymentGateway subclass")
        if cls.identifier != pid:
            # notifies arrive at /pay/<plugin id>/notify (API.md)
            raise RuntimeError(f"plugin {pid} offers a gateway named {cls.identifier!r}: it must be {pid!r}")
        gateways[cls.identifier] = (pid, cls)
    config.registry["kameng.gateways"] = gateways


def get_gateway(request, identifier: str) -> PaymentGateway | None:
    """The gateway instance, configured, or None if unknown or its plugin is disabled."""
    entry = request.registry["kameng.gateways"].get(identifier)
    if entry is None or entry[0] not in request.enabled_plugins:
        return None
    pid, cls = entry
    return cls(request.plugin_settings(pid))


def plugin_gateway(request, plugin_id: str) -> PaymentGateway | None:
    """The gateway a plugin offers, configured with its stored settings,
    enabled or not (the admin tests a connection before enabling)."""
    entry = request.registry["kameng.gateways"].get(plugin_id)
    if entry is None:
        return None
    return entry[1](request.plugin_settings(entry[0]))


def available_gateways(request) -> list[PaymentGateway]:
    return [g for g in (get_gateway(request, i) for i in sorted(request.registry["kameng.gateways"])) if g]


def new_attempt_no() -> str:
    """32 characters (WeChat Pay's limit), unique and not guessable: the time
    for sorting, then 19 random digits (63 bits)."""
    return utcnow().strftime("P%y%m%d%H%M%S") + f"{secrets.randbelow(10 ** 19):019d}"


def create_attempt(request, gateway: PaymentGateway, amount: int, currency: str, subject: str,
                   purpose: str = "order", channel: str | None = None, order_id: int | None = None) -> PaymentAttempt:
    if amount <= 0:
        raise ValueError("a payment needs a positive amount")
    attempt = PaymentAttempt(attempt_no=new_attempt_no(), gateway=gateway.identifier, channel=channel,
                             purpose=purpose, subject=subject[:255], amount=amount, currency=currency,
                             status=PENDING, created_by=getattr(request.user, "email", "") or "", order_id=order_id)
    request.db.add(attempt)
    request.db.flush()
    return attempt


def payment_action(request, gateway: PaymentGateway, attempt: PaymentAttempt) -> PaymentAction:
    """What the buyer must do to pay ``attempt``: asked of the gateway once,
    then kept on the attempt (providers refuse or duplicate a second create
    for the same number). A provider that cannot be reached is a 502 with
    nothing written."""
    if attempt.action:
        data = json.loads(attempt.action)
        return PaymentAction(kind=data["kind"], url=data.get("url", ""), payload=data.get("payload", ""),
                             fields=data.get("fields") or {})
    try:
        action = gateway.create_payment(request, attempt)
    except GatewayError as exc:
        log.warning("payment_create_failed", extra={"gateway": gateway.identifier, "attempt_no": attempt.attempt_no,
                                                    "reason": str(exc)})
        raise APIError(502, "gateway_unavailable", _("The payment provider did not answer; try again in a moment "
                                                     "or choose another payment method.")) from None
    attempt.action = json.dumps({"kind": action.kind, "url": action.url, "payload": action.payload,
                                 "fields": {str(k): str(v) for k, v in (action.fields or {}).items()}},
                                ensure_ascii=False)
    return action


def record_notice(request, gateway_id: str, attempt_no, verified: bool, outcome: str, detail: str,
                  params: dict) -> None:
    request.db.add(PaymentNotice(gateway=gateway_id, attempt_no=(attempt_no or None) and str(attempt_no)[:64],
                                 verified=verified, outcome=outcome, detail=detail[:255],
                                 remote_addr=(request.remote_addr or "")[:64],
                                 payload=json.dumps(redact(params), ensure_ascii=False)))


def _alert(request, event: str, attempt: PaymentAttempt, **data) -> None:
    """Tell the shop (notification plugins) once per attempt and event: a
    gateway retries a refused notify several times."""
    from kameng.notifications import emit
    from kameng.orders.models import Order

    order_no = request.db.scalar(select(Order.order_no).where(Order.id == attempt.order_id)) \
        if attempt.order_id is not None else None
    emit(request.db, event, {"attempt_no": attempt.attempt_no, "gateway": attempt.gateway, "order_no": order_no,
                             "expected": money.format_minor(attempt.amount, attempt.currency),
                             "currency": attempt.currency, **data},
         dedupe_key=f"{event}:{attempt.attempt_no}")


def apply_notification(request, gateway: PaymentGateway, n: Notification) -> tuple[bool, str, str]:
    """Apply a verified notification. Returns ``(accept, outcome, detail)``:
    ``accept`` says whether to acknowledge it to the gateway."""
    db = request.db
    attempt = db.scalar(select(PaymentAttempt).where(PaymentAttempt.attempt_no == n.attempt_no).with_for_update())
    if attempt is None:
        return False, "unknown_attempt", "no payment attempt with this number"
    if attempt.gateway != gateway.identifier:
        return False, "wrong_gateway", f"the attempt belongs to {attempt.gateway}"
    if gateway.merchant_id_setting:
        ours = str(gateway.settings.get(gateway.merchant_id_setting) or "")
        if not ours or n.merchant_id != ours:
            return False, "wrong_merchant", "the notify is for another merchant account"
    if (n.currency or "").upper() != attempt.currency.upper():
        return False, "currency_mismatch", f"{n.currency} is not {attempt.currency}"
    if n.status != PAID:
        if n.status == FAILED and attempt.status == PENDING:
            attempt.status = FAILED
            if attempt.order_id is not None:
                from kameng.orders.service import attempt_failed

                attempt_failed(request, attempt)
        return True, "not_paid", f"status {n.status}"
    try:
        amount = money.to_minor(n.amount, attempt.currency)
    except money.MoneyError:
        return False, "bad_amount", "amount has more places than the currency"
    if amount != attempt.amount:
        log.error("payment_amount_mismatch", extra={"attempt_no": attempt.attempt_no, "gateway": gateway.identifier})
        _alert(request, "payment.amount_mismatch", attempt, paid=money.format_minor(amount, attempt.currency))
        return False, "amount_mismatch", (f"paid {money.format_minor(amount, attempt.currency)}, "
                                          f"expected {money.format_minor(attempt.amount, attempt.currency)}")
    if not n.provider_trade_no:
        return False, "no_trade_no", "the notify has no provider trade number"
    if attempt.status == PAID:
        if attempt.provider_trade_no == n.provider_trade_no:
            return True, "duplicate", "already applied"
        log.error("payment_paid_twice", extra={"attempt_no": attempt.attempt_no, "gateway": gateway.identifier})
        _alert(request, "payment.paid_twice", attempt, provider_trade_no=n.provider_trade_no[:128])
        return True, "second_payment", "a second trade for a paid attempt: refund it"
    taken = db.scalar(select(PaymentAttempt.id).where(PaymentAttempt.gateway == gateway.identifier,
                                                      PaymentAttempt.provider_trade_no == n.provider_trade_no))
    if taken is not None:
        return False, "trade_no_reused", "this provider trade already paid another attempt"
    attempt.status = PAID
    attempt.provider_trade_no = n.provider_trade_no[:128]
    attempt.paid_at = utcnow()
    db.flush()
    if attempt.order_id is not None:
        from kameng.orders.service import attempt_paid

        attempt_paid(request, attempt)
    elif attempt.purpose == "topup" and attempt.user_id is not None:
        from kameng.wallet import topup_paid

        topup_paid(db, attempt)
    request.hooks.kameng_payment_succeeded(request=request, attempt=attempt)
    log.info("payment_applied", extra={"attempt_no": attempt.attempt_no, "gateway": gateway.identifier})
    return True, "applied", ""


def query_attempt(request, gateway: PaymentGateway, attempt: PaymentAttempt) -> str:
    """Ask the provider about a pending attempt and apply its answer through
    the same path a notify takes (the reconciliation job and the admin's
    "query the gateway now"). Returns the outcome, also kept as a notice."""
    try:
        n = gateway.query_payment(request, attempt)
    except GatewayError as exc:
        record_notice(request, gateway.identifier, attempt.attempt_no, False, "query:error", str(exc), {})
        return "query:error"
    if n is None:
        record_notice(request, gateway.identifier, attempt.attempt_no, False, "query:unknown",
                      "the provider has no record of this payment", {})
        return "query:unknown"
    if n.attempt_no != attempt.attempt_no:
        record_notice(request, gateway.identifier, attempt.attempt_no, False, "query:mismatch",
                      "the provider answered about another payment", dict(n.raw))
        return "query:mismatch"
    _accepted, outcome, detail = apply_notification(request, gateway, n)
    record_notice(request, gateway.identifier, n.attempt_no, True, f"query:{outcome}", detail, dict(n.raw))
    return f"query:{outcome}"

