"""Endpoints, deliveries and the send job.

Flow: the core calls ``kameng_notify`` (after the triggering transaction
committed, in a job of its own). For each active endpoint subscribed to the
event, :func:`queue_event` adds a delivery row whose body is serialised
once, and queues a ``webhooks.send`` job for it, so every endpoint is
tried, and retried, on its own.

The send job (:func:`send`) works in three steps, so no database
transaction is open while it waits for the receiver (on SQLite an open write
transaction would stop every checkout for up to the timeout):

1. read the delivery and its endpoint, and decrypt the secret, in a short
   read-only session;
2. sign with the current time and POST through :mod:`kameng.httpclient`
   (timeout, no redirects, the private-address policy checked again);
3. record the attempt in the job's own transaction, with the delivery row
   locked; on failure, queue the next automatic attempt with the delay of
   :data:`RETRY_DELAYS`, or mark the delivery failed after the last one.

Retries are the plugin's own schedule (a new job queued with a delay), not
the core's job retry: that one only covers the plugin's own errors (a
database that is down), and caps its back-off at about an hour.

A job may run twice (a worker died holding it): the attempt is then sent
twice with the same id, and recorded once (``(delivery, ref)`` is unique).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from kameng import audit, httpclient, jobs
from kameng.db import utcnow
from kameng.errors import APIError
from kameng.i18n import _

from kameng_webhooks import __version__
from kameng_webhooks.models import DELIVERED, FAILED, PENDING, Attempt, Delivery, Endpoint
from kameng_webhooks.signing import HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, new_secret, sign

log = logging.getLogger(__name__)

PLUGIN_ID = "webhooks"
SEND = "webhooks.send"
CLEANUP = "webhooks.cleanup"
TEST_EVENT = "webhook.test"
USER_AGENT = f"kameng-webhooks/{__version__}"

#: seconds from a failed automatic attempt to the next: after the 1st 30 s,
#: after the 2nd 2 min, then 10 min, 1 h, 6 h, 12 h, then 24 h for any further
RETRY_DELAYS = (30, 120, 600, 3600, 6 * 3600, 12 * 3600, 24 * 3600)
#: the answer's body kept in the log, in characters
SNIPPET = 1000
#: events never sent, whatever an endpoint subscribes to (they carry
#: private data: password-reset links, a new account's address)
PRIVATE_PREFIXES = ("account.",)

#: the subscription choices the admin form offers as boxes to tick
GROUPS = ("*", "order.*", "payment.*", "refund.*", "stock.low", "backup.failed")
GROUP_LABELS = {"*": _("Every event"), "order.*": _("Orders (order.*)"), "payment.*": _("Payments (payment.*)"),
                "refund.*": _("Refunds (refund.*)"), "stock.low": _("Low stock (stock.low)"),
                "backup.failed": _("Failed backups (backup.failed)")}
_PATTERN = re.compile(r"\*|[a-z][a-z0-9_]{0,30}\.\*|[a-z][a-z0-9_]{0,30}(\.[a-z0-9_]{1,30}){1,3}")
MAX_PATTERNS = 40
MAX_URL = 1000
MAX_DESCRIPTION = 200


# -- events and subscriptions ----------------------------------------------------------------


def is_private(event: str) -> bool:
    return event == "account" or event.startswith(PRIVATE_PREFIXES)


def subscribed(patterns, event: str) -> bool:
    """Whether an endpoint with ``patterns`` gets ``event``: ``*`` (every
    event), ``order.*`` (a family) or the exact name. Never an ``account.*`` event."""
    if is_private(event):
        return False
    for p in patterns:
        if p == "*" or p == event or (p.endswith(".*") and event.startswith(p[:-1])):
            return True
    return False


def parse_events(values) -> str:
    """The subscription from the form's boxes and its free-text field (names
    separated by spaces, commas or lines), normalised to space-separated
    patterns. Raises :class:`APIError` 422 naming the field ``events``."""
    tokens = []
    for value in values:
        if not isinstance(value, str):
            continue
        tokens.extend(t for t in re.split(r"[\s,]+", value.replace("\x00", "")) if t)
    out = []
    for token in tokens:
        token = token.strip().lower()
        if len(token) > 64 or not _PATTERN.fullmatch(token):
            raise APIError(422, "invalid_request", _("Not an event name or pattern: ${name}",
                                                     mapping={"name": token[:64]}), field="events")
        if is_private(token) or token == "account.*":
            raise APIError(422, "invalid_request", _("account.* events carry private data and are never sent."),
                           field="events")
        if token not in out:
            out.append(token)
    if not out:
        raise APIError(422, "invalid_request", _("Choose at least one event."), field="events")
    if len(out) > MAX_PATTERNS:
        raise APIError(422, "invalid_request", _("At most ${n} event names.", mapping={"n": MAX_PATTERNS}),
                       field="events")
    if "*" in out:
        out = ["*"]
    return " ".join(out)


# -- endpoints -------------------------------------------------------------------------------


def clean_url(url) -> str:
    """An endpoint URL the shop may call: ``https://`` (plain ``http`` and
    private or loopback addresses only where ``kameng.http.allow_private_targets``
    is on), no password, no fragment. APIError 422 naming ``url``."""
    def refuse(message):
        return APIError(422, "invalid_request", message, field="url")

    if not isinstance(url, str) or not url.strip():
        raise refuse(_("Give the endpoint's address."))
    url = url.strip()
    if len(url) > MAX_URL or re.search(r"[\x00-\x20\x7f]", url):
        raise refuse(_("The address may be at most ${n} characters, without spaces.", mapping={"n": MAX_URL}))
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError:
        raise refuse(_("This is not an address kameng can call.")) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse(_("The address must start with https://"))
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refuse(_("Put no user name or password in the address: the signature authenticates the shop."))
    if parts.fragment:
        raise refuse(_("The address may not have a #fragment."))
    try:
        httpclient.check_url(url)
    except httpclient.HttpError as exc:
        reason = str(exc)
        if "https://" in reason:
            raise refuse(_("The address must start with https://")) from None
        if "private" in reason:
            raise refuse(_("The address points at a private or loopback address, which kameng does not call.")) \
                from None
        raise refuse(_("This is not an address kameng can call.")) from None
    return url


def clean_description(text) -> str:
    if text is None:
        return ""
    if not isinstance(text, str) or len(text.strip()) > MAX_DESCRIPTION:
        raise APIError(422, "invalid_request", _("The description may be at most ${n} characters.",
                                                 mapping={"n": MAX_DESCRIPTION}), field="description")
    return text.replace("\x00", "").strip()


def _aad(endpoint_id: int) -> str:
    return f"webhooks:endpoint:{endpoint_id}"


def secret_of(keyring, endpoint: Endpoint) -> str:
    return keyring.decrypt(endpoint.secret, _aad(endpoint.id))


def set_secret(keyring, endpoint: Endpoint) -> str:
    """A new secret for ``endpoint`` (stored encrypted); returns it in clear."""
    secret = new_secret()
    endpoint.secret = keyring.encrypt(secret, _aad(endpoint.id))
    return secret


def create_endpoint(request, url, description, events, active=True) -> tuple[Endpoint, str]:
    """A new endpoint and its secret (shown to the admin once)."""
    endpoint = Endpoint(url=clean_url(url), description=clean_description(description), events=events,
                        active=bool(active), secret="", created_by=audit.actor_of(request)[:254])
    request.db.add(endpoint)
    request.db.flush()  # the id binds the ciphertext to this row
    secret = set_secret(request.registry["kameng.keyring"], endpoint)
    audit.record(request.db, audit.actor_of(request), "webhooks.endpoint.create", f"webhook:{endpoint.id}",
                 url=httpclient.safe_url(endpoint.url), events=endpoint.events, active=endpoint.active)
    return endpoint, secret


def update_endpoint(request, endpoint: Endpoint, url, description, events, active) -> None:
    endpoint.url = clean_url(url)
    endpoint.description = clean_description(description)
    endpoint.events = events
    endpoint.active = bool(active)
    audit.record(request.db, audit.actor_of(request), "webhooks.endpoint.update", f"webhook:{endpoint.id}",
                 url=httpclient.safe_url(endpoint.url), events=endpoint.events, active=endpoint.active)


def set_active(request, endpoint: Endpoint, active: bool) -> None:
    """Switch an endpoint on or off. Off: no new deliveries, and its pending
    ones stop at their next attempt (a resend sends them once it is on again)."""
    endpoint.active = active
    audit.record(request.db, audit.actor_of(request), "webhooks.endpoint.enable" if active
                 else "webhooks.endpoint.disable", f"webhook:{endpoint.id}")


def rotate_secret(request, endpoint: Endpoint) -> str:
    secret = set_secret(request.registry["kameng.keyring"], endpoint)
    endpoint.secret_rotated_at = utcnow()
    audit.record(request.db, audit.actor_of(request), "webhooks.secret.rotate", f"webhook:{endpoint.id}")
    return secret


def reveal_secret(request, endpoint: Endpoint) -> str:
    audit.record(request.db, audit.actor_of(request), "webhooks.secret.reveal", f"webhook:{endpoint.id}")
    return secret_of(request.registry["kameng.keyring"], endpoint)


def delete_endpoint(request, endpoint: Endpoint) -> int:
    """Delete the endpoint and its delivery log; how many deliveries went."""
    db = request.db
    pks = select(Delivery.id).where(Delivery.endpoint_id == endpoint.id)
    n = db.scalar(select(func.count()).select_from(Delivery).where(Delivery.endpoint_id == endpoint.id)) or 0
    db.execute(delete(Attempt).where(Attempt.delivery_pk.in_(pks)).execution_options(synchronize_session=False))
    db.execute(delete(Delivery).where(Delivery.endpoint_id == endpoint.id)
               .execution_options(synchronize_session=False))
    audit.record(db, audit.actor_of(request), "webhooks.endpoint.delete", f"webhook:{endpoint.id}",
                 url=httpclient.safe_url(endpoint.url), deliveries=n)
    db.delete(endpoint)
    return n


# -- deliveries ------------------------------------------------------------------------------


def new_delivery_id() -> str:
    return "wh_" + secrets.token_hex(16)


def body_of(delivery_id: str, event: str, created_at: dt.datetime, data: dict) -> str:
    """The JSON body, serialised once (compact, UTF-8 as is)."""
    return json.dumps({"id": delivery_id, "event": event, "created_at": created_at.isoformat(), "data": data},
                      ensure_ascii=False, separators=(",", ":"))


def settings(request) -> dict:
    return request.plugin_settings(PLUGIN_ID)


def add_delivery(request, endpoint: Endpoint, event: str, data: dict, max_attempts: int | None = None) -> Delivery:
    """A delivery of ``event`` to ``endpoint`` and its first job, in the caller's transaction."""
    now = utcnow()
    delivery_id = new_delivery_id()
    if max_attempts is None:
        max_attempts = int(settings(request).get("max_attempts") or len(RETRY_DELAYS) + 1)
    delivery = Delivery(delivery_id=delivery_id, endpoint_id=endpoint.id, event=event,
                        body=body_of(delivery_id, event, now, data), status=PENDING, max_attempts=max_attempts,
                        auto_attempts=0, attempt_count=0, next_attempt_at=now, last_error="", created_at=now)
    request.db.add(delivery)
    request.db.flush()
    _queue_auto(request.db, delivery, 1, delay=0)
    return delivery


