"""The plugin's admin page, ``/-/hello/``. While the plugin is disabled the
core answers 404 here by itself (no check needed in the views)."""
from __future__ import annotations

import secrets

from pyramid.httpexceptions import HTTPFound
from pyramid.view import view_config
from sqlalchemy import func, select

from kameng import jobs

from kameng_hello.models import HelloVisit


@view_config(route_name="hello.admin", request_method="GET", permission="admin",
             renderer="kameng_hello:templates/admin.pt")
def admin_page(request):
    db = request.db
    return {
        "greeting": request.plugin_settings("hello")["greeting"],
        "total": db.scalar(select(func.count()).select_from(HelloVisit)),
        "visits": db.scalars(select(HelloVisit).order_by(HelloVisit.id.desc()).limit(10)).all(),
    }


@view_config(route_name="hello.admin", request_method="POST", permission="admin")
def record_visit(request):
    # CSRF is checked by the core (the form carries csrf_token). The row is
    # written by the worker, after this transaction commits.
    note = request.POST.get("note", "").strip()[:200]
    jobs.enqueue(request.db, "hello.record_visit", {"visit_id": secrets.token_hex(16), "note": note})
    request.session.flash("The visit is queued; the worker records it.", "info")
    return HTTPFound(request.route_url("hello.admin"))
