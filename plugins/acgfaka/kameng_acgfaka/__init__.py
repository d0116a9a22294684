"""acg-faka (异次元发卡) as an upstream: resell the goods of an acg-faka shop
through its legacy "共享店铺" docking API (type 0). The connector's
settings (shop address, app_id, app_key) are per connection; the plugin
itself has none."""
from kameng import hookimpl
from kameng.i18n import _
from kameng.types import PluginMeta

from kameng_acgfaka.connector import AcgFakaConnector

PLUGIN = PluginMeta(
    name=_("acg-faka upstream (异次元发卡 共享店铺)"),
    description=_("Resell the goods of an acg-faka shop: its catalogue, your prices and stock there, and orders "
                  "paid from your balance at that shop, card keys delivered at once. Add the shop under "
                  "Suppliers with its address, your merchant ID (app_id) and merchant key (app_key)."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="supplier",
)


@hookimpl
def kameng_supplier_connectors():
    return [AcgFakaConnector]
