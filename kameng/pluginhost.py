"""The plugin host: discovery, metadata, enabled state, settings, hook calls.

Every installed plugin (a distribution with an entry point in the ``kameng``
group) is registered with one :class:`pluggy.PluginManager` at start-up.
Whether it is *enabled* is data in the ``plugin_states`` table, read on each
request: ``request.hooks`` calls only the enabled plugins' implementations
(pluggy's ``subset_hook_caller``) and a view deriver answers 404 for the
views of a disabled plugin. So enabling or disabling takes effect at once in
every process, without a restart, and a disabled plugin's data stays.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from pyramid.httpexceptions import HTTPNotFound
from pyramid.viewderivers import INGRESS
from sqlalchemy import Boolean, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

import kameng
from kameng import audit, hookspecs
from kameng.db import Base, UTCDateTime, utcnow
from kameng.i18n import _
from kameng.types import PluginMeta, SettingError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "kameng"
#: the names the core's own hook modules are registered under (never a plugin id)
CORE_NAMES = ("kameng.core", "kameng.dock", "kameng.suppliers")
SECRET_MASK = "********"


class PluginState(Base):
    __tablename__ = "plugin_states"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[str] = mapped_column(Text, default="{}")  # JSON, no secrets
    secrets: Mapped[str] = mapped_column(Text, default="")  # encrypted JSON of secret fields
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PluginError(Exception):
    """A plugin operation the caller asked for cannot be done. ``message``
    is translatable; ``str()`` gives it in English (the CLI)."""

    def __init__(self, message):
        super().__init__(message.interpolate() if hasattr(message, "interpolate") else message)
        self.message = message


@dataclass
class InstalledPlugin:
    id: str
    module: ModuleType | None
    meta: PluginMeta
    version: str = ""
    distribution: str = ""
    errors: list = field(default_factory=list)

    @property
    def package(self) -> str:
        return self.module.__name__ if self.module is not None else ""

    @property
    def fields(self):
        return {f.name: f for f in self.meta.settings}


class HookProxy:
    """``request.hooks``: calls only the hooks of enabled plugins."""

    def __init__(self, host: "PluginHost", disabled: frozenset):
        self._host = host
        self._disabled = disabled

    def __getattr__(self, name):
        return self._host.subset_caller(name, self._disabled)


class PluginHost:
    def __init__(self, pm: pluggy.PluginManager, plugins: dict[str, InstalledPlugin]):
        self.pm = pm
        self.plugins = plugins
        self._callers: dict = {}

    # -- discovery ------------------------------------------------------------------
    @classmethod
    def build(cls, settings: dict, extra_plugins=(), load_entrypoints=True) -> "PluginHost":
        pm = pluggy.PluginManager("kameng")
        pm.add_hookspecs(hookspecs)
        from kameng import corehooks
        from kameng.dock import hooks as dock_hooks
        from kameng.suppliers import hooks as supplier_hooks

        for name, module in zip(CORE_NAMES, (corehooks, dock_hooks, supplier_hooks)):
            pm.register(module, name=name)
        blocked = set((settings.get("kameng.plugins.blocked") or "").split())
        plugins: dict[str, InstalledPlugin] = {}
        candidates = []
        if load_entrypoints:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in blocked:
                    continue
                dist = getattr(ep, "dist", None)
                try:
                    module = ep.load()
                except Exception as exc:  # a broken plugin must not stop the shop
                    log.exception("plugin_load_failed", extra={"plugin": ep.name})
                    plugins[ep.name] = InstalledPlugin(
                        ep.name, None, PluginMeta(name=ep.name), dist.version if dist else "",
                        dist.name if dist else "", [f"import failed: {type(exc).__name__}: {exc}"])
                    continue
                candidates.append((ep.name, module, dist.version if dist else "", dist.name if dist else ""))
        for name, module in extra_plugins:
            candidates.append((name, module, getattr(module, "__version__", "0"), module.__name__))
        for name, module, version, dist_name in candidates:
            if name in plugins or name in CORE_NAMES:
                raise PluginError(f"two plugins are installed with the id {name!r}")
            meta = getattr(module, "PLUGIN", None)
            errors = []
            if not isinstance(meta, PluginMeta):
                errors.append("the module has no PLUGIN = PluginMeta(...)")
                meta = PluginMeta(name=name)
            else:
                try:
                    if Version(kameng.API_VERSION) not in SpecifierSet(meta.kameng_api):
                        errors.append(f"needs kameng API {meta.kameng_api}, this is {kameng.API_VERSION}")
                except InvalidSpecifier:
                    errors.append(f"kameng_api {meta.kameng_api!r} is not a version specifier")
            pm.register(module, name=name)
            plugins[name] = InstalledPlugin(name, module, meta, version, dist_name, errors)
        pm.check_pending()
        return cls(pm, plugins)

    # -- hook calls -----------------------------------------------------------------
    def subset_caller(self, name: str, disabled: frozenset):
        key = (name, disabled)
        caller = self._callers.get(key)
        if caller is None:
            present = [n for n in disabled if self.pm.get_plugin(n) is not None]
            caller = self.pm.subset_hook_caller(name, remove_plugins=[self.pm.get_plugin(n) for n in present])
            self._callers[key] = caller
        return caller

    def collect_by_plugin(self, hook_name: str) -> list[tuple[str, object]]:
        """Call a start-up hook on every installed, compatible plugin (enabled
        or not) and return ``(plugin_id, item)`` for each item of each result
        list; the core's own items come under the names in :data:`CORE_NAMES`."""
        out = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            plugin = self.plugins.get(impl.plugin_name)
            if plugin is not None and plugin.errors:
                continue  # an incompatible plugin contributes nothing
            result = impl.function()
            for item in result or ():
                out.append((impl.plugin_name, item))
        return out

    def owner_of_module(self, module_name: str) -> str | None:
        for pid, plugin in self.plugins.items():
            pkg = plugin.package
            if pkg and (module_name == pkg or module_name.startswith(pkg + ".")):
                return pid
        return None

    # -- state and settings ----------------------------------------------------------
    def get(self, plugin_id: str) -> InstalledPlugin:
        plugin = self.plugins.get(plugin_id)
        if plugin is None:
            raise PluginError(_("No plugin ${id} is installed.", mapping={"id": repr(plugin_id)}))
        return plugin

    def read_settings(self, plugin_id: str, state: PluginState | None, keyring) -> dict:
        plugin = self.get(plugin_id)
        values = {f.name: f.default for f in plugin.meta.settings}
        if state is not None:
            stored = json.loads(state.settings or "{}")
            values.update({k: v for k, v in stored.items() if k in values})
            if state.secrets:
                values.update(json.loads(keyring.decrypt(state.secrets, f"plugin:{plugin_id}")))
        return values

    def missing_required(self, plugin_id: str, values: dict) -> list[str]:
        return [f.name for f in self.get(plugin_id).meta.settings if f.required and values.get(f.name) in (None, "")]


