"""Admin pages for supplier connections: add and edit one, test it, sync
it now, read its sync log, and import goods from it."""
from __future__ import annotations

import json

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.view import view_config, view_defaults
from sqlalchemy import func, select

from kameng import audit, money
from kameng.admin.catalog import TYPE_LABELS
from kameng.admin.views import flash
from kameng.i18n import _
from kameng.suppliers import connections, sync
from kameng.suppliers.base import SupplierError
from kameng.suppliers.models import SkuUpstream, SupplierConnection, SyncLog, UpstreamOrder
from kameng.theming import tpl
from kameng.types import SettingError

MASK = connections.SECRET_MASK
HEALTH_LABELS = {"unknown": _("Not tested"), "ok": _("Working"), "error": _("Failing")}
KIND_LABELS = {"sync": _("Sync"), "import": _("Import")}
RULE_LABELS = {"fixed": _("Keep the price I set"), "markup": _("Cost plus a percentage"),
               "margin": _("Cost plus an amount")}


@view_defaults(permission="admin")
class SupplierViews:
    def __init__(self, request):
        self.request = request
        self.db = request.db

    def _connection(self) -> SupplierConnection:
        try:
            cid = int(self.request.matchdict["id"])
        except ValueError:
            raise HTTPNotFound() from None
        connection = self.db.get(SupplierConnection, cid) if 0 < cid < 2 ** 31 else None
        if connection is None:
            raise HTTPNotFound()
        return connection

    def _form_values(self, cls, connection) -> dict:
        values = connections.read_settings(self.request, connection) if connection is not None else {}
        return {f.name: (MASK if f.secret and values.get(f.name) else values.get(f.name)) for f in cls.settings}

    @view_config(route_name="admin.suppliers", renderer=tpl("admin/suppliers/list.pt"))
    def list(self):
        request = self.request
        rows = self.db.scalars(select(SupplierConnection).order_by(SupplierConnection.id)).all()
        bound = dict(self.db.execute(select(SkuUpstream.connection_id, func.count()).group_by(
            SkuUpstream.connection_id)).all())
        available = connections.available_connectors(request)
        chosen = request.params.get("connector") or (available[0].identifier if available else "")
        cls = connections.connector_class(request, chosen)
        errors, values = {}, (self._form_values(cls, None) if cls else {})
        if request.method == "POST" and cls is not None:
            raw = {f.name: request.POST.get(f.name, "") for f in cls.settings}
            try:
                connection = connections.save_connection(
                    request, None, chosen, request.POST.get("name", ""), raw,
                    sync_interval=request.POST.get("sync_interval"),
                    deadline_minutes=request.POST.get("deadline_minutes"))
            except SettingError as exc:
                request.tm.doom()
                errors[exc.field_name] = exc.message
                secret = {f.name for f in cls.settings if f.secret}
                values.update({k: v for k, v in raw.items() if k not in secret})
                request.response.status = 400
            else:
                ok, message = connections.check_health(request, connection)
                flash(request, _("Supplier connection saved.") if ok else
                      _("Saved, but the connection test failed: ${why}", mapping={"why": message}),
                      "info" if ok else "error")
                return HTTPFound(request.route_url("admin.supplier", id=connection.id))
        return {"rows": rows, "bound": bound, "available": available, "chosen": cls, "values": values,
                "health_labels": HEALTH_LABELS,
                "errors": errors, "name": request.POST.get("name", "")}

    @view_config(route_name="admin.supplier", renderer=tpl("admin/suppliers/connection.pt"))
    def connection(self):
        request = self.request
        connection = self._connection()
        cls = connections.connector_class(request, connection.connector)
        errors, values = {}, (self._form_values(cls, connection) if cls else {})
        if request.method == "POST":
            if cls is None:
                raise HTTPNotFound()
            raw = {f.name: request.POST.get(f.name, "") for f in cls.settings}
            try:
                connections.save_connection(request, connection, connection.connector, request.POST.get("name", ""),
                                            raw, sync_interval=request.POST.get("sync_interval"),
                                            deadline_minutes=request.POST.get("deadline_minutes"),
                                            enabled=request.POST.get("enabled") == "1")
            except SettingError as exc:
                request.tm.doom()
                errors[exc.field_name] = exc.message
                request.response.status = 400
            else:
                flash(request, _("Supplier connection saved."))
                return HTTPFound(request.route_url("admin.supplier", id=connection.id))
        logs = self.db.scalars(select(SyncLog).where(SyncLog.connection_id == connection.id)
                               .order_by(SyncLog.id.desc()).limit(20)).all()
        bindings = self.db.scalars(select(SkuUpstream).where(SkuUpstream.connection_id == connection.id)
                                   .order_by(SkuUpstream.id)).all()
        pending = self.db.scalar(select(func.count()).select_from(UpstreamOrder).where(
            UpstreamOrder.connection_id == connection.id,
            UpstreamOrder.status.not_in(("success", "failed", "partial")))) or 0
        return {"connection": connection, "cls": cls, "values": values, "errors": errors, "logs": logs,
                "changes": lambda log: json.loads(log.changes or "[]"), "bindings": bindings, "pending": pending,
                "fmt": money.format_minor, "currency": request.shop["currency"], "rule_labels": RULE_LABELS,
                "health_labels": HEALTH_LABELS, "kind_labels": KIND_LABELS}

    @view_config(route_name="admin.supplier.goods", renderer=tpl("admin/suppliers/goods.pt"))
    def goods(self):
        """What the upstream sells, to pick goods to import."""
        request = self.request
        connection = self._connection()
        connector = connections.connector_for(request, connection)
        error, goods = None, []
        if connector is None:
            error = _("The connector plugin is not enabled.")
        else:
            try:
                goods = connector.list_goods()
            except SupplierError as exc:
                error = str(exc)
        imported = set(self.db.scalars(select(SkuUpstream.upstream_goods).where(
            SkuUpstream.connection_id == connection.id)))
        return {"connection": connection, "goods": goods, "imported": imported, "error": error,
                "rule_labels": RULE_LABELS, "type_labels": TYPE_LABELS}

    @view_config(route_name="admin.supplier.action")
    def action(self):
        request = self.request
        connection = self._connection()
        action = request.matchdict["action"]
        back = request.route_url("admin.supplier", id=connection.id)
        actor = audit.actor_of(request)
        if action == "test":
            ok, message = connections.check_health(request, connection)
            flash(request, _("Connection test passed: ${message}", mapping={"message": message}) if ok else
                  _("Connection test failed: ${reason}", mapping={"reason": message}), "info" if ok else "error")
        elif action == "sync":
            entry = sync.sync_connection(request, connection)
            audit.record(self.db, actor, "supplier.sync", str(connection.id))
            flash(request, _("Synced: ${n} changes.", mapping={"n": len(json.loads(entry.changes or "[]"))})
                  if not entry.error else _("The sync failed: ${why}", mapping={"why": entry.error}),
                  "error" if entry.error else "info")
        elif action == "import":
            wanted = [g[:128] for g in request.POST.getall("goods")][:200]
            try:
                rule = sync.check_rule(request.POST.get("price_mode", "markup"), request.POST.get("price_value", "0"),
                                       request.POST.get("price_step", "1"))
                made = sync.import_goods(request, connection, wanted, rule)
            except SettingError as exc:
                request.tm.doom()
                flash(request, exc.message, "error")
                return HTTPFound(request.route_url("admin.supplier.goods", id=connection.id))
            except SupplierError as exc:
                request.tm.doom()
                flash(request, _("The supplier did not answer: ${why}", mapping={"why": str(exc)}), "error")
                return HTTPFound(request.route_url("admin.supplier.goods", id=connection.id))
            audit.record(self.db, actor, "supplier.import", str(connection.id), products=made)
            flash(request, _("${n} products imported.", mapping={"n": len(made)}))
        else:
            raise HTTPNotFound()
        return HTTPFound(back)
