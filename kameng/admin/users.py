"""Admin pages for accounts: the list with balances, one account's orders
and wallet ledger, adjusting a balance, creating a buyer or agent; an
account's member level, agent tier and role; the agent applications.

:func:`create_account`, :func:`adjust_balance` and :func:`update_membership`
are shared with the admin API (:mod:`kameng.api.admin_orders`); they raise
:class:`~kameng.errors.APIError` with the field at fault.
"""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.view import view_config, view_defaults
from sqlalchemy import and_, func, select

from kameng import accounts, agents, audit, levels, money, wallet
from kameng.accounts import User
from kameng.admin.orders import PAGE_SIZE, clean, fmt, pager, when
from kameng.admin.views import flash
from kameng.errors import APIError
from kameng.i18n import _
from kameng.orders import states
from kameng.orders.models import Order
from kameng.theming import tpl
from kameng.wallet import LedgerEntry

#: the roles an admin may give a new account here (admins are made with the CLI)
NEW_ROLES = ("buyer", "agent")
ROLE_LABELS = {"buyer": _("Buyer"), "agent": _("Agent"), "admin": _("Admin")}
MAX_QUERY = 100
MAX_REASON = 255
MAX_PASSWORD = 1024
RECENT = 50
#: the largest adjustment and balance (minor units): every database's INTEGER holds them
MAX_ADJUST = 10 ** 9
MAX_BALANCE = 2 ** 31 - 1


def parse_signed_minor(text, currency: str) -> int:
    """:func:`kameng.money.parse_minor`, but a leading ``-`` is allowed (a debit)."""
    if not isinstance(text, str):
        raise money.MoneyError("not text")
    text = text.strip()
    negative = text.startswith("-")
    minor = money.parse_minor(text[1:] if negative else text, currency)
    return -minor if negative else minor


def balances(db, user_ids) -> dict[int, int]:
    """The balance of each of ``user_ids`` (absent: zero)."""
    ids = list(user_ids)
    if not ids:
        return {}
    latest = (select(LedgerEntry.user_id, func.max(LedgerEntry.seq).label("seq"))
              .where(LedgerEntry.user_id.in_(ids)).group_by(LedgerEntry.user_id).subquery())
    rows = db.execute(select(LedgerEntry.user_id, LedgerEntry.balance_after)
                      .join(latest, and_(LedgerEntry.user_id == latest.c.user_id, LedgerEntry.seq == latest.c.seq)))
    return {uid: bal for uid, bal in rows}


def user_query(q: str = "", role: str = "", level: str = "", agent: str = ""):
    """Accounts whose email holds ``q``, with ``role``, member level ``level``
    and agent application status ``agent`` (each when given)."""
    stmt = select(User)
    if q:
        stmt = stmt.where(User.email.icontains(q, autoescape=True))
    if role:
        stmt = stmt.where(User.role == role)
    if level:
        stmt = stmt.where(User.level == level)
    if agent:
        stmt = stmt.where(User.agent_status == agent)
    return stmt


#: the level choices of the admin's form that are not a level's code
LEVEL_AUTOMATIC, LEVEL_NONE = "@auto", "@none"


def level_choice(value):
    """A level field of the admin's form as :func:`kameng.levels.set_level` takes it."""
    if value == LEVEL_AUTOMATIC:
        return levels.AUTOMATIC
    if value == LEVEL_NONE:
        return ""
    return value


def update_membership(request, user: User, body: dict) -> None:
    """An account's ``role`` (buyer or agent), agent ``tier`` (a code, or
    empty/None for none) and member ``level`` (a code: fixed by hand;
    ``""``: no level, fixed by hand; None: automatic, by the rules), each
    only when ``body`` has it; in that order, so one change can make an
    agent and give it a tier. Audited."""
    db, actor = request.db, audit.actor_of(request)
    asked = [name for name in ("role", "tier", "level") if name in body]
    if asked and user.role == "admin":
        raise APIError(422, "invalid_request", _("An admin account has no member level, tier or role to change "
                                                 "here."), field=asked[0])
    if "role" in body:
        agents.set_role(db, user, body["role"], actor)
    if "tier" in body:
        agents.set_tier(db, user, body["tier"], actor)
    if "level" in body:
        level = body["level"]
        if level is not None and not isinstance(level, str):
            raise APIError(422, "invalid_request", _("The level is a member level's code."), field="level")
        levels.set_level(db, user, level, actor)


