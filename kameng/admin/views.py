"""The admin backend: dashboard, plugins, shop settings, jobs, payments, audit."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.view import view_config, view_defaults
from sqlalchemy import func, select

from kameng import audit, jobs, money, shop
from kameng.audit import AuditEntry
from kameng.i18n import _
from kameng.errors import APIError
from kameng.payments.base import GatewayError
from kameng.payments import service as payments
from kameng.payments.models import PaymentAttempt, PaymentNotice
from kameng.pluginhost import SECRET_MASK, PluginError, configure, set_enabled
from kameng.theming import tpl
from kameng.types import MenuItem, SettingError

CORE_MENU = [
    MenuItem(_("Dashboard"), "admin.home", "shop", 0),
    MenuItem(_("Plugins"), "admin.plugins", "system", 10),
    MenuItem(_("Shop settings"), "admin.settings", "system", 20),
    MenuItem(_("Categories"), "admin.categories", "shop", 10),
    MenuItem(_("Products and stock"), "admin.products", "shop", 20),
    MenuItem(_("Images"), "admin.media", "shop", 25),
    MenuItem(_("Orders"), "admin.orders", "shop", 5),
    MenuItem(_("Payments"), "admin.payments", "shop", 30),
    MenuItem(_("Users"), "admin.users", "shop", 40),
    MenuItem(_("Agents"), "admin.agents", "shop", 41),
    MenuItem(_("Member levels"), "admin.levels", "shop", 42),
    MenuItem(_("Background jobs"), "admin.jobs", "system", 40),
    MenuItem(_("Audit log"), "admin.audit", "system", 50),
]


SECTIONS = {"shop": _("Shop"), "plugins": _("Plugins"), "system": _("System")}

STATUS_LABELS = {"pending": _("Pending"), "paid": _("Paid"), "failed": _("Failed"), "closed": _("Closed")}
OUTCOME_LABELS = {"applied": _("Applied"), "duplicate": _("Already applied"), "not_paid": _("Not paid"),
                  "rejected": _("Rejected (signature)"), "unknown_attempt": _("Unknown payment"),
                  "wrong_gateway": _("Wrong gateway"), "wrong_merchant": _("Wrong merchant"),
                  "currency_mismatch": _("Wrong currency"), "amount_mismatch": _("Wrong amount"),
                  "bad_amount": _("Bad amount"), "no_trade_no": _("No trade number"),
                  "second_payment": _("Paid twice: refund"), "trade_no_reused": _("Trade number reused"),
                  "unknown": _("Unknown to the gateway"), "error": _("Gateway unreachable"),
                  "mismatch": _("Answer about another payment")}


def admin_menu(request) -> list[MenuItem]:
    """The admin menu items this user may see, core and plugins', in order."""
    items = list(CORE_MENU)
    for result in request.hooks.kameng_admin_menu(request=request):
        items.extend(result or ())
    return sorted((i for i in items if request.has_permission(i.permission)), key=lambda i: (i.order, i.route_name))


def admin_sections(request) -> list[tuple]:
    """The menu grouped by section: ``[(label, [MenuItem, ...]), ...]``.
    Every admin page gets it from the admin layout; a plugin's admin view
    passes nothing."""
    grouped: dict[str, list] = {}
    for item in admin_menu(request):
        grouped.setdefault(item.section, []).append(item)
    order = list(SECTIONS)
    keys = sorted(grouped, key=lambda k: (order.index(k) if k in order else len(order), k))
    return [(SECTIONS.get(k, k), grouped[k]) for k in keys]


def flash(request, message, queue="info"):
    request.session.flash(request.localizer.translate(message), queue)


