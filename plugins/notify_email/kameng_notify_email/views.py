"""Admin pages: the send log (with "send again" and a test email) and the
templates (edit, preview, reset; switch events on and off). While the
plugin is disabled the core answers 404 here by itself."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.view import view_config
from sqlalchemy import func, select

from kameng import audit
from kameng.db import utcnow
from kameng.i18n import _

from kameng_notify_email import mailer, render, service
from kameng_notify_email.events import ACCOUNT, ADMIN, BUYER, EVENTS, SPECS
from kameng_notify_email.models import FAILED, SENT, STATUSES, Message, Template

PAGE_SIZE = 50
LANGUAGE_LABELS = {"zh_CN": "简体中文", "en": "English"}
AUDIENCE_LABELS = {BUYER: _("Buyer"), ADMIN: _("Admin"), ACCOUNT: _("Account holder"), "test": _("Test")}
STATUS_LABELS = {"queued": _("Queued"), "sending": _("Sending"), "sent": _("Sent"), "failed": _("Failed"),
                 "skipped": _("Skipped")}


def _flash(request, message, queue="info"):
    request.session.flash(request.localizer.translate(message), queue)


def _event_label(request, event: str):
    spec = EVENTS.get(event)
    if spec is not None and event != "alert.other":
        return request.localizer.translate(spec.label)
    if event == "test":
        return request.localizer.translate(_("Test email"))
    return event


# -- the send log --------------------------------------------------------------------------

@view_config(route_name="notify_email.log", request_method="GET", permission="admin",
             renderer="kameng_notify_email:templates/log.pt")
def log_page(request):
    db = request.db
    status = request.GET.get("status", "")
    if status not in STATUSES:
        status = ""
    try:
        page = max(1, min(int(request.GET.get("page", "1")), 10000))
    except ValueError:
        page = 1
    stmt = select(Message)
    count = select(func.count()).select_from(Message)
    if status:
        stmt, count = stmt.where(Message.status == status), count.where(Message.status == status)
    total = db.scalar(count)
    rows = db.scalars(stmt.order_by(Message.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    counts = dict(db.execute(select(Message.status, func.count()).group_by(Message.status)).all())
    settings = request.plugin_settings(service.PLUGIN_ID)
    try:
        admins = mailer.split_addresses(settings.get("admin_email"))
    except ValueError:
        admins = []

    def page_url(n):
        return request.route_url("notify_email.log", _query={**({"status": status} if status else {}), "page": n})

    return {
        "rows": [{"row": r, "event": _event_label(request, r.event), "recipient": render.mask(r.recipient),
                  "status_label": request.localizer.translate(STATUS_LABELS.get(r.status, r.status)),
                  "audience": request.localizer.translate(AUDIENCE_LABELS.get(r.audience, r.audience)),
                  "error": request.localizer.translate(_(r.error)) if r.error else "",
                  "resendable": bool(r.recipient) and not (r.event.startswith("account.") and not r.secret)}
                 for r in rows],
        "status": status, "statuses": STATUSES, "counts": counts,
        "status_labels": {k: request.localizer.translate(v) for k, v in STATUS_LABELS.items()},
        "total": total, "page": page,
        "prev_url": page_url(page - 1) if page > 1 else None,
        "next_url": page_url(page + 1) if page * PAGE_SIZE < total else None,
        "test_to": admins[0] if admins else "",
        "configured": bool(settings.get("host") and settings.get("sender")),
    }


@view_config(route_name="notify_email.resend", request_method="POST", permission="admin")
def resend(request):
    message_id = int(request.matchdict["id"])
    row = request.db.get(Message, message_id) if message_id < 2**31 else None
    if row is None:
        raise HTTPNotFound()
    copy = service.resend(request, row)
    if copy is None:
        _flash(request, _("This email cannot be sent again (no recipient, or its link is no longer kept)."),
               "error")
    else:
        audit.record(request.db, audit.actor_of(request), "notify_email.resend", str(row.id), copy=copy.id)
        _flash(request, _("Queued to be sent again to ${to}.", mapping={"to": render.mask(row.recipient)}))
    return HTTPFound(request.route_url("notify_email.log"))


@view_config(route_name="notify_email.test", request_method="POST", permission="admin")
def send_test(request):
    """Send a test email now, with the stored settings, and say what happened."""
    to = mailer.clean_address(request.POST.get("to", ""))
    if to is None:
        _flash(request, _("Enter one email address to send the test email to."), "error")
        return HTTPFound(request.route_url("notify_email.log"))
    row = service.test_message(request, to)
    audit.record(request.db, audit.actor_of(request), "notify_email.test", str(row.id))
    status, error = service.deliver_message(request, row.id)
    if status == SENT:
        _flash(request, _("The test email was sent to ${to}.", mapping={"to": to}))
    else:
        _flash(request, _("The test email could not be sent: ${error}",
                          mapping={"error": request.localizer.translate(_(error)) if error else status}), "error")
    return HTTPFound(request.route_url("notify_email.log"))


# -- templates -----------------------------------------------------------------------------

@view_config(route_name="notify_email.templates", request_method="GET", permission="admin",
             renderer="kameng_notify_email:templates/templates.pt")
def templates_page(request):
    db = request.db
    custom = {(t.event, t.language) for t in db.scalars(select(Template))}
    rows = []
    for spec in SPECS:
        rows.append({"event": spec.name, "label": request.localizer.translate(spec.label),
                     "audience": request.localizer.translate(AUDIENCE_LABELS[spec.audience]),
                     "enabled": service.event_enabled(db, spec.name), "optional": spec.optional,
                     "languages": [{"code": lang, "label": LANGUAGE_LABELS[lang],
                                    "custom": (spec.name, lang) in custom} for lang in service.LANGUAGES]})
    return {"rows": rows, "send_keys": request.plugin_settings(service.PLUGIN_ID).get("send_keys", True)}


@view_config(route_name="notify_email.switch", request_method="POST", permission="admin")
def switch(request):
    event = request.POST.get("event", "")
    spec = EVENTS.get(event)
    if spec is None or not spec.optional:
        raise HTTPNotFound()
    enabled = request.POST.get("enabled") == "1"
    service.set_event_enabled(request.db, event, enabled)
    audit.record(request.db, audit.actor_of(request), "notify_email.switch", event, enabled=enabled)
    _flash(request, _("${event}: on.", mapping={"event": request.localizer.translate(spec.label)}) if enabled
           else _("${event}: off.", mapping={"event": request.localizer.translate(spec.label)}))
    return HTTPFound(request.route_url("notify_email.templates"))


def _spec_and_language(request):
    spec = EVENTS.get(request.matchdict["event"])
    language = request.matchdict["language"]
    if spec is None or language not in service.LANGUAGES:
        raise HTTPNotFound()
    return spec, language


@view_config(route_name="notify_email.template", request_method=("GET", "POST"), permission="admin",
             renderer="kameng_notify_email:templates/template.pt")
def template_page(request):
    spec, language = _spec_and_language(request)
    db = request.db
    settings = request.plugin_settings(service.PLUGIN_ID)
    subject, body, custom = service.template_for(request, spec.name, language)
    errors, shown = {}, None
    if request.method == "POST":
        action = request.POST.get("action", "preview")
        if action == "reset":
            row = service.stored_template(db, spec.name, language)
            if row is not None:
                db.delete(row)
                audit.record(db, audit.actor_of(request), "notify_email.template_reset", f"{spec.name}:{language}")
            _flash(request, _("The default text is back."))
            return HTTPFound(request.route_url("notify_email.template", event=spec.name, language=language))
        subject = request.POST.get("subject", "").strip()
        body = request.POST.get("body", "").replace("\r\n", "\n")
        try:
            render.check(subject, body, spec.allowed)
        except render.TemplateError as exc:
            errors[exc.part] = exc.message
            request.response.status = 400
        else:
            if action == "save":
                row = service.stored_template(db, spec.name, language)
                if row is None:
                    db.add(Template(event=spec.name, language=language, subject=subject, body=body,
                                    updated_at=utcnow()))
                else:
                    row.subject, row.body, row.updated_at = subject, body, utcnow()
                audit.record(db, audit.actor_of(request), "notify_email.template_save", f"{spec.name}:{language}")
                _flash(request, _("Template saved."))
                return HTTPFound(request.route_url("notify_email.template", event=spec.name, language=language))
            shown = service.preview(request, spec.name, language, subject, body, settings)
    return {
        "spec": spec, "label": request.localizer.translate(spec.label), "language": language,
        "language_label": LANGUAGE_LABELS[language], "subject": subject, "body": body, "custom": custom,
        "errors": errors, "preview": shown, "placeholders": sorted(spec.allowed),
        "send_keys": settings.get("send_keys", True),
        "other_languages": [(lang, LANGUAGE_LABELS[lang]) for lang in service.LANGUAGES if lang != language],
        "failed": FAILED,
    }
