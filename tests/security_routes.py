"""The authorisation matrix: every route of the app, for each method it
answers, the status each role gets (``tests/test_authz_matrix.py`` runs it;
``tests/test_csrf_routes.py`` reuses its requests).

A route added to the app without a row here fails ``test_every_route_is_classified``:
add a :class:`Row` with the path's parameters and what every role must get.

The roles (:data:`security_helpers.ROLES`): ``anonymous``; ``buyer_a``, who
owns the world's orders; ``buyer_b``, another buyer; ``agent``; ``admin``.
The statuses are what the request of the row gets: an empty form (with the
CSRF token) or an empty JSON object, on the world built by
:func:`security_helpers.build_world`. ``LOGIN`` is a redirect to the
sign-in page.

The rules, by kind of route:
- the admin's pages: the sign-in page for a visitor, 403 for buyers and agents;
- the admin API: 401 without credentials, 403 for buyers and agents;
- an order, its payments and its buttons (``OWNER``): 404 for everyone but
  its owner and the admin, the same answer as for an unknown number (no
  existence oracle);
- signed entry points (gateway notifies, supplier callbacks, the docking
  API): a session or an API token opens nothing there, every role gets the
  same refusal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from security_helpers import LOGIN, ROLES


def public(status) -> dict:
    """Everyone gets the same answer."""
    return dict.fromkeys(ROLES, status)


def admin_page(status) -> dict:
    return {"anonymous": LOGIN, "buyer_a": 403, "buyer_b": 403, "agent": 403, "admin": status}


def admin_api(status) -> dict:
    return {"anonymous": 401, "buyer_a": 403, "buyer_b": 403, "agent": 403, "admin": status}


def member(status, anonymous=LOGIN) -> dict:
    """A signed-in account's own pages (an admin is an account too)."""
    return {**dict.fromkeys(ROLES, status), "anonymous": anonymous}


def owner(status, admin=None) -> dict:
    """Buyer A's order: its owner and the admin; 404 for everyone else."""
    return {"anonymous": 404, "buyer_a": status, "buyer_b": 404, "agent": 404,
            "admin": status if admin is None else admin}


@dataclass
class Row:
    route: str
    #: method -> {role: status}
    expect: dict[str, dict]
    #: the path's parameters; ``"@name"`` is the world's value of that name
    params: dict = field(default_factory=dict)
    #: what the request carries (a form for HTML, a JSON object on the API);
    #: ``{role}`` in a value is the role sending it
    body: dict = field(default_factory=dict)
    #: the query string
    query: dict = field(default_factory=dict)
    #: method -> {role: status} where a bearer token (no cookie) gets another answer
    bearer: dict[str, dict] = field(default_factory=dict)
    note: str = ""