def _state(db, plugin_id: str, lock=False) -> PluginState:
    stmt = select(PluginState).where(PluginState.id == plugin_id)
    if lock:
        stmt = stmt.with_for_update()
    state = db.scalar(stmt)
    if state is None:
        state = PluginState(id=plugin_id, enabled=False, settings="{}", secrets="")
        db.add(state)
        db.flush()
    return state


def configure(request, plugin_id: str, raw: dict, keep_blank_secrets=False) -> dict:
    """Validate and store settings for a plugin; unknown names and bad values
    raise :class:`SettingError` before anything is written. With
    ``keep_blank_secrets`` (the admin form), an empty or masked secret field
    keeps its stored value. Returns the settings now in force."""
    host: PluginHost = request.registry["kameng.plugins"]
    keyring = request.registry["kameng.keyring"]
    plugin = host.get(plugin_id)
    fields = plugin.fields
    parsed = {}
    for name, value in raw.items():
        f = fields.get(name)
        if f is None:
            raise SettingError(name, _("is not a setting of this plugin"))
        if f.secret and keep_blank_secrets and (value in ("", None, SECRET_MASK)):
            continue
        parsed[name] = f.parse(value)
    state = _state(request.db, plugin_id, lock=True)
    values = host.read_settings(plugin_id, state, keyring)
    values.update(parsed)
    if state.enabled:
        missing = host.missing_required(plugin_id, values)
        if missing:
            raise SettingError(missing[0], _("is required"))
    if plugin.meta.validate is not None and (state.enabled or parsed):
        plugin.meta.validate(values)
    public = {k: v for k, v in values.items() if k in fields and not fields[k].secret}
    secret = {k: v for k, v in values.items() if k in fields and fields[k].secret and v is not None}
    state.settings = json.dumps(public, ensure_ascii=False)
    state.secrets = keyring.encrypt(json.dumps(secret), f"plugin:{plugin_id}") if secret else ""
    request.__dict__.get("_kameng_plugin_settings", {}).pop(plugin_id, None)  # read them afresh
    state.updated_at = utcnow()
    audit.record(request.db, audit.actor_of(request), "plugin.configure", plugin_id,
                 fields=sorted(parsed))  # names only, never values
    request.db.flush()
    return values


