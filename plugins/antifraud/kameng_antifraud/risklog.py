"""The risk log: every refusal and every order held for review.

The rows of a request are written when it has finished, in a transaction
of their own on the write engine: the request's own transaction is rolled
back when it is refused (and on SQLite it holds the only write lock while
it runs). A buyer's contact is stored masked, with a keyed hash of it so
that the admin can still find every row of one contact.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging

from sqlalchemy import delete, insert

from kameng.db import utcnow

from kameng_antifraud.models import RiskEvent

log = logging.getLogger(__name__)

#: rows one address may add per rule and minute (a flood of refusals stays a few rows)
ROWS_PER_IP_PER_MINUTE = 20
_PENDING = "_antifraud_log_rows"


def _key(registry) -> bytes:
    secret = registry.settings["kameng.session_secret"]
    return hashlib.sha256(b"kameng-antifraud-contact\0" + secret.encode()).digest()


def normalize_contact(contact: str) -> str:
    from kameng.orders.checkout import normalize_contact as core_normalize

    return core_normalize(contact or "").lower()


def contact_hash(request, contact: str) -> str:
    """A keyed hash of the normalised contact (``request`` may be the registry)."""
    contact = normalize_contact(contact)
    if not contact:
        return ""
    return hmac.new(_key(getattr(request, "registry", request)), contact.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def mask(contact: str) -> str:
    """``alice@example.com`` → ``a***e@example.com``; ``13800138000`` → ``138****8000``."""
    contact = (contact or "").strip()
    if not contact:
        return ""
    if "@" in contact:
        local, _sep, domain = contact.rpartition("@")
        shown = local[:1] + "***" + (local[-1:] if len(local) > 2 else "")
        return (shown + "@" + domain)[:254]
    if len(contact) >= 7:
        return contact[:3] + "*" * (len(contact) - 7) + contact[-4:]
    return contact[:1] + "***"


def record(request, *, action: str, verdict: str, code: str, rule: str, ip: str = "", contact: str = "",
           user_id=None, detail: str = "", counters=None) -> None:
    """Queue a row; it is written after the request, whatever its outcome."""
    if counters is not None and counters.hit(f"log:{rule}:{ip or '-'}", ROWS_PER_IP_PER_MINUTE, 60):
        return  # this address already filled its share of the log this minute
    rows = request.__dict__.get(_PENDING)
    if rows is None:
        rows = request.__dict__[_PENDING] = []
        request.add_finished_callback(_flush)
    rows.append({"created_at": utcnow(), "action": action[:20], "verdict": verdict[:10], "code": (code or "")[:20],
                 "rule": rule[:64], "ip": (ip or "")[:64], "contact": mask(contact),
                 "contact_hash": contact_hash(request, contact), "user_id": user_id,
                 "detail": (detail or "")[:255]})


def _flush(request) -> None:
    rows = request.__dict__.pop(_PENDING, None)
    if not rows:
        return
    try:
        with request.registry["kameng.write_engine"].begin() as conn:
            conn.execute(insert(RiskEvent.__table__), rows)
    except Exception:  # the answer is already decided: a lost log row must not turn it into an error
        log.exception("antifraud_log_write_failed", extra={"rows": len(rows)})


def prune(db, days: int) -> int:
    cutoff = utcnow() - dt.timedelta(days=max(1, int(days)))
    return db.execute(delete(RiskEvent).where(RiskEvent.created_at < cutoff)).rowcount
