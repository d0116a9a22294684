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
    # JSON API
    config.add_route("api.openapi", "/api/v1/openapi.json")
    config.add_route("api.health", "/api/v1/health")
    config.add_route("api.admin.plugins", "/api/v1/admin/plugins")
    config.add_route("api.admin.plugin", "/api/v1/admin/plugins/{id}")
    config.add_route("api.admin.jobs", "/api/v1/admin/jobs")
