"""Accounts: users with a role (buyer, agent, admin), API tokens, login with lockout."""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import Boolean, ForeignKey, Integer, String, delete, func, select, update
from sqlalchemy.orm import Mapped, mapped_column, object_session

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
        """A new password: every session of the account ends, and so does
        every password-reset link still open."""
        self.password_hash = passwords.hash_password(password)
        self.session_version = (self.session_version or 0) + 1
        close_password_resets(self)

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


#: a phone number as a sign-in name: digits with an optional leading +, 6 to
#: 15 of them; the rule of order contacts (:data:`kameng.orders.checkout.PHONE`)
PHONE = re.compile(r"^\+?[0-9]{6,15}\Z")


def normalize_email(email: str) -> str:
    email = (email or "").strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or len(email) > 254 or any(c.isspace() or c < " " for c in email):
        raise AccountError("invalid email address")
    return f"{local}@{domain.lower()}"


def normalize_phone(phone: str) -> str:
    """A phone number as it is stored and looked up: without spaces and
    dashes ("138 0013-8000" is 13800138000)."""
    compact = (phone or "").strip().replace(" ", "").replace("-", "") if isinstance(phone, str) else ""
    if not PHONE.match(compact):
        raise AccountError("invalid phone number")
    return compact


def check_password_strength(password: str) -> None:
    if len(password or "") < 10:
        raise AccountError("the password must have at least 10 characters")


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def create_user(db, email: str, password: str, role: str = "buyer", display_name: str = "",
                phone: str | None = None) -> User:
    """A new account. ``email`` is stored as entered (its domain in lower
    case) and must be new in any case; ``phone``, when given, must be new too."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}")
    email = normalize_email(email)
    phone = normalize_phone(phone) if phone else None
    check_password_strength(password)
    if user_by_email(db, email) is not None:
        raise AccountError(f"an account with {email} already exists")
    if phone is not None and user_by_phone(db, phone) is not None:
        raise AccountError("an account with this phone number already exists")
    user = User(email=email, role=role, display_name=display_name, phone=phone)
    user.set_password(password)
    db.add(user)
    db.flush()
    return user


def user_by_email(db, email: str) -> User | None:
    """The account of ``email`` (normalised), its case ignored: the exact
    spelling first, else the oldest account spelled otherwise."""
    user = db.scalar(select(User).where(User.email == email))
    if user is None:
        user = db.scalar(select(User).where(func.lower(User.email) == email.lower()).order_by(User.id).limit(1))
    return user


def user_by_phone(db, phone: str) -> User | None:
    """The account whose phone is ``phone`` (normalised)."""
    return db.scalar(select(User).where(User.phone == phone))


def find_user(db, identifier: str) -> User | None:
    """The account ``identifier`` names: an email address (it has an @; any
    case) or a phone number. None for no account and for anything else."""
    identifier = identifier.strip() if isinstance(identifier, str) else ""
    try:
        if "@" in identifier:
            return user_by_email(db, normalize_email(identifier))
        return user_by_phone(db, normalize_phone(identifier))
    except AccountError:
        return None


class LoginResult:
    def __init__(self, user=None, locked_until=None):
        self.user = user
        self.locked_until = locked_until

    @property
    def ok(self):
        return self.user is not None


def login_key(identifier: str) -> str:
    """The rate limiter's name for the account ``identifier`` (an email or a
    phone number) signs in to, an unknown one included. An account is
    counted under its email however it signs in: see :func:`authenticate`."""
    identifier = identifier.strip() if isinstance(identifier, str) else ""
    try:
        name = normalize_email(identifier).lower() if "@" in identifier else normalize_phone(identifier)
    except AccountError:
        name = identifier[:254]
    return "login:" + name


def authenticate(db, email: str, password: str, max_failures: int = 5, lockout_minutes: int = 15,
                 engine=None, sign_in: bool = True) -> LoginResult:
    """Check a password; ``email`` is the sign-in name, an email address or
    the account's phone number. ``max_failures`` wrong passwords within about
    ``lockout_minutes`` lock the account for ``lockout_minutes``: even the
    right password is refused until then (``kameng admin reset-password``
    and a password-reset link lift it). Wrong passwords given with the
    email and with the phone count together. An identifier without an
    account is answered alike, locks included, and takes as long: the
    answers tell no one which accounts exist. ``max_failures`` or
    ``lockout_minutes`` 0: no lockout. ``sign_in`` False: only a check (the
    profile's current password), the last sign-in time stays.

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
    key = login_key(user.email)  # the same count whichever name signs in
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
    if sign_in:
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


# -- password-reset links ------------------------------------------------------------------------

#: how long a reset link works
RESET_MINUTES = 30
#: reset links one account may have open at once; more requests send nothing
RESET_MAX_OPEN = 3
#: a reset token as :func:`create_password_reset` makes it (``token_urlsafe(32)``)
RESET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}\Z")


def create_password_reset(db, user: User, ip: str = "", minutes: int = RESET_MINUTES,
                          max_open: int = RESET_MAX_OPEN) -> str | None:
    """A new reset link's token for ``user``: returned once, only its
    SHA-256 is stored. None while ``max_open`` links of the account are
    still open (unused and unexpired): a flood of requests sends a few
    emails, not one each."""
    now = utcnow()
    # the account's row locked: concurrent requests count the open links one after another
    db.scalar(select(User.id).where(User.id == user.id).with_for_update())
    db.execute(delete(PasswordReset).where(PasswordReset.user_id == user.id,
                                           PasswordReset.expires_at < now - dt.timedelta(days=1)))
    still_open = db.scalar(select(func.count()).select_from(PasswordReset).where(
        PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None), PasswordReset.expires_at > now)) or 0
    if still_open >= max_open:
        return None
    token = secrets.token_urlsafe(32)
    db.add(PasswordReset(user_id=user.id, token_hash=_token_hash(token), created_at=now,
                         expires_at=now + dt.timedelta(minutes=minutes), ip=(ip or "")[:64]))
    db.flush()
    return token


def password_reset_for(db, token: str) -> PasswordReset | None:
    """The open reset link ``token`` names (unused, unexpired, of an active
    account), or None. Looked up by the token's hash: no comparison of
    secrets whose time could tell how much of a guess was right."""
    if not isinstance(token, str) or not RESET_TOKEN.match(token):
        return None
    row = db.scalar(select(PasswordReset).where(PasswordReset.token_hash == _token_hash(token)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    user = db.get(User, row.user_id)
    return row if user is not None and user.is_active else None


def consume_password_reset(db, token: str, new_password: str) -> User | None:
    """Use a reset link: set ``new_password`` (its strength is checked
    first: :class:`AccountError`, the link stays usable), which signs the
    account out everywhere, lifts a sign-in lock and closes the account's
    other links. None when the link is unknown, expired or used; of two
    concurrent uses exactly one succeeds."""
    check_password_strength(new_password)
    row = password_reset_for(db, token)
    if row is None:
        return None
    now = utcnow()
    taken = db.execute(update(PasswordReset)
                       .where(PasswordReset.id == row.id, PasswordReset.used_at.is_(None),
                              PasswordReset.expires_at > now)
                       .values(used_at=now))
    if taken.rowcount != 1:
        return None
    user = db.get(User, row.user_id)
    user.set_password(new_password)
    user.failed_logins = 0
    user.locked_until = None
    return user


def close_password_resets(user: User) -> None:
    """Every reset link of ``user`` still open stops working (its password
    changed); nothing for an account not written yet."""
    db = object_session(user)
    if db is None or user.id is None:
        return
    db.execute(update(PasswordReset).where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
               .values(used_at=utcnow()))
