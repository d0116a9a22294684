"""The sandbox supplier: a SIMULATED upstream for demos and tests.

It sells generated card keys and simulated direct recharges from this
process's memory; nothing is bought and no key is real. Its connections'
settings are declared by :class:`SandboxSupplier` (the plugin itself has none).
"""
from kameng import hookimpl
from kameng.i18n import _
from kameng.types import PluginMeta

from kameng_sandbox_supplier.connector import SandboxSupplier

PLUGIN = PluginMeta(
    name=_("Sandbox supplier (simulation)"),
    description=_("A simulated upstream for demos and tests: generated card keys and direct recharges that "
                  "succeed or fail after a delay, with signed callbacks. Nothing is bought and no key is real; "
                  "do not sell its goods."),
    author="kameng developers",
    kameng_api=">=1,<2",
    category="supplier",
)


@hookimpl
def kameng_supplier_connectors():
    return [SandboxSupplier]
