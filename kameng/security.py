"""Who is asking: session cookie or bearer token, roles as principals, and
the ACL on the root that maps roles to permissions."""
from __future__ import annotations

from pyramid.authorization import ALL_PERMISSIONS, Allow, Authenticated, Everyone, ACLHelper
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.session import SignedCookieSessionFactory
from pyramid.settings import asbool

from kameng import accounts

SESSION_USER = "uid"
SESSION_VERSION = "sv"


class Root:
    __acl__ = [
        (Allow, "role:admin", ALL_PERMISSIONS),
        (Allow, Authenticated, "account"),
        (Allow, Everyone, "view"),
    ]

    def __init__(self, request):
        self.request = request


def _bearer(request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _load_user(request):
    token = _bearer(request)
    if token is not None:
        return accounts.user_for_token(request.db, token)
    uid = request.session.get(SESSION_USER)
    if not isinstance(uid, int):
        return None
    user = request.db.get(accounts.User, uid)
    if user is None or not user.is_active or request.session.get(SESSION_VERSION) != user.session_version:
        return None
    return user


class SecurityPolicy:
    def __init__(self):
        self.acl = ACLHelper()

    def identity(self, request):
        return request.user

    def authenticated_userid(self, request):
        user = request.user
        return user.id if user is not None else None

    def principals(self, request):
        user = request.user
        out = [Everyone]
        if user is not None:
            out += [Authenticated, f"user:{user.id}", f"role:{user.role}"]
        return out

    def permits(self, request, context, permission):
        return self.acl.permits(context, self.principals(request), permission)

    def remember(self, request, userid, **kw):
        user = request.db.get(accounts.User, userid)
        request.session.invalidate()  # a new session id on login: no fixation
        request.session[SESSION_USER] = user.id
        request.session[SESSION_VERSION] = user.session_version
        return []

    def forget(self, request, **kw):
        user = request.user
        if user is not None and _bearer(request) is None:
            # the session cookie is signed, not stored: a copy of it (kept by
            # a shared computer, a proxy log) would open the account again
            # after the sign-out unless its version is retired here, which
            # signs this account out of every browser
            user.session_version = (user.session_version or 0) + 1
        request.session.invalidate()
        return []


def session_factory(settings, secret: str):
    """Signed-cookie sessions. The cookie is ``Secure`` on every request that
    arrived over HTTPS (waitress takes the scheme from a trusted proxy's
    ``X-Forwarded-Proto``), and on plain HTTP too with ``kameng.secure_cookies``."""
    common = {"cookie_name": "kameng_session", "httponly": True, "samesite": "Lax",
              "timeout": int(settings.get("kameng.session_timeout", 7200)), "reissue_time": 300}
    secure = SignedCookieSessionFactory(secret, secure=True, **common)
    plain = secure if asbool(settings.get("kameng.secure_cookies", False)) else \
        SignedCookieSessionFactory(secret, secure=False, **common)

    def factory(request):
        return secure(request) if request.scheme == "https" else plain(request)

    return factory


def includeme(config):
    settings = config.get_settings()
    secret = settings.get("kameng.session_secret")
    if not secret or len(secret) < 32:
        raise ValueError("kameng.session_secret must be set to a random string of at least 32 characters")
    config.set_session_factory(session_factory(settings, secret))
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True, check_origin=True)
    config.set_security_policy(SecurityPolicy())
    config.set_root_factory(Root)
    config.add_request_method(_load_user, "user", reify=True)
