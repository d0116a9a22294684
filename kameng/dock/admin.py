"""Admin pages for an account's docking keys: list, create (the secret is
shown on the answer page once), restrict to IP addresses, revoke. Linked
from the account's page (admin/users/user.pt)."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.view import view_config, view_defaults

from kameng.accounts import User
from kameng.admin.orders import when
from kameng.admin.views import flash
from kameng.dock import manage
from kameng.dock.models import find_key, keys_of_user
from kameng.errors import APIError
from kameng.i18n import _
from kameng.theming import tpl

PAGE = tpl("admin/dock/keys.pt")


@view_defaults(permission="admin")
class DockKeyViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db

    def _user(self) -> User:
        raw = self.request.matchdict["id"]
        user = self.db.get(User, int(raw)) if raw.isdigit() and 0 < int(raw) < 2 ** 31 else None
        if user is None:
            raise HTTPNotFound()
        return user

    def _page(self, user: User, created=None, secret=None, error=None, error_field=None, values=None):
        self.request.response.headers["Cache-Control"] = "no-store"
        return {"user": user, "keys": keys_of_user(self.db, user.id), "created": created, "secret": secret,
                "error": error, "error_field": error_field, "values": values or {"name": "", "ip_allowlist": ""},
                "when": when, "dock_url": self.request.public_url("dock.goods").rsplit("/", 1)[0] + "/",
                "can_issue": user.role != "admin" and user.is_active}

    @view_config(route_name="admin.dock.keys", renderer=PAGE, request_method="GET")
    def list(self):
        return self._page(self._user())

    @view_config(route_name="admin.dock.keys", renderer=PAGE, request_method="POST")
    def create(self):
        request, user = self.request, self._user()
        values = {"name": request.POST.get("name", "")[:100],
                  "ip_allowlist": request.POST.get("ip_allowlist", "")[:8000]}
        try:
            key, secret = manage.issue(request, user, values["name"], values["ip_allowlist"])
        except APIError as exc:
            request.tm.doom()
            request.response.status = exc.status
            return self._page(user, error=exc.message, error_field=exc.extra.get("field"), values=values)
        return self._page(user, created=key, secret=secret)

    def _key(self):
        key = find_key(self.db, self.request.matchdict["key_id"], lock=True)
        if key is None:
            raise HTTPNotFound()
        return key

    @view_config(route_name="admin.dock.key.action", request_method="POST")
    def act(self):
        request, key = self.request, self._key()
        action = request.matchdict["action"]
        back = HTTPFound(request.route_url("admin.dock.keys", id=key.user_id))
        if action == "revoke":
            manage.revoke(request, key)
            flash(request, _("Key ${key} revoked.", mapping={"key": key.key_id}))
            return back
        if action != "ips":
            raise HTTPNotFound()
        try:
            manage.set_allowlist(request, key, request.POST.get("ip_allowlist", "")[:8000])
        except APIError as exc:
            request.tm.doom()
            flash(request, exc.message, "error")
            return back
        flash(request, _("The addresses allowed for ${key} are saved.", mapping={"key": key.key_id}))
        return back
