"""Agents (代理): accounts with the ``agent`` role. An admin makes one by
hand, or a buyer applies (``/account/agent``) and an admin approves or
rejects the application. An agent pays its tier's SKU prices
(``users.tier``), may order larger quantities at once
(``kameng.orders.agent_max_quantity``), exports the keys of its orders as
TXT or CSV, and manages its own docking API keys.

``users.agent_status`` is the application's state: ``""`` (none),
``applied``, ``approved`` or ``rejected``; ``users.agent_note`` holds the
applicant's note, and after a rejection the admin's reason.

Every change here is in the audit log. Functions raise
:class:`~kameng.errors.APIError` (422 for a bad field, 409 for a wrong
state), shared by the pages and the admin API.
"""
from __future__ import annotations

import re

from sqlalchemy import func, select

from kameng import audit
from kameng.errors import APIError
from kameng.i18n import _

NONE, APPLIED, APPROVED, REJECTED = "", "applied", "approved", "rejected"
STATUS_LABELS = {NONE: _("No application"), APPLIED: _("Waiting for review"), APPROVED: _("Approved"),
                 REJECTED: _("Rejected")}
MAX_NOTE = 500
#: a tier's code: what SKU tier prices name (sku_prices.ref), at most 32 characters (users.tier)
TIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")


def _clean_text(value, field: str, required: bool, message) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or "\x00" in value:
        raise APIError(422, "invalid_request", message, field=field)
    value = value.strip()
    if len(value) > MAX_NOTE or (required and not value):
        raise APIError(422, "invalid_request", message, field=field)
    return value


def clean_tier(value) -> str | None:
    """A tier code, or None for an empty one; APIError 422 otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not TIER.match(value.strip()):
        raise APIError(422, "invalid_request", _("A tier is 1 to 32 letters, digits, '.', '_' or '-', like the codes "
                                                 "of SKU tier prices."), field="tier")
    return value.strip()


def tiers_in_use(db) -> list[str]:
    """The tier codes SKU prices and accounts name, for the admin's choice."""
    from kameng.accounts import User
    from kameng.catalog.models import SkuPrice

    codes = set(db.scalars(select(SkuPrice.ref).where(SkuPrice.kind == "tier").distinct()))
    codes |= set(db.scalars(select(User.tier).where(User.tier.is_not(None)).distinct()))
    return sorted(c for c in codes if c)


def pending_count(db) -> int:
    from kameng.accounts import User

    return db.scalar(select(func.count()).select_from(User).where(User.agent_status == APPLIED)) or 0


def apply(db, user, note, actor: str) -> None:
    """A buyer asks to become an agent; one application waits at a time."""
    if user.role != "buyer":
        raise APIError(409, "not_a_buyer", _("Only buyer accounts apply to become agents."))
    if user.agent_status == APPLIED:
        raise APIError(409, "application_pending", _("Your application is waiting for review already."))
    note = _clean_text(note, "note", False, _("Tell us about yourself in at most ${n} characters.",
                                                  mapping={"n": MAX_NOTE}))
    user.agent_status, user.agent_note = APPLIED, note
    audit.record(db, actor, "agent.apply", f"user:{user.id}", note=note)


def approve(db, user, actor: str, tier=None) -> None:
    """Approve a waiting application: the account becomes an agent (with ``tier``)."""
    tier = clean_tier(tier)
    if user.agent_status != APPLIED or user.role != "buyer":
        raise APIError(409, "no_application", _("This account has no application waiting."))
    user.role, user.agent_status = "agent", APPROVED
    if tier is not None:
        user.tier = tier
    audit.record(db, actor, "agent.approve", f"user:{user.id}", tier=user.tier)


def reject(db, user, reason, actor: str) -> None:
    """Reject a waiting application with a reason the applicant sees; they may apply again."""
    reason = _clean_text(reason, "reason", True, _("Give a reason of at most ${n} characters: the applicant "
                                                       "sees it.", mapping={"n": MAX_NOTE}))
    if user.agent_status != APPLIED:
        raise APIError(409, "no_application", _("This account has no application waiting."))
    user.agent_status, user.agent_note = REJECTED, reason
    audit.record(db, actor, "agent.reject", f"user:{user.id}", reason=reason)


def set_role(db, user, role, actor: str) -> None:
    """An admin makes an account an agent or a buyer (admins are made with the CLI)."""
    if role not in ("buyer", "agent"):
        raise APIError(422, "invalid_request", _("The role must be buyer or agent."), field="role")
    if user.role == "admin":
        raise APIError(422, "invalid_request", _("An admin account's role is not changed here."), field="role")
    if role == user.role:
        return
    before = user.role
    user.role = role
    if role == "agent":
        user.agent_status = APPROVED
    else:  # no longer an agent: the tier goes, and the account may apply again
        user.agent_status, user.tier = NONE, None
    audit.record(db, actor, "user.role", f"user:{user.id}", role=role, previous=before)


def set_tier(db, user, tier, actor: str) -> None:
    tier = clean_tier(tier)
    if tier is not None and user.role != "agent":
        raise APIError(422, "invalid_request", _("Only agents have a tier."), field="tier")
    if tier == user.tier:
        return
    before = user.tier
    user.tier = tier
    audit.record(db, actor, "user.tier", f"user:{user.id}", tier=tier, previous=before)
