"""Every core route, in one place."""


def public_url(request, route_name: str, **kw) -> str:
    """A URL on ``kameng.base_url``, for anything sent outside the request
    (notify and return URLs, emails): never built from the Host header."""
    base = request.registry.settings["kameng.base_url"].rstrip("/")
    return request.route_url(route_name, _app_url=base, **kw)


def includeme(config):
    config.add_request_method(public_url, "public_url")
    # storefront
    config.add_route("home", "/")
    config.add_route("language", "/language/{lang}")
    config.add_route("login", "/login")
    config.add_route("logout", "/logout")
    config.add_route("category", "/c/{id}")
    config.add_route("product", "/p/{id}")
    config.add_route("healthz", "/healthz")
    # payments: each gateway's notify, and the return page
    config.add_route("pay.notify", "/pay/{gateway}/notify", request_method=("GET", "POST"))
    # admin
    config.add_route("admin.home", "/admin")
    config.add_route("admin.plugins", "/admin/plugins")
    config.add_route("admin.plugin", "/admin/plugins/{id}")
    config.add_route("admin.plugin.toggle", "/admin/plugins/{id}/toggle", request_method="POST")
    config.add_route("admin.settings", "/admin/settings")
    config.add_route("admin.jobs", "/admin/jobs")
    config.add_route("admin.job.retry", "/admin/jobs/{id}/retry", request_method="POST")
    config.add_route("admin.payments", "/admin/payments")
    config.add_route("admin.payments.test", "/admin/payments/test", request_method="POST")
    config.add_route("admin.audit", "/admin/audit")
    # admin: catalog and stock
    config.add_route("admin.categories", "/admin/categories")
    config.add_route("admin.category", "/admin/categories/{id}")
    config.add_route("admin.category.delete", "/admin/categories/{id}/delete", request_method="POST")
    config.add_route("admin.products", "/admin/products")
    config.add_route("admin.product.new", "/admin/products/new")
    config.add_route("admin.product", "/admin/products/{id}")
    config.add_route("admin.product.delete", "/admin/products/{id}/delete", request_method="POST")
    config.add_route("admin.sku.new", "/admin/products/{id}/skus/new")
    config.add_route("admin.sku", "/admin/skus/{code}")
    config.add_route("admin.stock", "/admin/skus/{code}/stock")
    config.add_route("admin.stock.import", "/admin/skus/{code}/import", request_method="POST")
    config.add_route("admin.stock.export", "/admin/skus/{code}/export", request_method="POST")
    config.add_route("admin.key.reveal", "/admin/keys/{id}/reveal", request_method="POST")
    config.add_route("admin.key.void", "/admin/keys/{id}/void", request_method="POST")
    # JSON API
    config.add_route("api.openapi", "/api/v1/openapi.json")
    config.add_route("api.health", "/api/v1/health")
    config.add_route("api.categories", "/api/v1/categories", request_method="GET")
    config.add_route("api.products", "/api/v1/products", request_method="GET")
    config.add_route("api.product", "/api/v1/products/{id}", request_method="GET")
    config.add_route("api.admin.categories", "/api/v1/admin/categories")
    config.add_route("api.admin.products", "/api/v1/admin/products")
    config.add_route("api.admin.product", "/api/v1/admin/products/{id}")
    config.add_route("api.admin.sku", "/api/v1/admin/skus/{code}")
    config.add_route("api.admin.sku.keys", "/api/v1/admin/skus/{code}/keys")
    config.add_route("api.admin.sku.stock", "/api/v1/admin/skus/{code}/stock")
    config.add_route("api.admin.sku.imports", "/api/v1/admin/skus/{code}/imports")
    config.add_route("api.admin.plugins", "/api/v1/admin/plugins")
    config.add_route("api.admin.plugin", "/api/v1/admin/plugins/{id}")
    config.add_route("api.admin.jobs", "/api/v1/admin/jobs")
