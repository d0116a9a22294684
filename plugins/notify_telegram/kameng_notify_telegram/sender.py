"""Messages to the Telegram Bot API, and the send log.

A message is tried once where the core calls ``kameng_notify`` (a job run
after the event's transaction committed). What happens next depends on
Telegram's answer, and is always written to ``notify_telegram_log``:

- ``ok`` → ``sent``;
- 429 (flood control) → ``retrying``: this plugin queues its own job
  ``notify_telegram.send`` for when ``parameters.retry_after`` says (the core
  retries a raising hook with its own back-off, which would ignore it, and
  would roll back the log row with the failed try);
- 5xx, a timeout or a refused connection → ``retrying`` with back-off;
- any other 4xx (400 chat not found, 401 bad token, 403 bot blocked or
  kicked) → ``failed``: retrying cannot help, the settings must change;
- after :data:`MAX_ATTEMPTS` tries → ``failed``.

The bot token is part of the URL path (``/bot<token>/sendMessage``). It is
never logged nor stored: the core's HTTP client logs each call's URL, so
:class:`RedactBotToken` scrubs it from that logger's records, and transport
errors are re-worded without it.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re

from pyramid.i18n import make_localizer
from pyramid.interfaces import ILocalizer, ITranslationDirectories
from sqlalchemy import delete, select

from kameng import httpclient, jobs
from kameng.db import utcnow
from kameng.i18n import LANGUAGES, _
from kameng.types import SettingError
from kameng_notify_telegram.models import FAILED, PENDING, RETRYING, SENT, SendLog

log = logging.getLogger(__name__)

PLUGIN_ID = "notify_telegram"
SEND_KIND = "notify_telegram.send"
PRUNE_KIND = "notify_telegram.prune"
DEFAULT_API_BASE = "https://api.telegram.org"
#: tries per message (the first one included) before it is marked failed
MAX_ATTEMPTS = 8
#: seconds to wait for Telegram (connect, and each read)
TIMEOUT = 10.0
#: a retry_after beyond this is capped (Telegram asks for seconds to minutes)
MAX_RETRY_AFTER = 3600
#: log rows older than this are deleted by the daily prune job
KEEP_DAYS = 90
#: Telegram refuses a text longer than 4096 characters
MAX_TEXT = 4096

DEFAULT_EVENTS = ("order.paid", "order.delivered", "order.failed", "order.refunded", "refund.failed",
                  "refund.manual", "stock.low", "order.held", "order.reported", "order.supplier_overdue",
                  "backup.failed")
#: events that carry private data (password-reset links): never sent
PRIVATE_PREFIX = "account."

_EVENT_NAME = re.compile(r"\*|[a-z][a-z0-9_]*\.(\*|[a-z][a-z0-9_]*)")
_BOT_PATH = re.compile(r"/bot\d+:[^/?#\s]*")

TITLES = {
    "order.paid": _("Order paid"),
    "order.delivered": _("Order delivered"),
    "order.failed": _("Order failed: it cannot be delivered"),
    "order.refunded": _("Order refunded"),
    "order.held": _("Order held for review"),
    "order.awaiting_fulfilment": _("Order waits for you to fulfil it"),
    "order.key_replaced": _("Invalid key replaced"),
    "order.key_refunded": _("Invalid key refunded"),
    "order.reported": _("The buyer reported a problem"),
    "order.supplier_overdue": _("Supplier order overdue"),
    "order.supplier_late": _("Supplier delivered late"),
    "refund.manual": _("Refund to pay by hand"),
    "refund.failed": _("Refund failed at the gateway"),
    "payment.duplicate": _("Duplicate payment"),
    "payment.amount_mismatch": _("Payment with the wrong amount"),
    "payment.paid_twice": _("Payment paid twice"),
    "stock.low": _("Stock is low"),
    "backup.failed": _("Backup failed"),
}

#: (data key, label) in the order they are shown. Buyer contact details and
#: the buyer's order link (it holds the order's access token) are left out:
#: the message goes through Telegram's servers.
FIELDS = (
    ("order_no", _("Order")),
    ("product", _("Product")),
    ("sku_name", _("Option")),
    ("quantity", _("Quantity")),
    ("amount", _("Amount")),
    ("status", _("Status")),
    ("refund_no", _("Refund")),
    ("refund_amount", _("Refund amount")),
    ("out_order_no", _("Supplier order")),
    ("attempt_no", _("Payment")),
    ("gateway", _("Gateway")),
    ("expected", _("Expected amount")),
    ("paid", _("Paid amount")),
    ("provider_trade_no", _("Provider trade")),
    ("sku", _("SKU")),
    ("name", _("Product")),
    ("available", _("Available")),
    ("threshold", _("Threshold")),
    ("reason", _("Reason")),
    ("error", _("Error")),
    ("message", _("Message")),
)
_MONEY_KEYS = ("amount", "refund_amount", "expected", "paid")


# -- the bot token stays out of logs ----------------------------------------------------------


def redact(text: str, token: str | None = None) -> str:
    """``text`` without the bot token (by value, and any ``/bot<id>:<secret>`` path)."""
    text = str(text)
    if token:
        text = text.replace(token, "***")
    return _BOT_PATH.sub("/bot***", text)


class RedactBotToken(logging.Filter):
    """Scrubs ``/bot<token>`` from the URL that the core's HTTP client (and
    httpx below it, at INFO) put into their log records."""

    def filter(self, record):
        for attr in ("url", "msg"):
            value = getattr(record, attr, None)
            if isinstance(value, str) and "/bot" in value:
                setattr(record, attr, redact(value))
        if isinstance(record.args, tuple) and any("/bot" in str(a) for a in record.args):
            record.args = tuple(redact(str(a)) if "/bot" in str(a) else a for a in record.args)
        return True


#: the loggers that see the URL of an outgoing call
URL_LOGGERS = (httpclient.__name__, "httpx")


def install_log_filter() -> None:
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactBotToken) for f in logger.filters):
            logger.addFilter(RedactBotToken())
install_log_filter()


# -- settings ---------------------------------------------------------------------------------


def parse_events(text: str | None) -> frozenset[str]:
    """The ``events`` setting: names separated by commas, spaces or lines;
    ``group.*`` takes a whole group, ``*`` everything. Empty → the default list."""
    names = [n for n in re.split(r"[\s,]+", text or "") if n]
    for name in names:
        if not _EVENT_NAME.fullmatch(name):
            raise SettingError("events", _("${name} is not an event name", mapping={"name": name[:64]}))
        if name.startswith(PRIVATE_PREFIX):
            raise SettingError("events", _("account events carry private data and are never sent"))
    return frozenset(names) if names else frozenset(DEFAULT_EVENTS)


def wanted(settings: dict, event: str) -> bool:
    if not isinstance(event, str) or event.startswith(PRIVATE_PREFIX):
        return False
    try:
        chosen = parse_events(settings.get("events"))
    except SettingError:
        chosen = frozenset(DEFAULT_EVENTS)
    group = event.split(".", 1)[0]
    return event in chosen or f"{group}.*" in chosen or "*" in chosen


def validate(values: dict) -> None:
    httpclient.check_url_setting("api_base", values.get("api_base"))
    parse_events(values.get("events"))


# -- the message ------------------------------------------------------------------------------


def shop_localizer(request):
    """Messages go out in the shop's default language, whoever triggered them."""
    lang = request.shop.get("default_language")
    if lang not in LANGUAGES:
        lang = "zh_CN"
    registry = request.registry
    localizer = registry.queryUtility(ILocalizer, name=lang)
    if localizer is None:
        localizer = make_localizer(lang, registry.queryUtility(ITranslationDirectories, default=[]))
        registry.registerUtility(localizer, ILocalizer, name=lang)
    return localizer