ROWS = [
    # -- storefront ------------------------------------------------------------------------
    Row("home", {"GET": public(200), "POST": public(200)}),
    Row("__static/", {"GET": public(200), "POST": public(200)}, {"subpath": ("kameng.css",)}),
    Row("language", {"GET": public(302), "POST": public(302)}, {"lang": "en"}),
    Row("login", {"GET": public(200), "POST": public(400)},
        body={"email": "nobody-{role}@example.com", "password": "not-the-password"},
        note="a wrong password is refused"),
    Row("logout", {"POST": public(302)}, note="the client signs in again afterwards"),
    Row("category", {"GET": public(200), "POST": public(200)}, {"id": "@category_id"}),
    Row("product", {"GET": public(200), "POST": public(200)}, {"id": "@product_id"}),
    Row("media", {"GET": public(404)}, {"name": "0" * 64 + ".png"}, note="no such image"),
    Row("healthz", {"GET": public(200), "POST": public(200)}),
    Row("checkout", {"GET": public(200), "POST": public(404)}, {"id": "@product_id"}, query={"sku": "SEC1"},
        note="the form posted empty names no product option"),
    Row("order", {"GET": owner(200)}, {"order_no": "@order_no"}),
    Row("order.pay", {"GET": owner(303)}, {"order_no": "@pending_order_no", "attempt_no": "@pending_attempt_no"},
        note="the sandbox pays on its own page: a redirect there"),
    Row("order.action", {"POST": owner(303)}, {"order_no": "@order_no", "action": "report"},
        note="an empty report is refused with a message on the order's page"),
    Row("order.qr", {"GET": public(404)},
        {"order_no": "@pending_order_no", "attempt_no": "@pending_attempt_no"},
        note="the sandbox shows no QR code: 404 for its owner too"),
    Row("lookup", {"GET": public(200), "POST": public(404)}, note="an empty lookup finds nothing"),
    Row("register", {"GET": member(302, anonymous=200), "POST": member(302, anonymous=400)},
        note="a signed-in account is sent to its own page"),
    Row("account", {"GET": member(200), "POST": member(200)}),
    Row("account.orders", {"GET": member(200), "POST": member(200)}),
    Row("account.profile", {"GET": member(200), "POST": member(303)},
        note="an empty form saves an empty display name and no phone"),
    Row("password.forgot", {"GET": public(200), "POST": public(400)}, note="no email or phone given"),
    Row("password.reset", {"GET": public(404), "POST": public(404)}, {"token": "A" * 43},
        note="no such reset link: the same page for everyone"),
    Row("account.balance", {"GET": member(200), "POST": member(200)}),
    Row("account.topup", {"POST": member(422)}, note="an empty amount is refused"),
    Row("account.topup.pay", {"GET": {"anonymous": LOGIN, "buyer_a": 303, "buyer_b": 404, "agent": 404,
                                      "admin": 404}},
        {"attempt_no": "@topup_attempt_no"}, note="only the account that tops up sees its payment"),
    Row("order.keys", {"GET": owner(200)}, {"order_no": "@order_no", "fmt": "txt"},
        note="the delivered order's keys as a file: like the order's page"),
    Row("account.agent", {"GET": member(200), "POST": {"anonymous": LOGIN, "buyer_a": 303, "buyer_b": 303,
                                                        "agent": 409, "admin": 409}},
        note="buyers apply to become agents (an empty note is allowed); agents and admins do not"),
    Row("account.agent.prices", {"GET": {"anonymous": LOGIN, "buyer_a": 403, "buyer_b": 403, "agent": 200,
                                         "admin": 403}}, note="an agent's own price list"),
    Row("account.agent.keys", {"POST": {"anonymous": LOGIN, "buyer_a": 403, "buyer_b": 403, "agent": 200,
                                        "admin": 403}}, note="an agent issues itself a docking key (no name)"),
    Row("account.agent.key.revoke", {"POST": {"anonymous": LOGIN, "buyer_a": 403, "buyer_b": 403, "agent": 404,
                                              "admin": 403}}, {"key_id": "dk_" + "0" * 16},
        note="no such key of the agent's"),
    Row("pay.return", {"GET": public(303)}, {"attempt_no": "@attempt_no"},
        note="a redirect to the order (for those who may see it) or to the lookup"),
    Row("pay.notify", {"GET": public(400), "POST": public(400)}, {"gateway": "sandbox"},
        note="signed by the gateway: an unsigned notify is refused for everyone"),
    Row("sandbox.pay", {"GET": public(200), "POST": public(404)}, {"attempt_no": "@pending_attempt_no"},
        note="the test gateway's pay page; an empty choice is a 404"),
    # -- admin pages -----------------------------------------------------------------------
    Row("admin.home", {"GET": admin_page(200), "POST": admin_page(200)}),
    Row("admin.plugins", {"GET": admin_page(200), "POST": admin_page(200)}),
    Row("admin.plugin", {"GET": admin_page(200), "POST": admin_page(302)}, {"id": "sandbox"},
        note="a blank secret keeps the stored one"),
    Row("admin.plugin.toggle", {"POST": admin_page(302)}, {"id": "epay"}, note="turns epay off (it is off)"),
    Row("admin.plugin.test", {"POST": admin_page(404)}, {"id": "sandbox"},
        note="the sandbox has no connection test"),
    Row("admin.settings", {"GET": admin_page(200), "POST": admin_page(400)}),
    Row("admin.jobs", {"GET": admin_page(200), "POST": admin_page(200)}),
    Row("admin.job.retry", {"POST": admin_page(302)}, {"id": "1"}),
    Row("admin.payments", {"GET": admin_page(200), "POST": admin_page(200)}),
    Row("admin.payments.test", {"POST": admin_page(302)}, note="no gateway chosen: a message"),
    Row("admin.audit", {"GET": admin_page(200), "POST": admin_page(200)}),
    Row("admin.orders", {"GET": admin_page(200)}),
    Row("admin.orders.export", {"GET": admin_page(200)}),
    Row("admin.order", {"GET": admin_page(200)}, {"order_no": "@order_no"}),
    Row("admin.order.action", {"POST": admin_page(409)}, {"order_no": "@order_no", "action": "query"},
        note="nothing to ask a gateway about a delivered order"),
    Row("admin.users", {"GET": admin_page(200), "POST": admin_page(422)}),
    Row("admin.user", {"GET": admin_page(200), "POST": admin_page(422)}, {"id": "@user:buyer_b"}),
    Row("admin.user.membership", {"POST": admin_page(302)}, {"id": "@user:buyer_b"},
        note="an empty form changes nothing"),
    Row("admin.user.agent", {"POST": admin_page(422)}, {"id": "@user:buyer_b"}, note="no decision given"),
    Row("admin.agents", {"GET": admin_page(200)}),
    Row("admin.levels", {"GET": admin_page(200), "POST": admin_page(422)}, note="an empty level is refused"),
    Row("admin.level", {"GET": admin_page(404), "POST": admin_page(404)}, {"code": "nosuch"},
        note="no such level"),
    Row("admin.level.delete", {"POST": admin_page(404)}, {"code": "nosuch"}, note="no such level"),
    Row("admin.categories", {"GET": admin_page(200), "POST": admin_page(400)}),
    Row("admin.category", {"GET": admin_page(200), "POST": admin_page(400)}, {"id": "@category_id"}),
    Row("admin.category.delete", {"POST": admin_page(302)}, {"id": "@victim_category_id"}),
    Row("admin.products", {"GET": admin_page(200), "POST": admin_page(200)}),
    Row("admin.product.new", {"GET": admin_page(200), "POST": admin_page(400)}),
    Row("admin.product", {"GET": admin_page(200), "POST": admin_page(400)}, {"id": "@product_id"}),
    Row("admin.product.delete", {"POST": admin_page(302)}, {"id": "@victim_product_id"}),
    Row("admin.sku.new", {"GET": admin_page(200), "POST": admin_page(400)}, {"id": "@product_id"}),
    Row("admin.sku", {"GET": admin_page(200), "POST": admin_page(400)}, {"code": "SEC1"}),
    Row("admin.stock", {"GET": admin_page(200), "POST": admin_page(200)}, {"code": "SEC1"}),
    Row("admin.stock.import", {"POST": admin_page(400)}, {"code": "SEC1"}, note="no keys given"),
    Row("admin.stock.export", {"POST": admin_page(200)}, {"code": "SEC1"}),
    Row("admin.key.reveal", {"POST": admin_page(200)}, {"id": "@sold_key_id"}),
    Row("admin.key.void", {"POST": admin_page(302)}, {"id": "@victim_key_id"}),
    Row("admin.dock.keys", {"GET": admin_page(200), "POST": admin_page(200)}, {"id": "@user:agent"},
        note="a key with a blank name is issued"),
    Row("admin.dock.key.action", {"POST": admin_page(302)}, {"key_id": "@dock_key_id", "action": "ips"}),
    Row("admin.media", {"GET": admin_page(200), "POST": admin_page(400)}, note="no file chosen"),
    Row("admin.suppliers", {"GET": admin_page(200), "POST": admin_page(400)}),
    Row("admin.supplier", {"GET": admin_page(200), "POST": admin_page(400)}, {"id": "@connection_id"}),
    Row("admin.supplier.goods", {"GET": admin_page(200), "POST": admin_page(200)}, {"id": "@connection_id"}),
    Row("admin.supplier.action", {"POST": admin_page(302)}, {"id": "@connection_id", "action": "test"}),
    Row("supplier.callback", {"GET": public(400), "POST": public(400)}, {"connection_id": "@connection_id"},
        note="signed by the supplier: an unsigned callback is refused for everyone"),
    # -- JSON API --------------------------------------------------------------------------
    Row("api.openapi", {"GET": public(200)}),
    Row("api.health", {"GET": public(200), "POST": public(200)}, bearer={"POST": public(400)},
        note="the storefront's health view: Pyramid's own CSRF check, which a bearer token does not pass"),
    Row("api.categories", {"GET": public(200)}),
    Row("api.products", {"GET": public(200)}),
    Row("api.product", {"GET": public(200)}, {"id": "@product_id"}),
    Row("api.account", {"GET": member(200, anonymous=401)}, note="the caller's own account"),
    Row("api.orders", {"POST": public(404)}, body={"sku": "NO-SUCH-SKU", "query_password": "pass-1234"},
        note="no such option: no order for anyone"),
    Row("api.order", {"GET": owner(200)}, {"order_no": "@order_no"}),
    Row("api.order.pay", {"POST": owner(409)}, {"order_no": "@order_no"},
        note="a delivered order cannot be paid again"),
    Row("api.order.cancel", {"POST": owner(409)}, {"order_no": "@order_no"},
        note="a delivered order cannot be cancelled"),
    Row("api.admin.categories", {"GET": admin_api(200), "POST": admin_api(422)}),
    Row("api.admin.products", {"GET": admin_api(200), "POST": admin_api(422)}),
    Row("api.admin.product", {"GET": admin_api(200), "PATCH": admin_api(200), "DELETE": admin_api(200)},
        {"id": "@api_victim_product_id"}),
    Row("api.admin.sku", {"GET": admin_api(200), "PATCH": admin_api(200)}, {"code": "SEC1"}),
    Row("api.admin.sku.keys", {"POST": admin_api(422)}, {"code": "SEC1"}),
    Row("api.admin.sku.stock", {"GET": admin_api(200)}, {"code": "SEC1"}),
    Row("api.admin.sku.imports", {"GET": admin_api(200)}, {"code": "SEC1"}),
    Row("api.admin.orders", {"GET": admin_api(200)}),
    Row("api.admin.order", {"GET": admin_api(200)}, {"order_no": "@order_no"}),
    Row("api.admin.order.action", {"POST": admin_api(422)}, {"order_no": "@order_no", "action": "cancel"},
        note="no reason given"),
    Row("api.admin.users", {"GET": admin_api(200), "POST": admin_api(422)}),
    Row("api.admin.user.balance", {"POST": admin_api(422)}, {"id": "@user:buyer_b"}),
    Row("api.admin.user", {"GET": admin_api(200), "PATCH": admin_api(200)}, {"id": "@user:buyer_b"},
        note="an empty change changes nothing"),
    Row("api.admin.plugins", {"GET": admin_api(200)}),
    Row("api.admin.plugin", {"GET": admin_api(200), "PATCH": admin_api(200)}, {"id": "sandbox"}),
    Row("api.admin.media", {"POST": admin_api(400)}, note="no file sent"),
    Row("api.admin.jobs", {"GET": admin_api(200)}),
    Row("api.admin.user.dock_keys", {"GET": admin_api(200), "POST": admin_api(201)}, {"id": "@user:agent"}),
    Row("api.admin.dock_key.revoke", {"POST": admin_api(200)}, {"key_id": "@victim_dock_key_id"}),
    # the docking API authenticates each request by its signature alone
    Row("dock.goods", {"GET": public(401)}),
    Row("dock.goods.one", {"GET": public(401)}, {"id": "@product_id"}),
    Row("dock.balance", {"GET": public(401)}),
    Row("dock.orders", {"POST": public(401)}),
    Row("dock.order", {"GET": public(401)}, {"out_order_no": "ANY-1"}),
]