def _queue_auto(db, delivery: Delivery, n: int, delay: float) -> None:
    ref = f"auto:{n}"
    jobs.enqueue(db, SEND, {"delivery": delivery.delivery_id, "ref": ref}, delay=delay,
                 dedupe_key=f"webhooks:{delivery.delivery_id}:{ref}", new_key=True, max_attempts=5)


def queue_event(request, event: str, data: dict) -> list[Delivery]:
    """``kameng_notify``: a delivery for every active endpoint subscribed to ``event``."""
    if not isinstance(event, str) or is_private(event) or event == TEST_EVENT:
        return []
    made = []
    for endpoint in request.db.scalars(select(Endpoint).where(Endpoint.active.is_(True)).order_by(Endpoint.id)):
        if subscribed(endpoint.event_list, event):
            made.append(add_delivery(request, endpoint, event, data))
    if made:
        log.info("webhooks_queued", extra={"event": event, "deliveries": [d.delivery_id for d in made]})
    return made


def send_test(request, endpoint: Endpoint) -> Delivery:
    """A ``webhook.test`` delivery to one endpoint: tried once, resend as you like."""
    if not endpoint.active:
        raise APIError(409, "endpoint_disabled", _("The endpoint is disabled: enable it first."))
    data = {"message": "A test event from the shop's admin.", "shop": request.shop.get("name", ""),
            "shop_url": request.public_url("home")}
    delivery = add_delivery(request, endpoint, TEST_EVENT, data, max_attempts=1)
    audit.record(request.db, audit.actor_of(request), "webhooks.test", f"webhook:{endpoint.id}",
                 delivery=delivery.delivery_id)
    return delivery


