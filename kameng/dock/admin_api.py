"""Admin API for docking keys (API.md "Admin API"): ``GET``/``POST
/api/v1/admin/users/{id}/dock-keys`` and ``POST
/api/v1/admin/dock-keys/{key_id}/revoke``. The secret is in the creation
answer only."""
from __future__ import annotations


from pyramid.view import view_config

from kameng.api import api_csrf, json_body
from kameng.api.admin_orders import matched_user
from kameng.dock import manage
from kameng.dock.models import find_key, keys_of_user
from kameng.errors import APIError
from kameng.i18n import _

@view_config(route_name="api.admin.user.dock_keys", request_method="GET", renderer="json", permission="admin",
             require_csrf=False)
def list_keys(request):
    user = matched_user(request)
    request.response.headers["Cache-Control"] = "no-store"
    return {"items": [manage.key_json(k) for k in keys_of_user(request.db, user.id)]}


@view_config(route_name="api.admin.user.dock_keys", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def create_key(request):
    user = matched_user(request)
    body = json_body(request) if request.body else {}
    key, secret = manage.issue(request, user, body.get("name"), body.get("ip_allowlist"))
    request.response.status = 201
    request.response.headers["Cache-Control"] = "no-store"
    return {**manage.key_json(key), "secret": secret}


@view_config(route_name="api.admin.dock_key.revoke", request_method="POST", renderer="json", permission="admin",
             require_csrf=False, decorator=api_csrf)
def revoke_key(request):
    key = find_key(request.db, request.matchdict["key_id"], lock=True)
    if key is None:
        raise APIError(404, "not_found", _("No such key."))
    manage.revoke(request, key)
    return manage.key_json(key)
