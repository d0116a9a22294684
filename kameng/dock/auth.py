"""Signed requests of the docking API (API.md "Docking API", docs/docking.md).

Every request carries four headers::

    X-Kameng-Key        the key id (dk_…)
    X-Kameng-Timestamp  unix seconds, within 300 s of the shop's clock
    X-Kameng-Nonce      8 to 64 of A-Z a-z 0-9 _ -, never reused with this key
    X-Kameng-Signature  hex HMAC-SHA256(secret, string to sign)

and the string to sign is::

    METHOD \\n PATH \\n SORTED_QUERY \\n SHA256_HEX(BODY) \\n TIMESTAMP \\n NONCE

SORTED_QUERY is the query string's ``k=v`` pairs exactly as sent (not
decoded), sorted, joined by ``&``; empty when there is none. The body is
hashed as the bytes sent (an empty body hashes to ``e3b0c442…``).

The first half of this module is pure (no database, no Pyramid) so that the
``dock`` supplier connector, which calls another kameng shop, signs its
requests and checks that shop's callbacks with the very same code:
:func:`sign_request`, :func:`signature`, :func:`check_signature`,
:func:`check_request`. Callbacks from this shop are signed the same way
with the key that placed the order. The second half authenticates an
incoming request against the ``dock_keys`` table and records its nonce in
the request's transaction.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from kameng import ratelimit
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.i18n import _

HEADER_KEY = "X-Kameng-Key"
HEADER_TIMESTAMP = "X-Kameng-Timestamp"
HEADER_NONCE = "X-Kameng-Nonce"
HEADER_SIGNATURE = "X-Kameng-Signature"
#: seconds a timestamp may be off the receiver's clock, either way
MAX_SKEW = 300
#: a nonce must be remembered while a request carrying it could still be
#: accepted: its timestamp may be MAX_SKEW ahead, and is accepted MAX_SKEW after
NONCE_TTL = 2 * MAX_SKEW + 10

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_\-]{8,64}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
log = logging.getLogger(__name__)


# -- pure: signing and checking -------------------------------------------------------------


def sorted_query(query: str) -> str:
    """The query's raw ``k=v`` pairs, sorted and joined by ``&`` (empty parts dropped)."""
    return "&".join(sorted(part for part in (query or "").split("&") if part))


def body_sha256(body: bytes | str | None) -> str:
    if isinstance(body, str):
        body = body.encode("utf-8")
    return hashlib.sha256(body or b"").hexdigest()


def string_to_sign(method: str, path: str, query: str, body: bytes | str | None, timestamp, nonce: str) -> str:
    return "\n".join((method.upper(), path or "/", sorted_query(query), body_sha256(body), str(timestamp), nonce))


