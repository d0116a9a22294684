"""Admin pages for member levels: ``/admin/levels`` lists them with how
many accounts each has and creates one; ``/admin/levels/{code}`` edits one;
``/admin/levels/{code}/delete`` deletes one that nothing uses. The rules
and checks are :mod:`kameng.levels`'; every change is in the audit log."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.renderers import get_renderer
from pyramid.view import view_config, view_defaults
from sqlalchemy import func, select

from kameng import audit, levels, money
from kameng.accounts import User
from kameng.admin.views import flash
from kameng.errors import APIError
from kameng.i18n import _
from kameng.theming import tpl

FIELDS = ("code", "name", "discount", "min_paid", "min_topup", "rank")


def includeme(config):
    config.add_route("admin.levels", "/admin/levels")
    config.add_route("admin.level", "/admin/levels/{code}")
    config.add_route("admin.level.delete", "/admin/levels/{code}/delete", request_method="POST")
    config.scan("kameng.admin.levels")


def _fields():
    return get_renderer(tpl("admin/levels/fields.pt")).implementation()


def form_values(level: levels.MemberLevel | None, currency: str) -> dict:
    if level is None:
        return {"code": "", "name": "", "discount": "0", "min_paid": "", "min_topup": "", "rank": "0"}
    fmt = lambda v: money.format_minor(v, currency) if v is not None else ""  # noqa: E731
    return {"code": level.code, "name": level.name, "discount": levels.percent_text(level.discount_bp),
            "min_paid": fmt(level.min_paid), "min_topup": fmt(level.min_topup), "rank": str(level.rank)}


@view_defaults(permission="admin")
class LevelViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db

    @property
    def currency(self) -> str:
        return self.request.shop["currency"]

    def _posted(self) -> dict:
        post = self.request.POST
        return {name: post.get(name, "")[:200] for name in FIELDS}

    def _failed(self, exc: APIError) -> dict:
        self.request.tm.doom()
        self.request.response.status = exc.status
        return {"message": exc.message, "field": exc.extra.get("field")}

    def _list_page(self, values=None, error=None):
        db = self.db
        rows = levels.all_levels(db)
        counts = dict(db.execute(select(User.level, func.count()).where(User.level.is_not(None))
                                 .group_by(User.level)).all())
        return {"levels": list(reversed(rows)), "counts": counts, "currency": self.currency,
                "fmt": lambda v: money.format_minor(v, self.currency) if v is not None else "—",
                "percent": levels.percent_text, "values": values or form_values(None, self.currency),
                "error": error, "level_form": _fields()}

    @view_config(route_name="admin.levels", renderer=tpl("admin/levels/list.pt"), request_method="GET")
    def index(self):
        return self._list_page()

    @view_config(route_name="admin.levels", renderer=tpl("admin/levels/list.pt"), request_method="POST")
    def create(self):
        values = self._posted()
        try:
            level = levels.create_level(self.db, values, self.currency, audit.actor_of(self.request))
        except APIError as exc:
            return self._list_page(values, self._failed(exc))
        flash(self.request, _("Member level ${name} created.", mapping={"name": level.name}))
        return HTTPFound(self.request.route_url("admin.levels"))

    def _level_or_404(self) -> levels.MemberLevel:
        level = levels.get_level(self.db, self.request.matchdict.get("code"))
        if level is None:
            raise HTTPNotFound()
        return level

    def _level_page(self, level, values=None, error=None):
        users, prices = levels.usage(self.db, level.code)
        return {"level": level, "values": values or form_values(level, self.currency), "error": error,
                "users": users, "prices": prices, "currency": self.currency,
                "level_form": _fields()}

    @view_config(route_name="admin.level", renderer=tpl("admin/levels/level.pt"), request_method="GET")
    def edit(self):
        return self._level_page(self._level_or_404())

    @view_config(route_name="admin.level", renderer=tpl("admin/levels/level.pt"), request_method="POST")
    def save(self):
        level = self._level_or_404()
        values = {**self._posted(), "code": level.code}
        try:
            levels.update_level(self.db, level, values, self.currency, audit.actor_of(self.request))
        except APIError as exc:
            return self._level_page(level, values, self._failed(exc))
        flash(self.request, _("Member level ${name} saved.", mapping={"name": level.name}))
        return HTTPFound(self.request.route_url("admin.levels"))

    @view_config(route_name="admin.level.delete", request_method="POST")
    def delete(self):
        level = self._level_or_404()
        name = level.name
        try:
            levels.delete_level(self.db, level, audit.actor_of(self.request))
        except APIError as exc:
            self.request.tm.doom()
            flash(self.request, exc.message, "error")
            return HTTPFound(self.request.route_url("admin.level", code=level.code))
        flash(self.request, _("Member level ${name} deleted.", mapping={"name": name}))
        return HTTPFound(self.request.route_url("admin.levels"))
