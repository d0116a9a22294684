"""The docking API: this shop as an upstream for agents and other shops
(``/api/v1/dock/``, API.md "Docking API", docs/docking.md).

- :mod:`kameng.dock.auth`: the request signature (also used by the ``dock``
  supplier connector to call another kameng shop);
- :mod:`kameng.dock.views`: goods, balance, orders;
- :mod:`kameng.dock.callbacks`: signed callbacks when an order finishes;
- :mod:`kameng.dock.admin` and :mod:`kameng.dock.admin_api`: an account's keys.
"""
from pyramid.events import NewRequest

from kameng.dock import models  # noqa: F401  (the tables are in the core metadata)

API_PREFIX = "/api/v1/dock/"


def _writes(event) -> None:
    """Every docking request records its nonce: on SQLite it takes the write
    lock at BEGIN, like a POST, instead of failing to upgrade a read."""
    request = event.request
    if request.path_info.startswith(API_PREFIX):
        request.environ["kameng.write"] = True


def includeme(config):
    config.add_route("dock.goods", "/api/v1/dock/goods", request_method="GET")
    config.add_route("dock.goods.one", "/api/v1/dock/goods/{id}", request_method="GET")
    config.add_route("dock.balance", "/api/v1/dock/balance", request_method="GET")
    config.add_route("dock.orders", "/api/v1/dock/orders", request_method="POST")
    config.add_route("dock.order", "/api/v1/dock/orders/{out_order_no}", request_method="GET")
    config.add_route("api.admin.user.dock_keys", "/api/v1/admin/users/{id}/dock-keys")
    config.add_route("api.admin.dock_key.revoke", "/api/v1/admin/dock-keys/{key_id}/revoke", request_method="POST")
    config.add_route("admin.dock.keys", "/admin/users/{id}/dock-keys")
    config.add_route("admin.dock.key.action", "/admin/dock-keys/{key_id}/{action}", request_method="POST")
    config.add_subscriber(_writes, NewRequest)
    config.scan("kameng.dock.views")
    config.scan("kameng.dock.admin")
    config.scan("kameng.dock.admin_api")
