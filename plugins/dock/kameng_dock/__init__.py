"""Docking with another kameng shop: buy its goods through its signed
docking API (``/api/v1/dock/``) and resell them here."""
from kameng import hookimpl
from kameng.i18n import _
from kameng.types import PluginMeta
from kameng_dock.connector import DockConnector

PLUGIN = PluginMeta(
    name=_("Docking with kameng shops"),
    description=_("Resell goods of another kameng shop: import its goods, and every order placed here is "
                  "placed there, paid from your balance at that shop, and delivered back automatically."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="supplier",
)


@hookimpl
def kameng_supplier_connectors():
    return [DockConnector]