def _esc(value, limit: int = 500) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return html.escape(text)


def format_message(request, event: str, data: dict) -> str:
    """Telegram HTML: every value, label and translation is escaped."""
    from kameng.orders import states

    tr = shop_localizer(request).translate
    data = data if isinstance(data, dict) else {}
    title = TITLES.get(event)
    title = tr(title) if title is not None else tr(_("Shop event: ${event}", mapping={"event": event}))
    lines = [f"<b>{_esc(title, 200)}</b> · {_esc(request.shop.get('name') or '', 80)}"]
    for key, label in FIELDS:
        value = data.get(key)
        if value in (None, "") or isinstance(value, (dict, list)):
            continue
        if key == "status" and value in states.LABELS:
            value = tr(states.LABELS[value])
        elif key in _MONEY_KEYS and data.get("currency"):
            value = f"{value} {data['currency']}"
        shown = f"<code>{_esc(value, 100)}</code>" if key in ("order_no", "sku", "refund_no", "attempt_no",
                                                             "out_order_no") else _esc(value)
        lines.append(f"{_esc(tr(label), 60)}: {shown}")
    order_no = data.get("order_no")
    if isinstance(order_no, str) and order_no:
        href = request.route_url("admin.order", order_no=order_no)
        lines.append(f'<a href="{html.escape(href, quote=True)}">{_esc(tr(_("Open in the admin")), 60)}</a>')
    text = "\n".join(lines)
    return text if len(text) <= MAX_TEXT else format_short(tr, title, order_no)


def format_short(tr, title: str, order_no) -> str:
    """A message that cannot be too long (a field full of entities)."""
    text = f"<b>{_esc(title, 200)}</b>"
    if order_no:
        text += f"\n{_esc(tr(_('Order')), 60)}: <code>{_esc(order_no, 64)}</code>"
    return text


def sample_text(request) -> str:
    tr = shop_localizer(request).translate
    shop = request.shop.get("name") or ""
    return "\n".join([
        f"<b>{_esc(tr(_('Test message from ${shop}', mapping={'shop': shop})), 300)}</b>",
        _esc(tr(_("Telegram notifications work: the shop's alerts will arrive in this chat."))),
    ])