def resend(request, delivery: Delivery) -> str:
    """Queue the stored body again, as a new attempt with the same id."""
    endpoint = request.db.get(Endpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        raise APIError(409, "endpoint_disabled", _("The endpoint is disabled: enable it first."))
    ref = f"resend:{secrets.token_hex(8)}"
    jobs.enqueue(request.db, SEND, {"delivery": delivery.delivery_id, "ref": ref},
                 dedupe_key=f"webhooks:{delivery.delivery_id}:{ref}", new_key=True, max_attempts=5)
    audit.record(request.db, audit.actor_of(request), "webhooks.resend", f"webhook:{endpoint.id}",
                 delivery=delivery.delivery_id)
    return ref


def retry_delay(n: int) -> float:
    """Seconds after the ``n``-th failed automatic attempt (with up to +10 % jitter)."""
    base = RETRY_DELAYS[min(n, len(RETRY_DELAYS)) - 1]
    return base * random.uniform(1.0, 1.1)


# -- the send job ----------------------------------------------------------------------------


@dataclass
class Plan:
    delivery_pk: int
    delivery_id: str
    endpoint_id: int
    event: str
    url: str
    body: bytes
    secret: str = field(repr=False)  # never in a repr, a log line or a traceback
    ref: str = ""


@dataclass
class Outcome:
    timestamp: int
    headers: dict
    started_at: dt.datetime
    duration_ms: int
    status_code: int | None = None
    response: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _plan(request, delivery_id: str, ref: str) -> Plan | str | None:
    """Step 1, in a read-only session closed before the POST: what to send,
    ``"disabled"`` when the endpoint is switched off, or ``None`` when there
    is nothing to do (deleted, already delivered, a stale job)."""
    factory = request.registry["kameng.session_factory"]
    with factory() as s:
        delivery = s.scalar(select(Delivery).where(Delivery.delivery_id == delivery_id))
        if delivery is None:
            return None
        if ref.startswith("auto:"):
            if delivery.status != PENDING or f"auto:{delivery.auto_attempts + 1}" != ref:
                return None
        elif s.scalar(select(Attempt.id).where(Attempt.delivery_pk == delivery.id, Attempt.ref == ref)):
            return None
        endpoint = s.get(Endpoint, delivery.endpoint_id)
        if endpoint is None:
            return None
        if not endpoint.active:
            return "disabled"
        secret = secret_of(request.registry["kameng.keyring"], endpoint)
        return Plan(delivery.id, delivery.delivery_id, endpoint.id, delivery.event, endpoint.url,
                    delivery.body.encode("utf-8"), secret, ref)


def headers_for(plan: Plan, timestamp: int) -> dict:
    return {"Content-Type": "application/json", HEADER_ID: plan.delivery_id, HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: sign(plan.secret, plan.delivery_id, timestamp, plan.body), "User-Agent": USER_AGENT}


def _post(plan: Plan, timeout: float) -> Outcome:
    """Step 2: sign at send time and POST; never raises."""
    timestamp = int(time.time())
    headers = headers_for(plan, timestamp)
    out = Outcome(timestamp=timestamp, headers=headers, started_at=utcnow(), duration_ms=0)
    started = time.monotonic()
    try:
        resp = httpclient.request("POST", plan.url, content=plan.body, headers=headers, timeout=timeout)
    except httpclient.HttpError as exc:
        out.error = str(exc)[:255]
    except Exception as exc:  # noqa: BLE001 -- any other failure is a failed attempt, never a stuck job
        out.error = f"the request could not be made: {type(exc).__name__}"
    else:
        out.status_code = resp.status
        out.response = resp.body[:SNIPPET * 4].decode("utf-8", "replace")[:SNIPPET]
        if not out.ok:
            out.error = (_redirect_note(resp) if 300 <= resp.status < 400 else f"HTTP {resp.status}")[:255]
    out.duration_ms = round((time.monotonic() - started) * 1000)
    return out


def _redirect_note(resp) -> str:
    target = resp.header("location")
    try:
        where = httpclient.safe_url(target) if target.startswith(("http://", "https://")) else "elsewhere"
    except ValueError:  # a Location that is not a URL
        where = "elsewhere"
    return f"HTTP {resp.status}: redirects are not followed (to {where})"


def send(request, payload) -> None:
    """The ``webhooks.send`` job: one attempt of one delivery."""
    delivery_id, ref = str(payload.get("delivery", ""))[:40], str(payload.get("ref", ""))[:64]
    if not re.fullmatch(r"auto:[1-9][0-9]{0,2}|resend:[0-9a-f]{16}", ref):
        return
    plan = _plan(request, delivery_id, ref)
    if plan is None:
        return
    if plan == "disabled":
        _record_disabled(request, delivery_id, ref)
        return
    timeout = float(settings(request).get("timeout_seconds") or httpclient.DEFAULT_TIMEOUT)
    outcome = _post(plan, timeout)
    _record(request, plan, outcome)


def _record_disabled(request, delivery_id: str, ref: str) -> None:
    """An automatic attempt due for a disabled endpoint: the delivery stops
    (a resend after the endpoint is enabled again sends it)."""
    db = request.db
    delivery = db.scalar(select(Delivery).where(Delivery.delivery_id == delivery_id).with_for_update())
    if delivery is None or not ref.startswith("auto:") or delivery.status != PENDING:
        return
    delivery.status, delivery.next_attempt_at = FAILED, None
    delivery.last_error = "the endpoint is disabled: not sent"
    log.info("webhook_skipped", extra={"delivery_id": delivery_id, "reason": "endpoint_disabled"})


def _record(request, plan: Plan, out: Outcome) -> None:
    """Step 3: the attempt and what follows from it, with the delivery
    locked. Every request that went out is logged; only the newest
    automatic attempt of a delivery still pending schedules the next one."""
    db = request.db
    delivery = db.scalar(select(Delivery).where(Delivery.id == plan.delivery_pk).with_for_update())
    if delivery is None:
        return  # deleted while we sent
    auto = plan.ref.startswith("auto:")
    attempt = Attempt(delivery_pk=delivery.id, ref=plan.ref, number=delivery.attempt_count + 1,
                      trigger="auto" if auto else "resend", started_at=out.started_at, duration_ms=out.duration_ms,
                      timestamp=out.timestamp, request_headers=json.dumps(out.headers), status_code=out.status_code,
                      response_body=out.response, error=out.error, ok=out.ok)
    try:
        with db.begin_nested():
            db.add(attempt)
            db.flush()
    except IntegrityError:
        return  # recorded by another run of this job
    delivery.attempt_count += 1
    delivery.last_status_code = out.status_code
    delivery.last_error = out.error
    n = int(plan.ref[5:]) if auto else 0
    # a resend that delivered while this attempt was under way: no retries after it
    latest = auto and delivery.status == PENDING and n == delivery.auto_attempts + 1
    if auto:
        delivery.auto_attempts = max(delivery.auto_attempts, n)
    if out.ok:
        if delivery.status != DELIVERED:
            delivery.status, delivery.delivered_at = DELIVERED, out.started_at
        delivery.next_attempt_at = None
    elif latest:
        if n >= delivery.max_attempts:
            delivery.status, delivery.next_attempt_at = FAILED, None
        else:
            delay = retry_delay(n)
            delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
            _queue_auto(db, delivery, n + 1, delay)
    log.log(logging.INFO if out.ok else logging.WARNING, "webhook_attempt",
            extra={"delivery_id": delivery.delivery_id, "endpoint_id": plan.endpoint_id, "event": plan.event,
                   "attempt": attempt.number, "trigger": attempt.trigger, "status": out.status_code,
                   "ok": out.ok, "error": out.error, "url": httpclient.safe_url(plan.url),
                   "delivery_status": delivery.status})


# -- upkeep ----------------------------------------------------------------------------------


def cleanup(request, payload) -> None:
    """The daily ``webhooks.cleanup`` job: drop finished deliveries older
    than ``keep_days``, and re-encrypt secrets still under an old key (after
    ``kameng keys rotate``)."""
    db = request.db
    keep_days = int(settings(request).get("keep_days") or 30)
    cutoff = utcnow() - dt.timedelta(days=keep_days)
    for _batch in range(20):
        pks = list(db.scalars(select(Delivery.id).where(Delivery.created_at < cutoff, Delivery.status != PENDING)
                              .order_by(Delivery.id).limit(500)))
        if not pks:
            break
        db.execute(delete(Attempt).where(Attempt.delivery_pk.in_(pks)).execution_options(synchronize_session=False))
        db.execute(delete(Delivery).where(Delivery.id.in_(pks)).execution_options(synchronize_session=False))
    reencrypt(db, request.registry["kameng.keyring"])


def reencrypt(db, keyring) -> int:
    n = 0
    for endpoint in db.scalars(select(Endpoint).where(Endpoint.secret != "").with_for_update()):
        if keyring.key_id_of(endpoint.secret) != keyring.current_id:
            endpoint.secret = keyring.encrypt(secret_of(keyring, endpoint), _aad(endpoint.id))
            n += 1
    return n
