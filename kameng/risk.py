"""Anti-fraud verdicts: folding what plugins answer, and refusing.

The core asks ``kameng_risk_check_order`` before an order is created,
``kameng_risk_check_payment`` before a payment attempt and
``kameng_risk_check`` before a login, a registration, an order lookup, a
password reset or a coupon attempt. With no anti-fraud plugin enabled
every answer is "allow" (the core's own limits in :mod:`kameng.ratelimit`
still hold).
"""
from __future__ import annotations

import logging

from kameng.errors import APIError
from kameng.i18n import _
from kameng.types import RiskVerdict

__all__ = ["ACTIONS", "STATUS", "RiskVerdict", "check", "fold", "refusal"]

log = logging.getLogger(__name__)

#: the HTTP status a ``deny`` with this ``code`` is answered with
STATUS = {"rate_limited": 429, "captcha_required": 400, "blocked": 403}
ACTIONS = ("login", "register", "lookup", "password_reset", "coupon")


def fold(results) -> RiskVerdict:
    """Fold every plugin's verdict: any deny wins, then any review."""
    verdicts = [v for v in results if isinstance(v, RiskVerdict)]
    for action in ("deny", "review"):
        hits = [v for v in verdicts if v.action == action]
        if hits:
            first = next((v for v in hits if v.user_message), hits[0])
            return RiskVerdict(action=action, reasons=tuple(r for v in hits for r in v.reasons),
                               user_message=first.user_message, score=max(v.score for v in hits),
                               code=first.code, retry_after=max(v.retry_after for v in hits))
    return RiskVerdict()


def refusal(request, verdict: RiskVerdict) -> APIError:
    """The error a ``deny`` verdict is answered with."""
    from kameng.ratelimit import set_retry_after

    code = verdict.code if verdict.code in STATUS else "blocked"
    extra = {}
    if code == "rate_limited":
        extra["retry_after"] = max(1, verdict.retry_after or 60)
        set_retry_after(request, extra["retry_after"])
    message = verdict.user_message
    if not message:
        message = {"rate_limited": _("Too many attempts. Wait a moment and try again."),
                   "captcha_required": _("Type the characters shown in the picture.")}.get(
            code, _("This cannot be done. Contact the shop if you think this is a mistake."))
    return APIError(STATUS[code], code, message, **extra)


def check(request, action: str, **subject) -> None:
    """Ask the enabled plugins about ``action``; raise the refusal of a deny.
    ``subject`` gets the client's address as ``ip``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown risk action {action!r}")
    subject.setdefault("ip", (request.remote_addr or "")[:64])
    verdict = fold(request.hooks.kameng_risk_check(request=request, action=action, subject=subject))
    if verdict.action == "deny":
        log.info("risk_refused", extra={"action": action, "reasons": list(verdict.reasons)[:5],
                                        "code": verdict.code or "blocked"})
        raise refusal(request, verdict)
