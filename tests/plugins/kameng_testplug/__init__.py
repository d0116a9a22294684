"""A plugin used by the core's tests: settings of every kind, a route, a
table on its own migration branch, hooks and a job handler."""
import os

from pyramid.view import view_config
from sqlalchemy import Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kameng import hookimpl
from kameng.db import NAMING_CONVENTION
from kameng.types import JobHandler, MenuItem, PluginMeta, SettingField, StorefrontBlock

PLUGIN = PluginMeta(
    name="Test plugin",
    description="used by kameng's own tests",
    author="kameng tests",
    category="other",
    settings=(
        SettingField("api_key", "API key", required=True, secret=True, min_length=8),
        SettingField("retries", "Retries", type="int", default=3, min_value=0, max_value=10),
        SettingField("mode", "Mode", type="choice", choices=("live", "test"), default="test"),
        SettingField("endpoint", "Endpoint", type="url"),
        SettingField("verbose", "Verbose", type="bool", default=False),
    ),
)

CALLS = []


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Row(Base):
    __tablename__ = "testplug_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note: Mapped[str] = mapped_column(String(100))


@hookimpl
def kameng_migration_locations():
    return [os.path.join(os.path.dirname(__file__), "migrations")]


@hookimpl
def kameng_storefront_blocks(request, slot):
    if slot == "home.top":
        return [StorefrontBlock(slot, "<p id='testplug-block'>from the test plugin</p>")]
    return None


@hookimpl
def kameng_admin_menu(request):
    return [MenuItem("Test plugin page", "testplug.ping", "plugins", 500)]


@hookimpl
def kameng_plugin_enabled(request, plugin_id):
    CALLS.append(("enabled", plugin_id))


@hookimpl
def kameng_plugin_disabled(request, plugin_id):
    CALLS.append(("disabled", plugin_id))


@hookimpl
def kameng_notify(request, event, data):
    CALLS.append(("notify", event, data))
    if data.get("fail"):
        raise RuntimeError("channel down")


def record_job(request, payload):
    request.db.add(Row(note=str(payload.get("note", ""))[:100]))


@hookimpl
def kameng_job_handlers():
    return [JobHandler("testplug.record", record_job, max_attempts=2)]


@view_config(route_name="testplug.ping", renderer="json")
def ping(request):
    return {"pong": True, "mode": request.plugin_settings("testplug")["mode"]}


@view_config(route_name="testplug.admin", renderer="json", permission="admin")
def admin_page(request):
    return {"admin": True}


def includeme(config):
    config.add_route("testplug.ping", "/-/testplug/ping")
    config.add_route("testplug.admin", "/-/testplug/admin")
    config.scan(__name__)
