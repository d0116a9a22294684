"""Queuing and sending.

Two steps, so that no email is lost and no transaction waits on a mail server:

1. ``kameng_notify`` (the core's delivery job, after the event's commit)
   only writes: one row per recipient in ``notify_email_messages`` and one
   job ``notify_email.send`` per row, in the core job's transaction. The
   rows and their jobs therefore exist exactly once per event; an event
   that happens once per order (paid, delivered, a refund) is also keyed
   by order, refund and recipient, so the core saying it twice mails once.
2. The job ``notify_email.send`` renders the email (card keys are read
   from the order now, never stored), marks the row ``sending`` and
   commits, talks to the SMTP server with no transaction open, then marks
   it ``sent``. A failure is recorded on the row (committed) and raised,
   so the core retries the job with back-off; a row already ``sent`` is
   never sent again.

Sending and recording are not atomic: a worker that dies after the server
took the email and before ``sent`` is committed sends it again on the
retry. Emails are at least once, never lost; a duplicate is possible in
that window only.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from kameng import jobs
from kameng.db import utcnow
from kameng.i18n import _

from kameng_notify_email import mailer, render
from kameng_notify_email.events import ACCOUNT, ADMIN, BUYER, EVENTS, OTHER, TEST, TEST_BODY, TEST_SUBJECT, spec_for
from kameng_notify_email.models import FAILED, QUEUED, SENDING, SENT, SKIPPED, Message, Switch, Template

log = logging.getLogger(__name__)

PLUGIN_ID = "notify_email"
SEND = "notify_email.send"
CLEANUP = "notify_email.cleanup"
#: finished rows of the send log are kept this long
KEEP_DAYS = 90
#: with the core's back-off (15 s × 2ⁿ, capped at an hour): tries for about eight hours
MAX_ATTEMPTS = 16
LANGUAGES = ("zh_CN", "en")
#: fields of an event that are never stored in the send log's data
_LINK_FIELDS = ("url", "to")
#: names that never go into an alert's details
_PRIVATE = ("url", "token", "secret", "password", "key", "sign", "cert", "card")

NO_ADMIN_EMAIL = _("No admin email address is set.")
NO_BUYER_EMAIL = _("The buyer left no email address.")
NO_ACCOUNT_EMAIL = _("The account has no valid email address.")
PAID_AND_DELIVERED = _("Delivered at once: the delivery email tells the buyer.")
NO_LINK = _("The link of this email is no longer stored.")


class SendFailed(Exception):
    """Raised by the send job so the core retries it; the text names no secret."""


# -- switches and templates ----------------------------------------------------------------

def event_enabled(db, event: str) -> bool:
    row = db.get(Switch, event)
    return row is None or bool(row.enabled)


def set_event_enabled(db, event: str, enabled: bool) -> None:
    row = db.get(Switch, event)
    if row is None:
        db.add(Switch(event=event, enabled=enabled, updated_at=utcnow()))
    else:
        row.enabled, row.updated_at = enabled, utcnow()
    db.flush()


def stored_template(db, event: str, language: str) -> Template | None:
    return db.scalar(select(Template).where(Template.event == event, Template.language == language))


def template_for(request, event: str, language: str) -> tuple[str, str, bool]:
    """``(subject, body, customised)`` for an event in a language: the
    merchant's version, else the default in that language. A text that
    does not check (a translation that broke a placeholder) falls back to
    the English default, which always does."""
    spec = EVENTS[event]
    row = stored_template(request.db, event, language)
    if row is not None:
        try:
            render.check(row.subject, row.body, spec.allowed)
            return row.subject, row.body, True
        except render.TemplateError:
            log.warning("notify_email_bad_template", extra={"event": event, "language": language})
    localizer = render.localizer_for(request, language)
    subject, body = localizer.translate(spec.subject), localizer.translate(spec.body)
    try:
        render.check(subject, body, spec.allowed)
    except render.TemplateError:
        subject, body = str(spec.subject), str(spec.body)
    return subject, body, False


# -- step 1: queue -------------------------------------------------------------------------

def queue(request, event: str, data: dict) -> list[Message]:
    """Write the rows (and their send jobs) for ``event``; no network."""
    spec = spec_for(event)
    if spec is None or not isinstance(data, dict):
        return []
    db = request.db
    if spec.optional and not event_enabled(db, spec.name):
        return []
    settings = request.plugin_settings(PLUGIN_ID)
    language = shop_language(request)
    targets = _recipients(request, spec, data, settings)
    skip_all = None
    if event == "order.paid" and event_enabled(db, "order.delivered"):
        from kameng.orders import service as orders

        order = orders.get(db, data.get("order_no"))
        if order is not None and order.status == "delivered":
            skip_all = PAID_AND_DELIVERED
    stored, secret = _split(request, event, data)
    out = []
    for address, skipped in targets:
        skipped = skipped or skip_all
        row = Message(dedupe_key=_dedupe_key(spec, event, data, address), event=event[:64], audience=spec.audience,
                      order_no=_order_no(data), recipient=address or "", language=language,
                      status=SKIPPED if skipped else QUEUED, attempts=0, error=str(skipped or ""),
                      data=stored, secret=secret if not skipped else "", created_at=utcnow(), updated_at=utcnow())
        try:
            with db.begin_nested():
                db.add(row)
                db.flush()
        except IntegrityError:  # the same email was queued already
            continue
        if not skipped:
            _enqueue(db, row)
        log.info("notify_email_queued", extra={"message_id": row.id, "event": event, "status": row.status,
                                               "recipient": render.mask(row.recipient)})
        out.append(row)
    return out


def _enqueue(db, row: Message) -> None:
    jobs.enqueue(db, SEND, {"id": row.id}, dedupe_key=f"notify_email:send:{row.id}", new_key=True,
                 max_attempts=MAX_ATTEMPTS)


def shop_language(request) -> str:
    lang = request.shop.get("default_language")
    return lang if lang in LANGUAGES else "zh_CN"


def _order_no(data: dict) -> str | None:
    value = data.get("order_no")
    return str(value)[:32] if value else None


def _dedupe_key(spec, event: str, data: dict, address: str | None) -> str:
    order_no = _order_no(data)
    if spec.once_per_order and order_no:
        raw = f"{event}|{order_no}|{data.get('refund_no') or ''}|{(address or '').lower()}"
    else:  # each emission is an email of its own (the core's job makes the row exactly once)
        raw = f"{event}|{uuid.uuid4().hex}|{(address or '').lower()}"
    return "e:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _split(request, event: str, data: dict) -> tuple[str, str]:
    """The data to keep in the log (no links, no ``to``), and the encrypted
    link of an account email (a password reset's link is a secret)."""
    stored = {}
    for name, value in data.items():
        if not isinstance(name, str) or name in _LINK_FIELDS:
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            stored[name[:64]] = value[:2000] if isinstance(value, str) else value
    secret = ""
    if event.startswith("account.") and isinstance(data.get("url"), str) and data["url"]:
        keyring = request.registry["kameng.keyring"]
        secret = keyring.encrypt(json.dumps({"url": data["url"][:2000]}), _aad(event))
    return json.dumps(stored, ensure_ascii=False, sort_keys=True), secret


def _aad(event: str) -> str:
    return f"notify_email:{event}"


def _recipients(request, spec, data: dict, settings: dict) -> list[tuple[str | None, object]]:
    """``[(address, None)]`` to send, or ``[(None, why)]`` when nobody can get it."""
    if spec.audience == ADMIN:
        try:
            addresses = mailer.split_addresses(settings.get("admin_email"))
        except ValueError:
            addresses = []
        return [(a, None) for a in addresses] or [(None, NO_ADMIN_EMAIL)]
    if spec.audience == BUYER:
        address = mailer.clean_address(data.get("contact")) or _user_email(request, data.get("user_id"))
        return [(address, None)] if address else [(None, NO_BUYER_EMAIL)]
    if spec.audience == ACCOUNT:
        address = (mailer.clean_address(data.get("to")) or mailer.clean_address(data.get("email"))
                   or _user_email(request, data.get("user_id")))
        return [(address, None)] if address else [(None, NO_ACCOUNT_EMAIL)]
    return []


def _user_email(request, user_id) -> str | None:
    from kameng.accounts import User

    if isinstance(user_id, bool) or not isinstance(user_id, (int, str)) or not str(user_id).isdigit():
        return None
    user = request.db.get(User, int(user_id))
    if user is None or not user.is_active:
        return None
    return mailer.clean_address(user.email)


# -- step 2: send --------------------------------------------------------------------------

def send_job(request, payload) -> None:
    """The job ``notify_email.send``: raise on failure so the core retries."""
    try:
        message_id = int(payload.get("id"))
    except (TypeError, ValueError):
        return
    status, error = deliver_message(request, message_id)
    if status == FAILED:
        raise SendFailed(error)


def deliver_message(request, message_id: int) -> tuple[str, str]:
    """Render and send one queued row; returns ``(status, error)``.

    The row is claimed (``sending``) and committed before the server is
    called, and no transaction is open during the call (on SQLite the
    job's transaction holds the database's write lock)."""
    db = request.db
    row = db.scalar(select(Message).where(Message.id == message_id).with_for_update())
    if row is None:
        return "missing", ""
    if row.status in (SENT, SKIPPED):
        return row.status, row.error
    settings = request.plugin_settings(PLUGIN_ID)
    try:
        config = mailer.config_from(settings, request.registry.settings)
        try:
            sender = mailer.parse_sender(settings.get("sender"))
        except ValueError:
            raise mailer.ConfigError(_("The sender address is not valid.")) from None
        to = mailer.clean_address(row.recipient)
        if to is None:
            raise mailer.ConfigError(_("The recipient address is not valid."))
        composed = compose(request, row, settings)
    except mailer.ConfigError as exc:
        row.attempts += 1
        return _finish(request, message_id, FAILED, str(exc), commit=True)
    if isinstance(composed, Skip):
        return _finish(request, message_id, SKIPPED, str(composed.reason))
    subject, text, html = composed
    msg = mailer.build(sender, to, subject, text, html)
    row.status, row.attempts, row.updated_at = SENDING, row.attempts + 1, utcnow()
    event, masked = row.event, render.mask(to)
    _commit(request)
    try:
        mailer.send(config, msg, sender.addr_spec, to)
    except mailer.SendError as exc:
        error = str(exc)
        log.warning("notify_email_failed", extra={"message_id": message_id, "event": event, "recipient": masked,
                                                  "error": error})
        return _finish(request, message_id, FAILED, error, commit=True)
    log.info("notify_email_sent", extra={"message_id": message_id, "event": event, "recipient": masked})
    return _finish(request, message_id, SENT, "")


def _commit(request) -> None:
    """End the current transaction and start the next one: what is written
    so far stays, whatever happens next."""
    request.tm.commit()
    request.tm.begin()


def _finish(request, message_id: int, status: str, error: str, commit: bool = False) -> tuple[str, str]:
    db = request.db
    row = db.scalar(select(Message).where(Message.id == message_id).with_for_update())
    if row is None:
        return status, error
    row.status, row.error, row.updated_at = status, error[:500], utcnow()
    if status == SENT:
        row.sent_at, row.secret = utcnow(), ""
    db.flush()
    if commit:  # recorded even though the job itself fails and is rolled back
        _commit(request)
    return status, error


class Skip:
    def __init__(self, reason):
        self.reason = reason


def base_values(request) -> dict:
    return {"shop_name": request.shop.get("name") or "", "shop_url": request.public_url("home")}


def compose(request, row: Message, settings: dict):
    """``(subject, text, html or None)`` for a row, or :class:`Skip`."""
    language = row.language if row.language in LANGUAGES else "zh_CN"
    localizer = render.localizer_for(request, language)
    values = base_values(request)
    if row.event == TEST:
        subject, body = localizer.translate(TEST_SUBJECT), localizer.translate(TEST_BODY)
        return _finalise(request, subject, body, values, settings, language)
    spec = spec_for(row.event)
    if spec is None:
        return Skip(_("This event is not mailed."))
    data = json.loads(row.data or "{}")
    values.update({name: _text(localizer, data[name]) for name in spec.allowed if data.get(name) is not None})
    order = None
    if row.order_no:
        from kameng.orders import service as orders

        order = orders.get(request.db, row.order_no)
    if spec.audience == BUYER:
        values["url"] = orders_url(request, order)
    if spec.audience == ADMIN:
        if row.order_no:
            values["admin_url"] = request.public_url("admin.order", order_no=row.order_no)
        elif spec.name == "stock.low":
            values["admin_url"] = request.public_url("admin.products")
    if spec.audience == ACCOUNT and "url" in spec.allowed:
        url = _secret_url(request, row)
        if url is None and spec.name == "account.password_reset":
            return Skip(NO_LINK)
        values["url"] = url or ""
    if spec.name == OTHER:
        values["event"] = row.event
        values["details"] = "\n".join(f"{k}: {v}" for k, v in sorted(data.items())
                                      if v not in (None, "") and not any(p in k.lower() for p in _PRIVATE))
    if "keys" in spec.allowed:
        values["keys"] = keys_text(request, localizer, order, settings)
    subject, body, _custom = template_for(request, spec.name, language)
    return _finalise(request, subject, body, values, settings, language)


def _finalise(request, subject: str, body: str, values: dict, settings: dict, language: str):
    subject = render.one_line(render.fill(subject, values))
    text = render.fill(body, values)
    html = render.html_of(request, text, language) if settings.get("html", True) else None
    return subject, text, html


def _text(localizer, value) -> str:
    if hasattr(value, "interpolate"):
        return localizer.translate(value)
    return str(value)


def orders_url(request, order) -> str:
    from kameng.orders import service as orders

    return orders.order_url(request, order) if order is not None else request.public_url("home")


def keys_text(request, localizer, order, settings: dict) -> str:
    """The ``{keys}`` of an email: the keys, read now (never stored), or,
    with ``send_keys`` off, a pointer to the order page."""
    if not settings.get("send_keys", True):
        return localizer.translate(_("For your safety the keys are not sent by email: open your order page "
                                     "(the link below) to see them."))
    if order is None:
        return localizer.translate(_("Open your order page (the link below) to see what you bought."))
    from kameng.orders import service as orders

    keys = [{"number": k.get("number"), "secret": k.get("secret")} for k in orders.keys_of(request, order)]
    note = orders.delivery_text(request, order) if order.status in ("delivered", "refunded") else None
    text = render.keys_block(localizer, keys, note)
    return text or localizer.translate(_("Open your order page (the link below) to see what you bought."))


def _secret_url(request, row: Message) -> str | None:
    if not row.secret:
        return None
    try:
        return json.loads(request.registry["kameng.keyring"].decrypt(row.secret, _aad(row.event)))["url"]
    except Exception:  # a replaced key file: the link is gone
        return None


def cleanup_job(request, payload=None) -> None:
    """Daily: forget finished emails older than ``KEEP_DAYS`` (never one
    still queued or being sent)."""
    cutoff = utcnow() - dt.timedelta(days=KEEP_DAYS)
    request.db.execute(delete(Message).where(Message.created_at < cutoff,
                                             Message.status.in_((SENT, SKIPPED, FAILED)))
                       .execution_options(synchronize_session=False))


# -- admin actions -------------------------------------------------------------------------

def resend(request, row: Message) -> Message | None:
    """A new row for the same email (rendered afresh when sent); ``None``
    when it cannot be sent again (no recipient, a reset link no longer kept)."""
    if not row.recipient or mailer.clean_address(row.recipient) is None:
        return None
    if row.event.startswith("account.") and not row.secret:
        return None
    copy = Message(dedupe_key="r:" + uuid.uuid4().hex, event=row.event, audience=row.audience,
                   order_no=row.order_no, recipient=row.recipient, language=row.language, status=QUEUED,
                   attempts=0, error="", data=row.data, secret=row.secret, resend_of=row.id,
                   created_at=utcnow(), updated_at=utcnow())
    request.db.add(copy)
    request.db.flush()
    _enqueue(request.db, copy)
    return copy


def test_message(request, to: str) -> Message:
    row = Message(dedupe_key="t:" + uuid.uuid4().hex, event=TEST, audience=TEST, order_no=None, recipient=to,
                  language=shop_language(request), status=QUEUED, attempts=0, error="", data="{}", secret="",
                  created_at=utcnow(), updated_at=utcnow())
    request.db.add(row)
    request.db.flush()
    return row


def preview(request, event: str, language: str, subject: str, body: str, settings: dict) -> dict:
    """The email as it would look with sample data (never real keys)."""
    spec = EVENTS[event]
    localizer = render.localizer_for(request, language)
    from kameng_notify_email.events import SAMPLE, SAMPLE_KEYS

    values = base_values(request)
    values.update({k: _text(localizer, v) for k, v in SAMPLE.items() if k in spec.allowed})
    if "url" in spec.allowed:
        values["url"] = request.public_url("home") + ("reset-password?token=SAMPLE" if spec.audience == ACCOUNT
                                                      else "orders/202612011234567890?token=SAMPLE")
    if "admin_url" in spec.allowed:
        values["admin_url"] = request.public_url("admin.home")
    if "keys" in spec.allowed:
        values["keys"] = (render.keys_block(localizer, SAMPLE_KEYS, None) if settings.get("send_keys", True)
                          else keys_text(request, localizer, None, settings))
    subject_out, text, html = _finalise(request, subject, body, values, {"html": True}, language)
    return {"subject": subject_out, "text": text, "html": html}