def create_account(db, email, password, role, level=None) -> User:
    """A new buyer or agent (with member ``level``, fixed by hand, when
    given); APIError 422 (field named) or 409 when the email is taken."""
    if not isinstance(email, str) or "\x00" in email:
        raise APIError(422, "invalid_request", _("Enter a valid email address."), field="email")
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise APIError(422, "invalid_request", _("The password must have at least 10 characters."),
                       field="password")
    if not isinstance(role, str) or role not in NEW_ROLES:
        raise APIError(422, "invalid_request", _("The role must be buyer or agent."), field="role")
    try:
        email = accounts.normalize_email(email)
    except accounts.AccountError:
        raise APIError(422, "invalid_request", _("Enter a valid email address."), field="email") from None
    try:
        accounts.check_password_strength(password)
    except accounts.AccountError:
        raise APIError(422, "invalid_request", _("The password must have at least 10 characters."),
                       field="password") from None
    if level is not None and level != "" and (not isinstance(level, str) or levels.get_level(db, level) is None):
        raise APIError(422, "invalid_request", _("There is no member level ${code}.",
                                               mapping={"code": str(level)[:32]}), field="level")
    if accounts.find_user(db, email) is not None:
        raise APIError(409, "email_taken", _("An account with this email address already exists."), field="email")
    user = accounts.create_user(db, email, password, role=role)
    if role == "agent":
        user.agent_status = agents.APPROVED
    if level:
        user.level, user.level_manual = level, True
    return user


def adjust_balance(request, user: User, amount, reason) -> LedgerEntry:
    """Credit (or, negative, debit) ``user``'s balance by an admin, with a reason."""
    currency = request.shop["currency"]
    try:
        minor = parse_signed_minor(amount, currency)
    except money.MoneyError:
        raise APIError(422, "invalid_request", _("Write the amount as a decimal like \"100.00\" (\"-20.00\" takes "
                                                 "money away)."), field="amount") from None
    if minor == 0:
        raise APIError(422, "invalid_request", _("The amount must not be zero."), field="amount")
    if abs(minor) > MAX_ADJUST or wallet.balance(request.db, user.id) + minor > MAX_BALANCE:
        raise APIError(422, "invalid_request", _("The amount is too large."), field="amount")
    reason = clean(reason).strip()
    if not reason:
        raise APIError(422, "invalid_request", _("Give a reason: it is kept in the ledger."), field="reason")
    if len(reason) > MAX_REASON:
        raise APIError(422, "invalid_request", _("The reason may be at most ${n} characters.",
                                                 mapping={"n": MAX_REASON}), field="reason")
    actor = audit.actor_of(request)
    try:
        entry = wallet.post(request.db, user.id, minor, currency, "admin", note=reason, actor=actor)
    except wallet.InsufficientBalance as exc:
        raise APIError(409, "insufficient_balance",
                       _("The balance (${balance}) is less than the ${amount} to take.",
                         mapping={"balance": fmt(exc.balance, currency), "amount": fmt(exc.wanted, currency)}),
                       balance=fmt(exc.balance, currency)) from None
    audit.record(request.db, actor, "user.balance", f"user:{user.id}", amount=fmt(minor, currency),
                 balance=fmt(entry.balance_after, currency), reason=reason)
    return entry