#: the bundled operations plugins' routes (``build_world`` enables each one installed)
PLUGIN_ROWS = {
    "antifraud": [
        Row("antifraud.captcha.new", {"POST": public(200)},
            note="a new challenge for anyone; with the session cookie the view checks the CSRF token itself"),
        Row("antifraud.captcha.image", {"GET": public(200)}, {"id": "@captcha_id"}),
        Row("antifraud.log", {"GET": admin_page(200)}),
        Row("antifraud.test", {"GET": admin_page(200)}),
        Row("antifraud.limits", {"GET": admin_page(200), "POST": admin_page(422)}, note="no product chosen"),
        Row("antifraud.limit.delete", {"POST": admin_page(302)}, {"id": "@product_limit_id"}),
    ],
    "coupons": [
        Row("coupons.list", {"GET": admin_page(200)}),
        Row("coupons.new", {"GET": admin_page(200), "POST": admin_page(422)}, note="no code given"),
        Row("coupons.batch", {"GET": admin_page(200), "POST": admin_page(422)}, note="no count given"),
        Row("coupons.export", {"GET": admin_page(200)}),
        Row("coupons.edit", {"GET": admin_page(200), "POST": admin_page(422)}, {"id": "@coupon_id"}),
        Row("coupons.toggle", {"POST": admin_page(302)}, {"id": "@coupon_id"}),
        Row("coupons.promotions", {"GET": admin_page(200)}),
        Row("coupons.promotion.new", {"GET": admin_page(200), "POST": admin_page(422)}, note="no name given"),
        Row("coupons.promotion", {"GET": admin_page(200), "POST": admin_page(422)}, {"id": "@promotion_id"}),
        Row("coupons.sales", {"GET": admin_page(200)}),
        Row("coupons.sale.new", {"GET": admin_page(200), "POST": admin_page(422)}, note="no SKU given"),
        Row("coupons.sale", {"GET": admin_page(200), "POST": admin_page(422)}, {"id": "@sale_id"}),
        Row("coupons.api", {"GET": admin_api(200), "POST": admin_api(422)}),
        Row("coupons.api.one", {"GET": admin_api(200), "PATCH": admin_api(200)}, {"id": "@coupon_id"},
            note="an empty change changes nothing"),
    ],
    "distribution": [
        Row("distribution.home", {"GET": member(200)}, note="the account's own referral page"),
        Row("distribution.withdraw", {"POST": member(422)}, note="no amount given"),
        Row("distribution.landing", {"GET": public(302)}, {"code": "@referral_code"},
            note="a referral link: everyone is sent to the home page"),
        Row("distribution.admin", {"GET": admin_page(200)}),
        Row("distribution.admin.commissions", {"GET": admin_page(200)}),
        Row("distribution.admin.withdrawals", {"GET": admin_page(200)}),
        Row("distribution.admin.withdrawal", {"POST": admin_page(303)}, {"no": "@withdrawal_no", "action": "reject"},
            note="no reason given: a message"),
        Row("distribution.admin.rates", {"GET": admin_page(200), "POST": admin_page(422)}, note="no product chosen"),
        Row("distribution.admin.referrers", {"GET": admin_page(200), "POST": admin_page(404)},
            note="no account named"),
        Row("distribution.admin.user", {"GET": admin_page(200)}, {"id": "@user:buyer_b"}),
    ],
    "notify_email": [
        Row("notify_email.log", {"GET": admin_page(200)}),
        Row("notify_email.resend", {"POST": admin_page(302)}, {"id": "@email_message_id"}),
        Row("notify_email.test", {"POST": admin_page(302)}, note="no address given: a message"),
        Row("notify_email.templates", {"GET": admin_page(200)}),
        Row("notify_email.switch", {"POST": admin_page(404)}, note="no event named"),
        Row("notify_email.template", {"GET": admin_page(200), "POST": admin_page(400)},
            {"event": "order.delivered", "language": "en"}, note="an empty template is refused"),
    ],
    "notify_telegram": [
        Row("notify_telegram.admin", {"GET": admin_page(200)}),
        Row("notify_telegram.test", {"POST": admin_page(302)}, note="the Bot API (a closed port) is not reached"),
    ],
    "webhooks": [
        Row("webhooks.endpoints", {"GET": admin_page(200), "POST": admin_page(422)}, note="no URL given"),
        Row("webhooks.endpoint", {"GET": admin_page(200), "POST": admin_page(422)}, {"id": "@webhook_endpoint_id"}),
        Row("webhooks.endpoint.action", {"POST": admin_page(200)}, {"id": "@webhook_endpoint_id", "action": "reveal"},
            note="the signing secret, to the admin alone"),
        Row("webhooks.deliveries", {"GET": admin_page(200)}),
        Row("webhooks.delivery", {"GET": admin_page(200)}, {"delivery_id": "@webhook_delivery_id"}),
        Row("webhooks.delivery.resend", {"POST": admin_page(302)}, {"delivery_id": "@webhook_delivery_id"}),
    ],
}
INSTALLED_PLUGINS = {ep.name for ep in entry_points(group="kameng")}
ROWS += [row for plugin, rows in PLUGIN_ROWS.items() if plugin in INSTALLED_PLUGINS for row in rows]

BY_ROUTE = {row.route: row for row in ROWS}


def resolve(world, row: Row, bearer: bool = False) -> dict:
    """The row's path parameters with the world's values."""
    out = {}
    for name, value in row.params.items():
        if isinstance(value, str) and value.startswith("@user:"):
            value = str(world.user_ids[value[len("@user:"):]])
        elif isinstance(value, str) and value.startswith("@"):
            # a thing the first request deletes has a twin for the bearer token's
            value = str(world.values.get(value[1:] + "_bearer", world[value[1:]]) if bearer else world[value[1:]])
        out[name] = value
    return out
