"""The caller's own account on the JSON API: ``GET /api/v1/account``."""
from __future__ import annotations

from pyramid.view import view_config
from sqlalchemy import select

from kameng import wallet
from kameng.levels import MemberLevel
from kameng.money import format_minor


def account_json(request, user) -> dict:
    """Who the session or the API token belongs to: never the password's
    hash, the sign-in counters or an agent's notes."""
    currency = request.shop["currency"]
    level = None
    if user.level:
        row = request.db.scalar(select(MemberLevel).where(MemberLevel.code == user.level))
        # a level deleted since it was given is shown by its code
        level = {"code": user.level, "name": row.name if row is not None else user.level}
    return {"id": user.id, "email": user.email, "phone": user.phone or None, "display_name": user.display_name,
            "role": user.role, "level": level, "tier": user.tier or None,
            "balance": format_minor(wallet.balance(request.db, user.id), currency), "currency": currency}


@view_config(route_name="api.account", request_method="GET", renderer="json", permission="account",
             require_csrf=False)
def read(request):
    """The signed-in account (session cookie or bearer token); 401 for anyone else."""
    request.response.headers["Cache-Control"] = "no-store"
    return account_json(request, request.user)
