"""Accounts: users with a role (buyer, agent, admin), API tokens, login with lockout."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import Boolean, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from kameng import passwords, ratelimit
from kameng.db import Base, UTCDateTime, utcnow

ROLES = ("buyer", "agent", "admin")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(16), default="buyer")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # bumped when the password changes: every older session ends
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: a second sign-in name: digits with an optional leading +, unique
    phone: Mapped[str | None] = mapped_column(String(20), unique=True, nullable=True)
    #: the member level's code (:class:`kameng.levels.MemberLevel`), None: no level
    level: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: True once an admin chose the level by hand: the rules leave it alone
    level_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the agent tier whose SKU prices this account pays (agents), None: none
    tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: an application to become an agent: "" (none), applied, approved, rejected
    agent_status: Mapped[str] = mapped_column(String(16), default="")
    #: the applicant's note, or the admin's reason for a rejection
    agent_note: Mapped[str] = mapped_column(String(500), default="")

    def set_password(self, password: str) -> None:
        self.password_hash = passwords.hash_password(password)
        self.session_version = (self.session_version or 0) + 1

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class ApiToken(Base):
    """A bearer token for the API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PasswordReset(Base):
    """A password-reset link: only the token's SHA-256 is stored; usable
    once, until ``expires_at``."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")


class AccountError(Exception):
    pass


def normalize_email(email: str) -> str:
    email = (email or "").strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise AccountError("invalid email address")
    return f"{local}@{domain.lower()}"


def check_password_strength(password: str) -> None:
    if len(password or "") < 10:
        raise AccountError("the password must have at least 10 characters")


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def create_user(db, email: str, password: str, role: str = "buyer", display_name: str = "") -> User:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}")
    email = normalize_email(email)
    check_password_strength(password)
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(f"an account with {email} already exists")
    user = User(email=email, role=role, display_name=display_name)
    user.set_password(password)
    db.add(user)
    db.flush()
    return user


def find_user(db, email: str) -> User | None:
    try:
        email = normalize_email(email)
    except AccountError:
        return None
    return db.scalar(select(User).where(User.email == email))


class LoginResult:
    def __init__(self, user=None, locked_until=None):
        self.user = user
        self.locked_until = locked_until

    @property
    def ok(self):
        return self.user is not None


def login_key(email: str) -> str:
    """The rate limiter's name for the account ``email`` signs in to (an
    unknown one included)."""
    try:
        email = normalize_email(email)
    except AccountError:
        email = (email or "").strip()[:254]
    return "login:" + email


def authenticate(db, email: str, password: str, max_failures: int = 5, lockout_minutes: int = 15,
                 engine=None) -> LoginResult:
    """Check a password. ``max_failures`` wrong passwords within about
    ``lockout_minutes`` lock the account for ``lockout_minutes``: even the
    right password is refused until then (``kameng admin reset-password``
    lifts it). An email without an account is answered alike, locks
    included, and takes as long: the answers tell no one which accounts
    exist. ``max_failures`` or ``lockout_minutes`` 0: no lockout.

    Failures are counted by :mod:`kameng.ratelimit` on ``engine`` (the
    write engine; by default the session's), so they add up across every
    app process on PostgreSQL and MariaDB."""
    engine = engine if engine is not None else db.get_bind()
    key = login_key(email)
    lockout = max(0, lockout_minutes) * 60
    now = utcnow()
    user = find_user(db, email)
    if user is None or not user.is_active:
        passwords.burn_time(password or "")
        left = ratelimit.locked_for(engine, key) or ratelimit.fail(engine, key, max_failures, lockout)
        return LoginResult(locked_until=now + dt.timedelta(seconds=left) if left else None)
    # lock the row, and read it again once locked (populate_existing: the
    # session holds it as read before the wait): a lock set by a concurrent
    # wrong guess is seen, and none of them gets a guess past it
    user = db.scalar(select(User).where(User.id == user.id).with_for_update()
                     .execution_options(populate_existing=True))
    if user.locked_until and user.locked_until > now:
        passwords.burn_time(password or "")
        return LoginResult(locked_until=user.locked_until)
    if not passwords.verify_password(password or "", user.password_hash):
        user.failed_logins = (user.failed_logins or 0) + 1
        if ratelimit.fail(engine, key, max_failures, lockout):
            user.locked_until = now + dt.timedelta(seconds=lockout)
            user.failed_logins = 0
            return LoginResult(locked_until=user.locked_until)
        return LoginResult()
    if user.failed_logins:
        ratelimit.clear(engine, key)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return LoginResult(user=user)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db, user: User, name: str) -> str:
    """A new API token for ``user``; the plaintext is returned once, never stored."""
    token = "kmg_" + secrets.token_urlsafe(32)
    db.add(ApiToken(user_id=user.id, name=name[:100], token_hash=_token_hash(token), prefix=token[:12]))
    db.flush()
    return token


def user_for_token(db, token: str) -> User | None:
    if not token or len(token) > 200:
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token), ApiToken.revoked_at.is_(None)))
    if row is None:
        return None
    user = db.get(User, row.user_id)
    return user if user is not None and user.is_active else None
