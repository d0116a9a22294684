"""Admin API for plugins and jobs, and the OpenAPI document."""
from __future__ import annotations

from pyramid.view import view_config
from sqlalchemy import func, select

from kameng import jobs
from kameng.api import api_csrf, json_body
from kameng.api.openapi import document
from kameng.errors import APIError
from kameng.i18n import _
from kameng.pluginhost import SECRET_MASK, PluginError, configure, set_enabled
from kameng.types import SettingError


def plugin_json(request, plugin) -> dict:
    values = request.plugin_settings(plugin.id) if not plugin.errors else {}
    return {
        "id": plugin.id, "name": plugin.meta.name, "version": plugin.version,
        "description": plugin.meta.description, "author": plugin.meta.author,
        "category": plugin.meta.category, "kameng_api": plugin.meta.kameng_api,
        "enabled": plugin.id in request.enabled_plugins, "errors": list(plugin.errors),
        "settings": {f.name: (SECRET_MASK if f.secret and values.get(f.name) else values.get(f.name))
                     for f in plugin.meta.settings},
        "settings_schema": [{"name": f.name, "type": f.type, "required": f.required, "secret": f.secret,
                             "choices": list(f.choices)} for f in plugin.meta.settings],
    }


def _plugin(request):
    plugin = request.registry["kameng.plugins"].plugins.get(request.matchdict["id"])
    if plugin is None:
        raise APIError(404, "not_found", _("No such plugin."))
    return plugin


@view_config(route_name="api.openapi", renderer="json", require_csrf=False, request_method="GET")
def openapi(request):
    return document(request)


@view_config(route_name="api.admin.plugins", renderer="json", permission="admin", require_csrf=False,
             request_method="GET")
def list_plugins(request):
    host = request.registry["kameng.plugins"]
    return {"items": [plugin_json(request, p) for p in sorted(host.plugins.values(), key=lambda p: p.id)]}


@view_config(route_name="api.admin.plugin", renderer="json", permission="admin", require_csrf=False,
             request_method="GET")
def get_plugin(request):
    return plugin_json(request, _plugin(request))


@view_config(route_name="api.admin.plugin", renderer="json", permission="admin", require_csrf=False,
             request_method="PATCH", decorator=api_csrf)
def patch_plugin(request):
    """``{"enabled": bool?, "settings": {name: value}?}``; settings first, then the switch."""
    plugin = _plugin(request)
    body = json_body(request)
    enabled = body.get("enabled")
    settings = body.get("settings")
    if enabled is not None and not isinstance(enabled, bool):
        raise APIError(422, "invalid_request", _("enabled must be true or false."))
    if settings is not None and not isinstance(settings, dict):
        raise APIError(422, "invalid_request", _("settings must be an object."))
    try:
        if settings:
            configure(request, plugin.id, {k: v if isinstance(v, (str, bool, int)) else str(v)
                                           for k, v in settings.items()})
        if enabled is not None:
            set_enabled(request, plugin.id, enabled)
    except SettingError as exc:
        request.tm.doom()
        raise APIError(422, "invalid_setting", exc.message, field=exc.field_name) from None
    except PluginError as exc:
        request.tm.doom()
        raise APIError(409, "plugin_unavailable", exc.message) from None
    request.db.expire_all()
    request.__dict__.pop("plugin_states", None)
    request.__dict__.pop("enabled_plugins", None)
    return plugin_json(request, plugin)


@view_config(route_name="api.admin.jobs", renderer="json", permission="admin", require_csrf=False,
             request_method="GET")
def list_jobs(request):
    status = request.params.get("status")
    stmt = select(jobs.Job).order_by(jobs.Job.id.desc()).limit(200)
    if status:
        if status not in (jobs.QUEUED, jobs.RUNNING, jobs.DONE, jobs.DEAD):
            raise APIError(422, "invalid_request", _("Unknown job status."))
        stmt = stmt.where(jobs.Job.status == status)
    counts = dict(request.db.execute(select(jobs.Job.status, func.count()).group_by(jobs.Job.status)).all())
    return {"counts": counts, "items": [
        {"id": j.id, "kind": j.kind, "status": j.status, "attempts": j.attempts, "max_attempts": j.max_attempts,
         "run_at": j.run_at.isoformat(), "last_error": j.last_error} for j in request.db.scalars(stmt)]}
