"""The admin page ``/-/notify_telegram/``: the send log and a test button.
While the plugin is disabled the core answers 404 here by itself."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound
from pyramid.view import view_config
from sqlalchemy import func, select

from kameng.i18n import _
from kameng_notify_telegram import sender
from kameng_notify_telegram.models import FAILED, RETRYING, SENT, SendLog

PER_PAGE = 50


@view_config(route_name="notify_telegram.admin", request_method="GET", permission="admin",
             renderer="kameng_notify_telegram:templates/admin.pt")
def admin_page(request):
    settings = request.plugin_settings(sender.PLUGIN_ID)
    status = request.GET.get("status", "")
    query = select(SendLog)
    if status in (SENT, RETRYING, FAILED):
        query = query.where(SendLog.status == status)
    else:
        status = ""
    counts = dict(request.db.execute(select(SendLog.status, func.count()).group_by(SendLog.status)).all())
    return {
        "chat_id": settings.get("chat_id") or "",
        "api_base": settings.get("api_base") or sender.DEFAULT_API_BASE,
        "events": sorted(sender.parse_events(settings.get("events"))),
        "rows": request.db.scalars(query.order_by(SendLog.id.desc()).limit(PER_PAGE)).all(),
        "status": status,
        "counts": counts,
    }


@view_config(route_name="notify_telegram.test", request_method="POST", permission="admin")
def send_test(request):
    # CSRF is checked by the core (the form carries csrf_token)
    row = sender.send_test(request)
    if row.status == SENT:
        message, queue = _("The test message was sent. Check the chat."), "info"
    elif row.status == RETRYING:
        message, queue = _("Telegram did not take the message yet (${error}); it will be tried again.",
                           mapping={"error": row.error}), "error"
    else:
        message, queue = _("Telegram refused the test message: ${error}", mapping={"error": row.error}), "error"
    request.session.flash(request.localizer.translate(message), queue)
    return HTTPFound(request.route_url("notify_telegram.admin"))