# -- sending ----------------------------------------------------------------------------------


class Transient(Exception):
    """Telegram could not be reached or answered 5xx; the text holds no token."""


def send_message(settings: dict, text: str) -> tuple[int, dict]:
    """POST sendMessage; returns (HTTP status, the decoded answer or {})."""
    token = settings.get("bot_token") or ""
    base = (settings.get("api_base") or DEFAULT_API_BASE).rstrip("/")
    body = {"chat_id": settings.get("chat_id"), "text": text, "parse_mode": "HTML",
            "disable_web_page_preview": True}
    try:
        resp = httpclient.post_json(f"{base}/bot{token}/sendMessage",
                                    json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                    timeout=TIMEOUT, max_bytes=256 * 1024)
    except httpclient.HttpError as exc:
        raise Transient(redact(str(exc), token)) from None
    try:
        answer = json.loads(resp.body)
    except ValueError:
        answer = None
    return resp.status, answer if isinstance(answer, dict) else {}


def _backoff(attempts: int) -> int:
    return min(30 * 2 ** max(attempts - 1, 0), MAX_RETRY_AFTER)


def _retry_after(answer: dict, attempts: int) -> int:
    params = answer.get("parameters")
    value = params.get("retry_after") if isinstance(params, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return min(value, MAX_RETRY_AFTER)
    return _backoff(attempts)


def attempt(request, row: SendLog, text: str) -> None:
    """One try at sending ``text`` for ``row``; records the outcome and, when
    it may still work later, queues the next try. Never raises for Telegram's
    answers, so the row's update is committed with the job."""
    settings = request.plugin_settings(PLUGIN_ID)
    token = settings.get("bot_token") or ""
    row.attempts += 1
    row.updated_at = utcnow()
    delay = None
    try:
        status, answer = send_message(settings, text)
    except Transient as exc:
        error, delay = str(exc), _backoff(row.attempts)
    else:
        description = redact(str(answer.get("description") or f"HTTP {status}"), token)
        if 200 <= status < 300 and answer.get("ok") is True:
            row.status, row.error = SENT, ""
            log.info("telegram_sent", extra={"event": row.event, "order_no": row.order_no,
                                             "log_id": row.id, "attempt": row.attempts})
            return
        error = description
        if status == 429:
            delay = _retry_after(answer, row.attempts)
        elif status >= 500 or 200 <= status < 300:
            delay = _backoff(row.attempts)
    row.error = error[:255]
    if delay is not None and row.attempts < MAX_ATTEMPTS:
        row.status = RETRYING
        jobs.enqueue(request.db, SEND_KIND, {"log_id": row.id, "text": text}, delay=delay,
                     dedupe_key=f"{SEND_KIND}:{row.id}:{row.attempts}")
        log.warning("telegram_retry", extra={"event": row.event, "order_no": row.order_no, "log_id": row.id,
                                             "attempt": row.attempts, "delay": delay, "error": row.error})
        return
    row.status = FAILED
    log.error("telegram_failed", extra={"event": row.event, "order_no": row.order_no, "log_id": row.id,
                                        "attempt": row.attempts, "error": row.error})


def notify(request, event: str, data: dict) -> None:
    """``kameng_notify``: send the events the shop chose, first try now."""
    settings = request.plugin_settings(PLUGIN_ID)
    if not wanted(settings, event):
        return
    data = data if isinstance(data, dict) else {}
    text = format_message(request, event, data)
    order_no = data.get("order_no")
    row = SendLog(event=event[:64], order_no=order_no[:64] if isinstance(order_no, str) else None,
                  status=PENDING, attempts=0, error="")
    request.db.add(row)
    request.db.flush()
    attempt(request, row, text)


def send_test(request) -> SendLog:
    """The admin page's button: a test message, sent now."""
    row = SendLog(event="test", order_no=None, status=PENDING, attempts=0, error="")
    request.db.add(row)
    request.db.flush()
    attempt(request, row, sample_text(request))
    return row


def send_job(request, payload) -> None:
    """Job ``notify_telegram.send``: the next try of a message Telegram
    could not take before. A row no longer waiting is left alone (a job run
    twice after a worker died sends once more at most)."""
    try:
        log_id = int(payload.get("log_id"))
    except (TypeError, ValueError):
        return
    row = request.db.scalar(select(SendLog).where(SendLog.id == log_id).with_for_update())
    if row is None or row.status != RETRYING:
        return
    attempt(request, row, str(payload.get("text") or ""))


def prune_job(request, payload) -> None:
    """Job ``notify_telegram.prune`` (daily): forget old log rows."""
    cutoff = utcnow() - dt.timedelta(days=KEEP_DAYS)
    request.db.execute(delete(SendLog).where(SendLog.created_at < cutoff))
