"""kameng-hello: the example plugin of kameng's plugin guide (docs/plugins.md).

A greeting on the home page, an admin page, a table on its own migration
branch and a background job. The plugin id is the entry point's name,
``hello`` (see setup.cfg).
"""
from pyramid.renderers import render

from kameng import hookimpl
from kameng.types import JobHandler, MenuItem, PluginMeta, SettingField, StorefrontBlock

__version__ = "0.1.0"

PLUGIN = PluginMeta(
    name="Hello",
    description="An example plugin: greets buyers at the top of the home page.",
    author="kameng developers",
    kameng_api=">=1,<2",
    category="other",
    settings=(
        SettingField("greeting", "Greeting", required=True, max_length=200,
                     help="Shown at the top of the home page, as plain text."),
    ),
)


@hookimpl
def kameng_migration_locations():
    # An asset spec of a folder inside this package; its revisions form the
    # branch labelled "hello" (the plugin id).
    return ["kameng_hello:migrations"]


@hookimpl
def kameng_storefront_blocks(request, slot):
    if slot != "home.top":
        return None
    greeting = request.plugin_settings("hello")["greeting"]
    # Rendered from a template, so the greeting is escaped and a theme can
    # override the markup (themes/<name>/plugins/kameng_hello/templates/block.pt).
    html = render("kameng_hello:templates/block.pt", {"greeting": greeting}, request=request)
    return [StorefrontBlock(slot=slot, html=html, order=50)]


@hookimpl
def kameng_admin_menu(request):
    return [MenuItem(label="Hello", route_name="hello.admin", section="plugins", order=500)]


@hookimpl
def kameng_job_handlers():
    from kameng_hello.jobs import record_visit

    return [JobHandler(kind="hello.record_visit", func=record_visit, max_attempts=5)]


def includeme(config):
    """Called once at start-up (for installed plugins without errors, enabled
    or not); the views answer 404 by themselves while the plugin is disabled."""
    config.add_route("hello.admin", "/-/hello/")
    config.scan("kameng_hello.views")
