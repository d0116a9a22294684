"""Supplier connections: upstream accounts that fulfil orders, and the sync
of their goods, prices and stock."""


def includeme(config):
    from kameng.suppliers.connections import build_registry

    build_registry(config, config.registry["kameng.plugins"])
    config.add_route("supplier.callback", "/supplier/callback/{connection_id}")
    config.add_route("admin.suppliers", "/admin/suppliers")
    config.add_route("admin.supplier", "/admin/suppliers/{id}")
    config.add_route("admin.supplier.goods", "/admin/suppliers/{id}/goods")
    config.add_route("admin.supplier.action", "/admin/suppliers/{id}/{action}", request_method="POST")
    config.scan("kameng.suppliers.views")
    config.scan("kameng.suppliers.admin")
