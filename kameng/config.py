"""Building the application: settings, database, plugins, security, views."""
from __future__ import annotations

import os

from pyramid.config import Configurator
from pyramid.settings import asbool

from kameng import httpclient
from kameng.crypto import KeyRing
from kameng.pluginhost import PluginHost

ENV_OVERRIDES = {
    "KAMENG_DATABASE_URL": "sqlalchemy.url",
    "KAMENG_BASE_URL": "kameng.base_url",
    "KAMENG_REDIS_URL": "kameng.redis_url",
}

DEFAULTS = {
    "kameng.base_url": "http://127.0.0.1:6543",
    "kameng.theme": "default",
    "kameng.login.max_failures": "5",
    "kameng.login.lockout_minutes": "15",
    "kameng.limits.orders_per_ip_per_minute": "20",
    "kameng.limits.lookups_per_ip_per_minute": "30",
    "kameng.limits.lookup_failures_per_order": "5",
    "kameng.limits.lookup_lockout_minutes": "15",
    "kameng.limits.logins_per_ip_per_minute": "10",
    "kameng.limits.dock_failures_per_ip_per_minute": "20",
    "kameng.limits.dock_failures_per_key_per_minute": "60",
    "kameng.orders.expire_minutes": "15",
    "tm.annotate_user": "false",
    "retry.attempts": "3",
}


def prepare_settings(settings: dict) -> dict:
    settings = {**DEFAULTS, **settings}
    for env, key in ENV_OVERRIDES.items():
        if os.environ.get(env):
            settings[key] = os.environ[env]
    data_dir = settings.get("kameng.data_dir")
    if data_dir and not settings.get("kameng.themes_dir"):
        settings["kameng.themes_dir"] = os.path.join(data_dir, "themes")
    if data_dir and not settings.get("kameng.media_dir"):
        settings["kameng.media_dir"] = os.path.join(data_dir, "media")
    return settings


def configure(settings: dict, extra_plugins=(), load_entrypoints=None) -> Configurator:
    """The Pyramid configurator for a shop; ``make_wsgi_app()`` on it gives the app.

    ``extra_plugins`` is a list of ``(plugin_id, module)`` registered as if
    installed (for tests); ``load_entrypoints=False`` skips installed plugins.
    """
    settings = prepare_settings(settings)
    httpclient.configure(settings)
    if load_entrypoints is None:
        load_entrypoints = asbool(settings.get("kameng.plugins.load_entrypoints", True))
    config = Configurator(settings=settings)
    config.registry["kameng.keyring"] = settings.get("kameng.keyring_object") or KeyRing.from_file(
        settings["kameng.key_file"])
    host = PluginHost.build(settings, extra_plugins=extra_plugins, load_entrypoints=load_entrypoints)
    config.registry["kameng.plugins"] = host

    config.include("pyramid_tm")
    config.include("pyramid_retry")
    config.include("pyramid_chameleon")
    config.include("kameng.db")
    config.include("kameng.i18n")
    config.include("kameng.security")
    config.include("kameng.shop")
    config.include("kameng.pluginhost")
    config.include("kameng.theming")
    config.include("kameng.pagecache")
    config.include("kameng.media")

    from kameng import jobs
    from kameng.payments import service as payments

    jobs.build_registries(config, host)
    payments.build_registry(config, host)

    config.include("kameng.routes")
    config.include("kameng.dock")
    config.include("kameng.suppliers")
    for module in ("kameng.errors", "kameng.storefront.views", "kameng.admin.views", "kameng.admin.catalog",
                   "kameng.api.views", "kameng.api.catalog", "kameng.payments.views", "kameng.api.orders",
                   "kameng.api.admin_orders", "kameng.storefront.orders", "kameng.storefront.account",
                   "kameng.storefront.password_reset", "kameng.api.account", "kameng.storefront.topup",
                   "kameng.admin.orders", "kameng.admin.users", "kameng.media.views"):
        config.scan(module)
    config.commit()
    return config
