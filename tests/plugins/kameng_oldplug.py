"""A plugin written for a future kameng API: installed, but cannot be enabled."""
from kameng import hookimpl
from kameng.types import PluginMeta, StorefrontBlock

PLUGIN = PluginMeta(name="Old plugin", kameng_api=">=2,<3")


@hookimpl
def kameng_storefront_blocks(request, slot):
    return [StorefrontBlock(slot, "<p id='oldplug'>must never show</p>")]