def signature(secret: str, method: str, path: str, query: str, body: bytes | str | None, timestamp,
              nonce: str) -> str:
    """Lowercase hex HMAC-SHA256 of :func:`string_to_sign` under ``secret``
    (the key's secret as text, used as its UTF-8 bytes)."""
    message = string_to_sign(method, path, query, body, timestamp, nonce)
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def split_url(url: str) -> tuple[str, str]:
    """``(path, raw query)`` of a full URL or of a path with a query."""
    parts = urlsplit(url)
    return parts.path or "/", parts.query


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign_request(key_id: str, secret: str, method: str, url: str, body: bytes | str | None = b"", *,
                 timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The four headers for a request to ``url`` (full URL, or path and
    query) with ``body`` (the exact bytes that will be sent).

    >>> headers = sign_request("dk_…", secret, "POST", "https://up.example/api/v1/dock/orders", body)
    """
    path, query = split_url(url)
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    nonce = nonce or new_nonce()
    return {HEADER_KEY: key_id, HEADER_TIMESTAMP: ts, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: signature(secret, method, path, query, body, ts, nonce)}


class SignatureError(Exception):
    """A request or callback that does not verify. ``code`` is the API
    error code, ``status`` the HTTP status; the message holds no secret."""

    def __init__(self, code: str, message: str, status: int = 401):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def check_timestamp(timestamp, now: float | None = None, max_skew: int = MAX_SKEW) -> int:
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("invalid_timestamp", "X-Kameng-Timestamp must be unix seconds")
    ts = int(timestamp)
    now = time.time() if now is None else now
    if abs(now - ts) > max_skew:
        raise SignatureError("stale_timestamp", f"the timestamp is more than {max_skew} seconds off")
    return ts


def check_format(nonce, sig) -> None:
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise SignatureError("invalid_nonce", "X-Kameng-Nonce must be 8 to 64 of A-Z a-z 0-9 _ -")
    if not isinstance(sig, str) or not _SIGNATURE.fullmatch(sig):
        raise SignatureError("invalid_signature", "the signature does not verify")


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time; hex is compared case-insensitively."""
    return hmac.compare_digest(expected.lower().encode("ascii"), given.lower().encode("ascii"))


def check_signature(secret: str, method: str, url: str, body: bytes | None, timestamp, nonce, sig, *,
                    now: float | None = None, max_skew: int = MAX_SKEW) -> None:
    """Raise :class:`SignatureError` unless ``sig`` signs this request
    under ``secret`` and ``timestamp`` is within ``max_skew`` of ``now``.
    Remembering nonces is the caller's part."""
    check_timestamp(timestamp, now, max_skew)
    check_format(nonce, sig)
    path, query = split_url(url)
    if not signatures_equal(signature(secret, method, path, query, body, timestamp, nonce), sig):
        raise SignatureError("invalid_signature", "the signature does not verify")


def check_request(secret: str, request, *, now: float | None = None, max_skew: int = MAX_SKEW) -> tuple[str, str]:
    """:func:`check_signature` for a WebOb/Pyramid ``request`` (a callback
    from an upstream kameng shop). Returns ``(key_id, nonce)``."""
    h = request.headers
    missing = [n for n in (HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE) if not h.get(n)]
    if missing:
        raise SignatureError("missing_credentials", f"missing header {missing[0]}")
    url = request.path + ("?" + request.query_string if request.query_string else "")
    check_signature(secret, request.method, url, request.body, h[HEADER_TIMESTAMP], h[HEADER_NONCE],
                    h[HEADER_SIGNATURE], now=now, max_skew=max_skew)
    return h[HEADER_KEY], h[HEADER_NONCE]


# -- IP allow-lists ---------------------------------------------------------------------------------


def parse_allowlist(text: str) -> list:
    """One IP or CIDR a line (``#`` comments allowed); ValueError names the bad line."""
    nets = []
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            nets.append(ipaddress.ip_network(line, strict=False))
        except ValueError:
            raise ValueError(line[:60]) from None
    return nets


def ip_allowed(allowlist: str, addr: str | None) -> bool:
    nets = parse_allowlist(allowlist)
    if not nets:
        return True
    try:
        ip = ipaddress.ip_address((addr or "").split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in nets)


# -- the server side ---------------------------------------------------------------------------------


@dataclass
class Caller:
    """Who a verified docking request is from."""

    key: object  # DockKey
    user: object  # User


def _refuse(exc: SignatureError) -> APIError:
    return APIError(exc.status, exc.code, _MESSAGES.get(exc.code, exc.message))


class _Failures:
    """Refused requests counted per address and per key
    (``kameng.limits.dock_failures_per_ip_per_minute`` and
    ``…_per_key_per_minute``): over either, a request is answered 429
    ``rate_limited`` before its signature is checked. Requests from other
    addresses and with other keys go on as before."""

    def __init__(self, request):
        self.request = request
        self.engine = request.registry["kameng.write_engine"]
        self.per_ip = ratelimit.setting(request, "kameng.limits.dock_failures_per_ip_per_minute")
        self.per_key = ratelimit.setting(request, "kameng.limits.dock_failures_per_key_per_minute")
        # REMOTE_ADDR, not client_addr: X-Forwarded-For is the client's to write
        self.ip = f"dock_failures_per_ip:{request.remote_addr or '-'}"
        self.key = None

    def _refuse(self):
        return ratelimit.refuse(self.request, _("Too many refused requests; wait a minute before you try again."),
                                ratelimit.retry_after())

    def check_ip(self) -> None:
        if ratelimit.over(self.engine, self.ip, self.per_ip):
            raise self._refuse()

    def check_key(self, key_id: str) -> None:
        self.key = f"dock_failures_per_key:{key_id}"
        if ratelimit.over(self.engine, self.key, self.per_key):
            raise self._refuse()

    def count(self) -> None:
        ratelimit.hit(self.engine, self.ip, self.per_ip)
        if self.key is not None:
            ratelimit.hit(self.engine, self.key, self.per_key)


def authenticate(request) -> Caller:
    """Verify the request's signature against its key, the key's IP
    allow-list, and record its nonce. Raises
    :class:`~kameng.errors.APIError` 401 (403 for an address not allowed,
    429 after too many refusals)."""
    failures = _Failures(request)
    failures.check_ip()
    try:
        return _verify(request, failures)
    except SignatureError as exc:
        failures.count()
        raise _refuse(exc) from None


def _verify(request, failures: _Failures) -> Caller:
    from kameng.accounts import User
    from kameng.dock.models import DockKey, DockNonce, find_key, key_secret

    h = request.headers
    values = [h.get(n) for n in (HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)]
    if not all(values):
        raise SignatureError("missing_credentials", "missing credentials")
    key_id, timestamp, nonce, sig = values
    check_timestamp(timestamp)
    check_format(nonce, sig)
    db = request.db
    key = find_key(db, key_id)
    user = db.get(User, key.user_id) if key is not None else None
    if key is None or not key.active or user is None or not user.is_active:
        raise SignatureError("invalid_key", "unknown or revoked key")
    failures.check_key(key.key_id)  # only real keys: no bucket per made-up key id
    secret = key_secret(request.registry["kameng.keyring"], key)
    expected = signature(secret, request.method, request.path, request.query_string, request.body, timestamp, nonce)
    if not signatures_equal(expected, sig):
        raise SignatureError("invalid_signature", "the signature does not verify")
    # REMOTE_ADDR, not client_addr: X-Forwarded-For is the client's to write
    # (waitress sets REMOTE_ADDR from it only for a trusted proxy)
    if not ip_allowed(key.ip_allowlist, request.remote_addr):
        raise SignatureError("ip_not_allowed", "this address may not use this key", status=403)
    now = utcnow()
    mine = f"{key.key_id}:{nonce}"
    try:
        with db.begin_nested():
            db.add(DockNonce(key_id=key.key_id, nonce=nonce, seen_at=now))
            db.flush()
    except IntegrityError:
        # an earlier attempt of this very request (pyramid_retry runs it
        # again on a conflict) kept it below; anyone else is a replay
        if request.environ.get(_NONCE_KEPT) != mine:
            raise SignatureError("nonce_reused", "this nonce was used already") from None
    request.environ[_NONCE_KEPT] = mine
    # The nonce is written in the request's transaction, which a refusal
    # (409 insufficient_balance, 422 …) rolls back: then write it again on
    # its own, or the same signed request could be sent again later and pass.
    request.tm.get().addAfterAbortHook(_keep_nonce, args=(request.registry["kameng.write_engine"], key.key_id,
                                                          nonce, now))
    # at most one write a minute: a key's row is not a lock its requests queue on
    db.execute(update(DockKey).where(DockKey.id == key.id, (DockKey.last_used_at.is_(None))
                                     | (DockKey.last_used_at < now - _LAST_USED_EVERY))
               .values(last_used_at=now).execution_options(synchronize_session=False))
    request.environ["kameng.actor"] = f"dock:{key.key_id}"
    return Caller(key=key, user=user)


_NONCE_KEPT = "kameng.dock.nonce"


def _keep_nonce(engine, key_id: str, nonce: str, seen_at) -> None:
    """After a refused request's transaction rolled back: its nonce stays used."""
    from kameng.dock.models import DockNonce

    table = DockNonce.__table__
    try:
        with engine.begin() as conn:
            conn.execute(table.insert().values(key_id=key_id, nonce=nonce, seen_at=seen_at))
    except IntegrityError:
        pass  # kept already (a replay that got in first is refused all the same)
    except Exception:  # never turn the refusal into a 500; log it
        log.exception("dock_nonce_not_kept", extra={"key_id": key_id})


def prune_nonces(request, payload=None) -> int:
    """Forget nonces that no acceptable request can carry any more (a scheduled job)."""
    from kameng.dock.models import DockNonce

    cutoff = utcnow() - dt.timedelta(seconds=NONCE_TTL)
    return request.db.execute(delete(DockNonce).where(DockNonce.seen_at < cutoff)).rowcount or 0


#: refusals in the reader's language (the code is what clients act on)
_MESSAGES = {
    "missing_credentials": _("Sign the request: X-Kameng-Key, X-Kameng-Timestamp, X-Kameng-Nonce and "
                             "X-Kameng-Signature are required."),
    "invalid_timestamp": _("X-Kameng-Timestamp must be the time in unix seconds."),
    "stale_timestamp": _("The request's timestamp is more than 300 seconds off; check the clock."),
    "invalid_nonce": _("X-Kameng-Nonce must be 8 to 64 letters, digits, - or _."),
    "invalid_key": _("Unknown or revoked key."),
    "invalid_signature": _("The signature does not match the request."),
    "ip_not_allowed": _("This key may not be used from this address."),
    "nonce_reused": _("This nonce was used already; sign every request with a new one."),
}
_LAST_USED_EVERY = dt.timedelta(seconds=60)