def set_enabled(request, plugin_id: str, enabled: bool) -> None:
    host: PluginHost = request.registry["kameng.plugins"]
    plugin = host.get(plugin_id)
    if enabled and plugin.errors:
        raise PluginError(_("${id} cannot be enabled: it does not work with this version of kameng.",
                            mapping={"id": plugin_id}))
    state = _state(request.db, plugin_id, lock=True)
    if enabled:
        values = host.read_settings(plugin_id, state, request.registry["kameng.keyring"])
        missing = host.missing_required(plugin_id, values)
        if missing:
            raise PluginError(_("${id} cannot be enabled before these settings are set: ${names}",
                                mapping={"id": plugin_id, "names": ", ".join(missing)}))
        if plugin.meta.validate is not None:
            try:
                plugin.meta.validate(values)
            except SettingError as exc:
                raise PluginError(_("${id} cannot be enabled: setting ${name} ${message}",
                                    mapping={"id": plugin_id, "name": exc.field_name,
                                             "message": exc.message})) from None
        from kameng.migrate import pending_branches

        if plugin_id in pending_branches(request.registry["kameng.engine"], host):
            raise PluginError(_("${id} has database migrations to run first: run `kameng migrate`.",
                                mapping={"id": plugin_id}))
    if state.enabled == enabled:
        return
    state.enabled = enabled
    state.updated_at = utcnow()
    audit.record(request.db, audit.actor_of(request), "plugin.enable" if enabled else "plugin.disable", plugin_id)
    request.db.flush()
    others = frozenset(host.plugins) - {plugin_id}
    hook = "kameng_plugin_enabled" if enabled else "kameng_plugin_disabled"
    getattr(HookProxy(host, others), hook)(request=request, plugin_id=plugin_id)


# -- request API ------------------------------------------------------------------------


def _plugin_states(request) -> dict:
    return {s.id: s for s in request.db.scalars(select(PluginState))}


def _enabled_plugins(request) -> frozenset:
    host: PluginHost = request.registry["kameng.plugins"]
    return frozenset(
        pid for pid, s in request.plugin_states.items()
        if s.enabled and pid in host.plugins and not host.plugins[pid].errors
    )


def _hooks(request) -> HookProxy:
    host: PluginHost = request.registry["kameng.plugins"]
    return HookProxy(host, frozenset(host.plugins) - request.enabled_plugins)


def _plugin_settings(request, plugin_id: str) -> dict:
    """A plugin's settings, secrets decrypted: read and decrypted once per
    request (an order asks for its gateway's several times), a copy each call."""
    memo = request.__dict__.setdefault("_kameng_plugin_settings", {})
    if plugin_id not in memo:
        host: PluginHost = request.registry["kameng.plugins"]
        memo[plugin_id] = host.read_settings(plugin_id, request.plugin_states.get(plugin_id),
                                             request.registry["kameng.keyring"])
    return dict(memo[plugin_id])


def plugin_view_deriver(view, info):
    """Views defined in a plugin's package answer 404 while it is disabled."""
    host: PluginHost = info.registry["kameng.plugins"]
    original = info.original_view
    module = getattr(original, "__module__", None) or getattr(type(original), "__module__", "")
    owner = host.owner_of_module(module)
    if owner is None:
        return view

    def guarded(context, request):
        if owner not in request.enabled_plugins:
            raise HTTPNotFound()
        return view(context, request)

    return guarded


def includeme(config):
    host: PluginHost = config.registry["kameng.plugins"]
    config.add_request_method(_plugin_states, "plugin_states", reify=True)
    config.add_request_method(_enabled_plugins, "enabled_plugins", reify=True)
    config.add_request_method(_hooks, "hooks", reify=True)
    config.add_request_method(_plugin_settings, "plugin_settings")
    # outermost: a disabled plugin's page is a 404 for everyone, before any
    # permission check could redirect to the login page
    config.add_view_deriver(plugin_view_deriver, under=INGRESS, over="secured_view")
    for _pid, plugin in host.plugins.items():
        if plugin.module is not None and not plugin.errors and hasattr(plugin.module, "includeme"):
            config.include(plugin.module)