@view_defaults(permission="admin")
class AdminViews:
    def __init__(self, request):
        self.request = request

    def page(self, **values):
        return values

    @view_config(route_name="admin.home", renderer=tpl("admin/dashboard.pt"))
    def dashboard(self):
        db = self.request.db
        counts = dict(db.execute(select(jobs.Job.status, func.count()).group_by(jobs.Job.status)).all())
        paid = db.scalar(select(func.count()).select_from(PaymentAttempt).where(PaymentAttempt.status == "paid"))
        widgets = []
        for result in self.request.hooks.kameng_admin_dashboard_widgets(request=self.request):
            widgets.extend(result or ())
        return self.page(job_counts=counts, paid_attempts=paid or 0, widgets=widgets,
                         enabled=sorted(self.request.enabled_plugins))

    # -- plugins -------------------------------------------------------------------
    @view_config(route_name="admin.plugins", renderer=tpl("admin/plugins.pt"))
    def plugins(self):
        host = self.request.registry["kameng.plugins"]
        rows = sorted(host.plugins.values(), key=lambda p: (p.meta.category, p.id))
        return self.page(plugins=rows, enabled=self.request.enabled_plugins)

    @view_config(route_name="admin.plugin.toggle")
    def toggle(self):
        pid = self.request.matchdict["id"]
        enable = self.request.POST.get("enabled") == "1"
        try:
            set_enabled(self.request, pid, enable)
        except PluginError as exc:
            flash(self.request, exc.message, "error")
        else:
            flash(self.request, _("Plugin ${id} enabled.", mapping={"id": pid}) if enable
                  else _("Plugin ${id} disabled.", mapping={"id": pid}))
        return HTTPFound(self.request.route_url("admin.plugins"))

    @view_config(route_name="admin.plugin", renderer=tpl("admin/plugin.pt"))
    def plugin_settings(self):
        request = self.request
        host = request.registry["kameng.plugins"]
        plugin = host.plugins.get(request.matchdict["id"])
        if plugin is None:
            raise HTTPNotFound()
        errors = {}
        if request.method == "POST":
            raw = {f.name: request.POST.get(f.name, "") for f in plugin.meta.settings}
            try:
                configure(request, plugin.id, raw, keep_blank_secrets=True)
            except SettingError as exc:
                errors[exc.field_name] = exc.message
                request.response.status = 400
            else:
                flash(request, _("Settings saved."))
                return HTTPFound(request.route_url("admin.plugin", id=plugin.id))
        values = request.plugin_settings(plugin.id) if not plugin.errors else {}
        shown = {f.name: (SECRET_MASK if f.secret and values.get(f.name) else values.get(f.name))
                 for f in plugin.meta.settings}
        if request.method == "POST" and errors:
            shown.update({k: v for k, v in request.POST.items() if k in shown and not plugin.fields[k].secret})
        gateway = payments.plugin_gateway(request, plugin.id) if not plugin.errors else None
        return self.page(plugin=plugin, values=shown, errors=errors,
                         enabled=plugin.id in request.enabled_plugins, gateway=gateway,
                         notify_url=request.public_url("pay.notify", gateway=plugin.id) if gateway else None)

    @view_config(route_name="admin.plugin.test")
    def test_connection(self):
        """Ask the gateway's provider something harmless with the stored
        settings and say what came back."""
        request = self.request
        pid = request.matchdict["id"]
        host = request.registry["kameng.plugins"]
        if pid not in host.plugins or host.plugins[pid].errors:
            raise HTTPNotFound()
        gateway = payments.plugin_gateway(request, pid)
        if gateway is None or not gateway.connection_test_supported:
            raise HTTPNotFound()
        try:
            message = gateway.test_connection(request)
        except (GatewayError, KeyError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, GatewayError) else _("a setting is missing or wrong")
            audit.record(request.db, audit.actor_of(request), "plugin.test_connection", pid, ok=False)
            flash(request, _("Connection test failed: ${reason}", mapping={"reason": reason}), "error")
        else:
            audit.record(request.db, audit.actor_of(request), "plugin.test_connection", pid, ok=True)
            flash(request, _("Connection test passed: ${message}", mapping={"message": message}))
        return HTTPFound(request.route_url("admin.plugin", id=pid))

    # -- shop settings ---------------------------------------------------------------
    @view_config(route_name="admin.settings", renderer=tpl("admin/settings.pt"))
    def settings(self):
        request = self.request
        errors = {}
        values = dict(request.shop)
        if request.method == "POST":
            raw = {f.name: request.POST.get(f.name, "") for f in shop.FIELDS}
            try:
                shop.save(request.db, raw)
            except SettingError as exc:
                errors[exc.field_name] = exc.message
                values.update(raw)
                request.response.status = 400
            else:
                audit.record(request.db, audit.actor_of(request), "shop.settings", "", fields=sorted(raw))
                flash(request, _("Settings saved."))
                return HTTPFound(request.route_url("admin.settings"))
        return self.page(fields=shop.FIELDS, values=values, errors=errors)

    # -- jobs ----------------------------------------------------------------------
    @view_config(route_name="admin.jobs", renderer=tpl("admin/jobs.pt"))
    def jobs(self):
        status = self.request.params.get("status", "dead")
        if status not in (jobs.QUEUED, jobs.RUNNING, jobs.DONE, jobs.DEAD):
            status = jobs.DEAD
        rows = self.request.db.scalars(select(jobs.Job).where(jobs.Job.status == status)
                                       .order_by(jobs.Job.id.desc()).limit(200)).all()
        return self.page(rows=rows, status=status)

    @view_config(route_name="admin.job.retry")
    def retry_job(self):
        try:
            job_id = int(self.request.matchdict["id"])
        except ValueError:
            raise HTTPNotFound() from None
        if jobs.retry_dead(self.request.db, job_id):
            audit.record(self.request.db, audit.actor_of(self.request), "job.retry", str(job_id))
            flash(self.request, _("The job is queued again."))
        return HTTPFound(self.request.route_url("admin.jobs", _query={"status": "dead"}))

    # -- payments ------------------------------------------------------------------
    @view_config(route_name="admin.payments", renderer=tpl("admin/payments.pt"))
    def payments(self):
        db = self.request.db
        attempts = db.scalars(select(PaymentAttempt).order_by(PaymentAttempt.id.desc()).limit(100)).all()
        notices = db.scalars(select(PaymentNotice).order_by(PaymentNotice.id.desc()).limit(100)).all()
        return self.page(attempts=attempts, notices=notices, gateways=payments.available_gateways(self.request),
                         fmt=money.format_minor, status_labels=STATUS_LABELS, outcome_labels=OUTCOME_LABELS)

    @view_config(route_name="admin.payments.test")
    def test_payment(self):
        """Pay a small amount through a gateway to check its settings end to end."""
        request = self.request
        gateway = payments.get_gateway(request, request.POST.get("gateway", ""))
        currency = request.shop["currency"]
        try:
            amount = money.parse_minor(request.POST.get("amount", ""), currency)
        except money.MoneyError:
            amount = 0
        if gateway is None or amount <= 0:
            flash(request, _("Choose an enabled gateway and a positive amount."), "error")
            return HTTPFound(request.route_url("admin.payments"))
        attempt = payments.create_attempt(request, gateway, amount, currency,
                                          request.localizer.translate(_("Gateway test payment")),
                                          purpose="gateway_test")
        try:
            action = payments.payment_action(request, gateway, attempt)
        except APIError as exc:
            request.tm.doom()
            flash(request, exc.message, "error")
            return HTTPFound(request.route_url("admin.payments"))
        audit.record(request.db, audit.actor_of(request), "payment.test", attempt.attempt_no, gateway=gateway.identifier)
        if action.kind == "redirect" and action.url:
            return HTTPFound(action.url)
        flash(request, _("Payment ${no} created.", mapping={"no": attempt.attempt_no}))
        return HTTPFound(request.route_url("admin.payments"))

    @view_config(route_name="admin.audit", renderer=tpl("admin/audit.pt"))
    def audit_log(self):
        rows = self.request.db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(200)).all()
        return self.page(rows=rows)
