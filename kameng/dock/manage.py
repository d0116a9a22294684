"""Issuing, restricting and revoking an account's docking keys; shared by
the admin pages and the admin API. Every change is in the audit log (key
ids, never secrets)."""
from __future__ import annotations

from sqlalchemy import func, select

from kameng import audit
from kameng.accounts import User
from kameng.db import utcnow
from kameng.dock.auth import parse_allowlist
from kameng.dock.models import DockKey, create_key
from kameng.errors import APIError
from kameng.i18n import _

#: active keys one account may hold
MAX_KEYS = 20
MAX_ALLOWLIST_ENTRIES = 50
MAX_NAME = 100


def clean_name(name) -> str:
    if name is None:
        return ""
    if not isinstance(name, str) or len(name.strip()) > MAX_NAME or "\x00" in name:
        raise APIError(422, "invalid_request", _("The name may be at most ${n} characters.", mapping={"n": MAX_NAME}),
                       field="name")
    return name.strip()


def clean_allowlist(text) -> str:
    """The allow-list normalised to one network a line; APIError 422 on a bad line."""
    if text is None:
        return ""
    if isinstance(text, list):
        text = "\n".join(t for t in text if isinstance(t, str))
    if not isinstance(text, str) or len(text) > 8000:
        raise APIError(422, "invalid_request", _("List one IP address or CIDR range a line."), field="ip_allowlist")
    try:
        nets = parse_allowlist(text)
    except ValueError as exc:
        raise APIError(422, "invalid_request", _("Not an IP address or CIDR range: ${line}",
                                                 mapping={"line": str(exc)}), field="ip_allowlist") from None
    if len(nets) > MAX_ALLOWLIST_ENTRIES:
        raise APIError(422, "invalid_request", _("At most ${n} addresses or ranges.",
                                                 mapping={"n": MAX_ALLOWLIST_ENTRIES}), field="ip_allowlist")
    out = []
    for net in nets:
        text = str(net.network_address) if net.num_addresses == 1 else str(net)
        if text not in out:
            out.append(text)
    return "\n".join(out)


def issue(request, user: User, name=None, ip_allowlist=None) -> tuple[DockKey, str]:
    """A new key for ``user``: ``(row, secret)``; the secret is never stored in clear."""
    if user.role == "admin" or not user.is_active:
        raise APIError(422, "invalid_request", _("Docking keys are for active buyer and agent accounts."),
                       field="user")
    name, allowlist = clean_name(name), clean_allowlist(ip_allowlist)
    active = request.db.scalar(select(func.count()).select_from(DockKey).where(
        DockKey.user_id == user.id, DockKey.revoked_at.is_(None))) or 0
    if active >= MAX_KEYS:
        raise APIError(409, "too_many_keys", _("This account has ${n} active keys; revoke one first.",
                                                mapping={"n": MAX_KEYS}))
    actor = audit.actor_of(request)
    key, secret = create_key(request.db, request.registry["kameng.keyring"], user.id, name=name,
                             ip_allowlist=allowlist, created_by=actor)
    audit.record(request.db, actor, "dock_key.create", f"user:{user.id}", key_id=key.key_id, name=name,
                 ip_allowlist=allowlist)
    return key, secret


def revoke(request, key: DockKey) -> None:
    if key.revoked_at is not None:
        return
    key.revoked_at = utcnow()
    audit.record(request.db, audit.actor_of(request), "dock_key.revoke", f"user:{key.user_id}", key_id=key.key_id)


def set_allowlist(request, key: DockKey, text) -> None:
    if key.revoked_at is not None:
        raise APIError(409, "key_revoked", _("This key is revoked."))
    key.ip_allowlist = clean_allowlist(text)
    audit.record(request.db, audit.actor_of(request), "dock_key.allowlist", f"user:{key.user_id}",
                 key_id=key.key_id, ip_allowlist=key.ip_allowlist)


def key_json(key: DockKey) -> dict:
    return {"key_id": key.key_id, "name": key.name, "user_id": key.user_id,
            "ip_allowlist": [ln for ln in key.ip_allowlist.splitlines() if ln],
            "created_at": key.created_at.isoformat() if key.created_at else None,
            "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None, "active": key.active}