@view_defaults(permission="admin")
class UserViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db

    @property
    def currency(self) -> str:
        return self.request.shop["currency"]

    def _list_page(self, values=None, error=None, error_field=None):
        request, db = self.request, self.db
        q = clean(request.GET.get("q", "")).strip()[:MAX_QUERY]
        role = request.GET.get("role", "")
        if role not in ROLE_LABELS:
            role = ""
        level = request.GET.get("level", "")
        if not levels.CODE.match(level):
            level = ""
        agent = request.GET.get("agent", "")
        if agent not in agents.STATUS_LABELS:
            agent = ""
        query = {k: v for k, v in (("q", q), ("role", role), ("level", level), ("agent", agent)) if v}
        stmt = user_query(q, role, level, agent)
        total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        try:
            page = int(request.GET.get("page", 1))
        except ValueError:
            page = 1
        pg = pager(request, "admin.users", total, page, query)
        rows = db.scalars(stmt.order_by(User.id.desc()).offset((pg["page"] - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
        all_levels = levels.all_levels(db)
        return {"rows": rows, "balances": balances(db, [u.id for u in rows]), "q": q, "role": role, "pager": pg,
                "role_labels": ROLE_LABELS, "new_roles": NEW_ROLES, "fmt": fmt, "when": when,
                "currency": self.currency, "values": values or {"email": "", "role": "buyer", "level": ""},
                "error": error, "error_field": error_field, "levels": all_levels, "level": level, "agent": agent,
                "level_names": {lv.code: lv.name for lv in all_levels}, "applications": agents.pending_count(db),
                "agent_labels": agents.STATUS_LABELS}

    @view_config(route_name="admin.users", renderer=tpl("admin/users/list.pt"), request_method="GET")
    def users(self):
        return self._list_page()

    @view_config(route_name="admin.users", renderer=tpl("admin/users/list.pt"), request_method="POST")
    def create(self):
        request = self.request
        post = request.POST
        values = {"email": post.get("email", "")[:254], "role": post.get("role", ""),
                  "level": post.get("level", "")[:32]}
        try:
            user = create_account(self.db, post.get("email", ""), post.get("password", ""), post.get("role", ""),
                                  level=post.get("level", "") or None)
        except APIError as exc:
            request.tm.doom()
            request.response.status = exc.status
            return self._list_page(values, exc.message, exc.extra.get("field"))
        audit.record(self.db, audit.actor_of(request), "user.create", f"user:{user.id}", email=user.email,
                     role=user.role, **({"level": user.level} if user.level else {}))
        flash(request, _("Account ${email} created.", mapping={"email": user.email}))
        return HTTPFound(request.route_url("admin.user", id=user.id))

    def _user_or_404(self) -> User:
        try:
            uid = int(self.request.matchdict["id"])
        except ValueError:
            raise HTTPNotFound() from None
        user = self.db.get(User, uid) if 0 < uid < 2 ** 31 else None
        if user is None:
            raise HTTPNotFound()
        return user

    def _user_page(self, user: User, values=None, error=None, error_field=None, form="balance"):
        db = self.db
        orders = db.scalars(select(Order).where(Order.user_id == user.id).order_by(Order.id.desc())
                            .limit(RECENT)).all()
        order_count = db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user.id)) or 0
        paid, topup = levels.totals(db, user.id)
        all_levels = levels.all_levels(db)
        level_value = (user.level or "") if user.level_manual else LEVEL_AUTOMATIC
        if user.level_manual and not user.level:
            level_value = LEVEL_NONE
        return {"user": user, "balance": wallet.balance(db, user.id), "entries": wallet.entries(db, user.id, RECENT),
                "orders": orders, "order_count": order_count, "reasons": wallet.REASONS, "role_labels": ROLE_LABELS,
                "status_labels": states.LABELS, "fmt": fmt, "when": when, "currency": self.currency,
                "values": values or {"amount": "", "reason": ""}, "error": error, "error_field": error_field,
                "form": form, "levels": all_levels, "level_names": {lv.code: lv.name for lv in all_levels},
                "level_value": level_value, "level_automatic": LEVEL_AUTOMATIC, "level_none": LEVEL_NONE,
                "tiers": agents.tiers_in_use(db), "paid_total": paid, "topup_total": topup,
                "agent_labels": agents.STATUS_LABELS, "new_roles": NEW_ROLES}

    @view_config(route_name="admin.user", renderer=tpl("admin/users/user.pt"), request_method="GET")
    def user(self):
        return self._user_page(self._user_or_404())

    @view_config(route_name="admin.user", renderer=tpl("admin/users/user.pt"), request_method="POST")
    def adjust(self):
        request = self.request
        user = self._user_or_404()
        values = {"amount": request.POST.get("amount", "")[:32], "reason": request.POST.get("reason", "")[:MAX_REASON]}
        try:
            entry = adjust_balance(request, user, request.POST.get("amount", ""), request.POST.get("reason", ""))
        except APIError as exc:
            request.tm.doom()
            request.response.status = exc.status
            return self._user_page(user, values, exc.message, exc.extra.get("field"))
        flash(request, _("The balance of ${email} is now ${balance}.",
                         mapping={"email": user.email, "balance": fmt(entry.balance_after, self.currency)}))
        return HTTPFound(request.route_url("admin.user", id=user.id))

    @view_config(route_name="admin.user.membership", renderer=tpl("admin/users/user.pt"), request_method="POST")
    def membership(self):
        """Role, agent tier and member level, from the account's page."""
        request = self.request
        user = self._user_or_404()
        post = request.POST
        body = {name: post.get(name, "")[:64] for name in ("role", "tier", "level") if name in post}
        if "level" in body:
            body["level"] = level_choice(body["level"])
        try:
            with self.db.begin_nested():  # a refusal keeps none of the form's changes
                update_membership(request, user, body)
        except APIError as exc:
            request.tm.doom()
            request.response.status = exc.status
            return self._user_page(user, None, exc.message, exc.extra.get("field"), form="membership")
        flash(request, _("${email} saved.", mapping={"email": user.email}))
        return HTTPFound(request.route_url("admin.user", id=user.id))

    @view_config(route_name="admin.user.agent", renderer=tpl("admin/users/user.pt"), request_method="POST")
    def agent_decision(self):
        """Approve (``decision=approve``, an optional ``tier``) or reject
        (``decision=reject`` with a ``reason``) an agent application."""
        request = self.request
        user = self._user_or_404()
        post = request.POST
        decision, actor = post.get("decision", ""), audit.actor_of(request)
        try:
            with self.db.begin_nested():
                self._decide(user, decision, post, actor)
        except APIError as exc:
            request.tm.doom()
            request.response.status = exc.status
            return self._user_page(user, None, exc.message, exc.extra.get("field"), form="agent")
        if decision == "approve":
            message = _("${email} is an agent now.", mapping={"email": user.email})
        else:
            message = _("The application of ${email} is rejected.", mapping={"email": user.email})
        flash(request, message)
        back = post.get("back", "")
        return HTTPFound(request.route_url("admin.agents") if back == "agents"
                         else request.route_url("admin.user", id=user.id))

    def _decide(self, user, decision, post, actor):
        if decision == "approve":
            agents.approve(self.db, user, actor, tier=post.get("tier", "")[:64])
        elif decision == "reject":
            agents.reject(self.db, user, post.get("reason", "")[:1000], actor)
        else:
            raise APIError(422, "invalid_request", _("Approve or reject the application."), field="decision")

    @view_config(route_name="admin.agents", renderer=tpl("admin/users/agents.pt"), request_method="GET")
    def applications(self):
        """The agent applications waiting, oldest first, and the agents."""
        db = self.db
        waiting = db.scalars(user_query(agent=agents.APPLIED).order_by(User.id).limit(200)).all()
        agent_rows = db.scalars(user_query(role="agent").order_by(User.id.desc()).limit(200)).all()
        return {"waiting": waiting, "agents": agent_rows, "tiers": agents.tiers_in_use(db), "when": when,
                "total_agents": db.scalar(select(func.count()).select_from(User).where(User.role == "agent")) or 0}
