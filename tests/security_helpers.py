"""Shared set-up for the security tests (authorisation matrix, CSRF,
headers, injection, secrets in logs): a small shop with one client per
role, the app's real route list, a fingerprint of the whole database and
log capture.

The roles: ``anonymous``, ``buyer_a`` (owns the orders of the world),
``buyer_b`` (another buyer), ``agent`` and ``admin``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import webtest
from pyramid.interfaces import IRoutesMapper
from sqlalchemy import MetaData, select, text

from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, free_port, login, run_jobs, set_plugin

ROLES = ("anonymous", "buyer_a", "buyer_b", "agent", "admin")
#: the status a role is shown the sign-in page with (an HTML page's redirect)
LOGIN = "login"
PASSWORDS = {"buyer_a": "buyer-a-password-1", "buyer_b": "buyer-b-password-2", "agent": "agent-password-3",
             "admin": ADMIN_PASSWORD}
EMAILS = {"buyer_a": "buyer.a@example.com", "buyer_b": "buyer.b@example.com", "agent": "agent@example.com",
          "admin": ADMIN_EMAIL}
SANDBOX_SECRET = "sandbox-secret-for-security-tests-0123"
SUPPLIER_SECRET = "supplier-secret-for-security-tests-0123"
QUERY_PASSWORD = "guest-query-pw-77"
SKU = "SEC1"
KEYS = [f"SEC1-SECRET-KEY-{i:04d}-PLAINTEXT" for i in range(8)]
CSRF_MESSAGE = "did not come from this site"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
#: the bundled operations plugins: the world enables those the app loaded
OPERATIONS_PLUGINS = ("antifraud", "coupons", "distribution", "notify_email", "notify_telegram", "webhooks")
TELEGRAM_TOKEN = "123456789:security-tests-fake-bot-token-0123"
#: every limit of the anti-fraud plugin off: the matrix sends many requests from one address
ANTIFRAUD_OFF = {"orders_per_ip_per_minute": 0, "orders_per_contact_per_hour": 0, "orders_per_account_per_hour": 0,
                 "max_unpaid_per_contact": 0, "max_unpaid_per_ip": 0, "lookups_per_ip_per_minute": 0,
                 "logins_per_ip_per_minute": 0, "registrations_per_ip_per_hour": 0,
                 "password_resets_per_ip_per_hour": 0, "coupon_attempts_per_ip_per_minute": 0}


# -- clients ---------------------------------------------------------------------------------


class Client:
    """One browser (session cookie and its CSRF token) and, for the API, the
    role's bearer token."""

    def __init__(self, app, role: str, address: str):
        self.app, self.role = app, role
        self.web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": address})
        self.token: str | None = None  # the API bearer token
        self.csrf = ""

    def sign_in(self) -> None:
        self.web.reset()
        if self.role != "anonymous":
            resp = login(self.web, EMAILS[self.role], PASSWORDS[self.role])
            assert resp.status_int == 302, (self.role, resp.status, resp.text[:300])
        self.refresh_csrf()

    def refresh_csrf(self) -> None:
        """The session's CSRF token, read from a form like a browser would."""
        page = self.web.get("/login")
        self.csrf = page.html.find("input", {"name": "csrf_token"})["value"]

    def send(self, method: str, path: str, *, form: dict | None = None, json_body=None, bearer: bool = False,
             csrf: bool = True, headers: dict | None = None, environ: dict | None = None, cookies: bool = True):
        """A request as this role would send it: an HTML form post carries
        ``csrf_token``; an API call sends JSON with the ``X-CSRF-Token``
        header (on the session) or the bearer token (``bearer=True``, no
        cookie at all)."""
        h = dict(headers or {})
        kw: dict = {"method": method, "expect_errors": True, "headers": h}
        if environ:
            kw["environ"] = {**self.web.extra_environ, **environ}
        if json_body is not None:
            kw["body"] = json.dumps(json_body).encode()
            kw["content_type"] = "application/json"
            if csrf and not bearer and method in UNSAFE:
                h["X-CSRF-Token"] = self.csrf
        elif method in UNSAFE:
            data = dict(form or {})
            if csrf:
                data.setdefault("csrf_token", self.csrf)
            kw["body"] = urlencode(data, doseq=True).encode()
            kw["content_type"] = "application/x-www-form-urlencoded"
        if bearer:
            if self.token:
                h["Authorization"] = f"Bearer {self.token}"
            return webtest.TestApp(self.app, extra_environ=dict(self.web.extra_environ)).request(path, **kw)
        if not cookies:
            return webtest.TestApp(self.app, extra_environ=dict(self.web.extra_environ)).request(path, **kw)
        return self.web.request(path, **kw)


def outcome(resp):
    """A response as the matrix writes it: the status, or ``LOGIN`` for a
    redirect to the sign-in page."""
    if resp.status_int in (302, 303) and urlsplit(resp.location or "").path == "/login":
        return LOGIN
    return resp.status_int


# -- the world -------------------------------------------------------------------------------


@dataclass
class World:
    app: object
    registry: object
    clients: dict[str, Client]
    user_ids: dict[str, int] = field(default_factory=dict)
    values: dict[str, object] = field(default_factory=dict)

    def __getitem__(self, name):
        return self.values[name]


def _api_order(client: Client, **extra) -> dict:
    body = {"sku": SKU, "quantity": 1, "contact": EMAILS.get(client.role, "guest@example.com"),
            "query_password": QUERY_PASSWORD, "payment_method": "sandbox", **extra}
    resp = client.send("POST", "/api/v1/orders", json_body=body, bearer=True)
    assert resp.status_int == 201, resp.text
    return resp.json


def sandbox_notify(app_or_web, attempt_no: str, amount: str, status: str = "paid"):
    from kameng_sandbox.gateway import signed_fields

    web = app_or_web if isinstance(app_or_web, webtest.TestApp) else webtest.TestApp(app_or_web)
    return web.post("/pay/sandbox/notify", signed_fields(attempt_no, amount, status, SANDBOX_SECRET),
                    extra_environ={"REMOTE_ADDR": "127.0.0.9"}, expect_errors=True)


def make_catalog(registry) -> dict:
    """A category with a card-key product (keys ``KEYS``), and things an
    admin may delete in the matrix without breaking the rest."""
    from kameng.catalog import service as catalog
    from kameng.catalog.models import Category, Product, Sku
    from kameng.inventory import service as inventory

    out = {}
    with app_request(registry) as req:
        cat = catalog.save_category(req.db, {"name": "Game cards"})
        out["category_id"] = cat.id
        out["victim_category_id"] = catalog.save_category(req.db, {"name": "Empty category"}).id
        product = catalog.save_product(req.db, {"name": "Steam card", "type": "card_key", "category_id": str(cat.id),
                                                "skus": [{"code": SKU, "name": "50 CNY", "price": "10.00",
                                                          "max_quantity": 10}]}, "CNY")
        out["product_id"] = product.id
        for name in ("victim_product_id", "api_victim_product_id", "api_victim_product_id_bearer"):
            out[name] = catalog.save_product(req.db, {"name": "Old product", "type": "manual", "skus": [
                {"code": f"OLD{len(out)}", "name": "old", "price": "1.00"}]}, "CNY").id
        out["sku_id"] = req.db.scalar(select(Sku.id).where(Sku.code == SKU))
        assert req.db.get(Category, cat.id) and req.db.get(Product, product.id)
    factory = registry["kameng.session_factory"]
    inventory.import_keys(lambda: factory(bind=registry["kameng.write_engine"]), registry["kameng.keyring"],
                          out["sku_id"], KEYS)
    return out


def build_world(app, address_prefix: str = "10.9.0") -> World:
    """Users of every role with a signed-in client each and an API token;
    the sandbox gateway and the sandbox supplier enabled; a catalog; buyer A's
    delivered order (its keys known), buyer A's pending order and top-up, a
    guest's pending order, a supplier connection and the agent's docking keys;
    the bundled operations plugins the app loaded enabled, with what their
    routes need (:func:`_operations_values`)."""
    from kameng import accounts
    from kameng.dock import manage
    from kameng.inventory.models import CardKey
    from kameng.suppliers import connections

    from kameng import ratelimit

    registry = app.registry
    ratelimit.reset_memory()  # SQLite keeps the limits in this process: start afresh
    set_plugin(registry, "sandbox", enabled=True, secret=SANDBOX_SECRET)
    set_plugin(registry, "sandbox_supplier", enabled=True)
    world = World(app, registry, {})
    plugins = loaded_operations_plugins(registry)
    _enable_operations_plugins(world, plugins)
    with app_request(registry) as req:
        for role in ROLES[1:]:
            user = accounts.create_user(req.db, EMAILS[role], PASSWORDS[role],
                                        role={"buyer_a": "buyer", "buyer_b": "buyer"}.get(role, role))
            world.user_ids[role] = user.id
        tokens = {role: accounts.create_token(req.db, req.db.get(accounts.User, uid), "security tests")
                  for role, uid in world.user_ids.items()}
    if "distribution" in plugins:
        _bind_referrals(world)
    for n, role in enumerate(ROLES, 1):
        client = Client(app, role, f"{address_prefix}.{n}")
        client.token = tokens.get(role)
        client.sign_in()
        world.clients[role] = client
    v = world.values
    v.update(make_catalog(registry))
    a = world.clients["buyer_a"]

    # buyer A's order, paid through the sandbox's signed notify and delivered
    placed = _api_order(a)
    v["order_no"], v["attempt_no"] = placed["order_no"], placed["payment"]["attempt_no"]
    assert sandbox_notify(app, v["attempt_no"], placed["amount"]).status_int == 200
    run_jobs(registry)
    with app_request(registry) as req:
        sold = req.db.scalars(select(CardKey.id).where(CardKey.order_ref == v["order_no"])).all()
        available = req.db.scalars(select(CardKey.id).where(CardKey.state == "available")
                                   .order_by(CardKey.id)).all()
    assert sold, "the order was not delivered"
    v["sold_key_id"], v["victim_key_id"] = sold[0], available[-1]
    v["access_token"] = placed["access_token"]
    # buyer A's pending order (a payment to resume) and top-up
    pending = _api_order(a)
    v["pending_order_no"], v["pending_attempt_no"] = pending["order_no"], pending["payment"]["attempt_no"]
    resp = a.send("POST", "/account/topup", form={"amount": "5.00", "gateway": "sandbox"})
    assert resp.status_int == 303, resp.text
    v["topup_attempt_no"] = urlsplit(resp.location).path.rsplit("/", 1)[-1]
    # a guest's order: only its query password (or its token) opens it
    guest = Client(app, "anonymous", f"{address_prefix}.99")
    guest.token = None
    body = {"sku": SKU, "quantity": 1, "contact": "guest@example.com", "query_password": QUERY_PASSWORD,
            "payment_method": "sandbox"}
    resp = guest.send("POST", "/api/v1/orders", json_body=body, bearer=True)
    assert resp.status_int == 201, resp.text
    v["guest_order_no"] = resp.json["order_no"]

    with app_request(registry) as req:
        conn = connections.save_connection(req, None, "sandbox_supplier", "Upstream one",
                                           {"secret": SUPPLIER_SECRET})
        v["connection_id"] = conn.id
        agent = req.db.get(accounts.User, world.user_ids["agent"])
        key, secret = manage.issue(req, agent, "agent key", "")
        v["dock_key_id"], v["dock_secret"] = key.key_id, secret
        v["victim_dock_key_id"] = manage.issue(req, agent, "key to revoke", "")[0].key_id
        v["victim_dock_key_id_bearer"] = manage.issue(req, agent, "key to revoke", "")[0].key_id
    _operations_values(world, plugins)
    return world


# -- the operations plugins ------------------------------------------------------------------


def loaded_operations_plugins(registry) -> set[str]:
    """The bundled operations plugins the app loaded (installed, by entry point)."""
    host = registry["kameng.plugins"]
    return {pid for pid in OPERATIONS_PLUGINS if pid in host.plugins and not host.plugins[pid].errors}


def _enable_operations_plugins(world: World, plugins: set[str]) -> None:
    """Each loaded plugin on, before the world's orders (so their hooks see
    them), with settings that keep the tests local and fast: no limits, no
    captcha; mail, Telegram and webhooks aimed at a closed port on 127.0.0.1
    (a refused connection: nothing leaves the machine, nothing waits)."""
    from kameng import httpclient

    registry, v = world.registry, world.values
    v["plugins"] = frozenset(plugins)
    closed = v["closed_port"] = free_port()
    if plugins & {"notify_telegram", "webhooks"}:
        # the flag is process-wide and set by the app built last (or left off by
        # an earlier test's monkeypatch): take this app's own setting again
        httpclient.configure(registry.settings)
        assert httpclient.ALLOW_PRIVATE, "kameng.http.allow_private_targets must be on (kameng.testing sets it)"
    if "antifraud" in plugins:
        set_plugin(registry, "antifraud", enabled=True, captcha="", blacklist="", watchlist="", **ANTIFRAUD_OFF)
    if "coupons" in plugins:
        set_plugin(registry, "coupons", enabled=True)
    if "distribution" in plugins:
        set_plugin(registry, "distribution", enabled=True, levels="2", rate_1="10", rate_2="5",
                   min_withdrawal="1.00")
    if "notify_email" in plugins:
        set_plugin(registry, "notify_email", enabled=True, host="127.0.0.1", port=closed, security="none",
                   sender="shop@example.com")
    if "notify_telegram" in plugins:
        set_plugin(registry, "notify_telegram", enabled=True, bot_token=TELEGRAM_TOKEN, chat_id="-1001234567890",
                   api_base=f"http://127.0.0.1:{closed}")
    if "webhooks" in plugins:
        from kameng_webhooks import service as webhooks

        set_plugin(registry, "webhooks", enabled=True)
        with app_request(registry, actor=ADMIN_EMAIL) as req:
            endpoint, v["webhook_secret"] = webhooks.create_endpoint(req, f"http://127.0.0.1:{closed}/hook", "security tests",
                                                         webhooks.parse_events(["*"]))
            v["webhook_endpoint_id"] = endpoint.id


def _bind_referrals(world: World) -> None:
    """Buyer A was referred by buyer B, buyer B by the agent: buyer A's
    delivered order earns them commissions (levels 1 and 2)."""
    from kameng_distribution import members

    with app_request(world.registry) as req:
        ids = world.user_ids
        assert members.bind(req.db, ids["buyer_b"], members.ensure(req.db, ids["agent"]), "admin")
        assert members.bind(req.db, ids["buyer_a"], members.ensure(req.db, ids["buyer_b"]), "admin")


def _operations_values(world: World, plugins: set[str]) -> None:
    """What the plugins' rows need: a product of their own (its SKU
    ``SEC2``), a coupon, a promotion and a sale on it, a purchase limit, a
    captcha, a webhook delivery, an email of buyer A's order, buyer B's
    referral code and withdrawal."""
    import datetime as dt

    from kameng import accounts
    from kameng.catalog import service as catalog
    from kameng.db import utcnow

    registry, v = world.registry, world.values
    if plugins & {"coupons", "antifraud"}:
        with app_request(registry) as req:
            v["plugin_product_id"] = catalog.save_product(req.db, {"name": "Plugin goods", "type": "manual", "skus": [
                {"code": "SEC2", "name": "plugin option", "price": "10.00"}]}, "CNY").id
    if "coupons" in plugins:
        from kameng_coupons import service as coupons
        from kameng_coupons.models import Promotion, Sale

        now, scope = utcnow(), {"products": [v["plugin_product_id"]]}
        with app_request(registry) as req:
            db = req.db
            v["coupon_id"] = coupons.create_coupon(db, coupons.coupon_values(
                db, {"code": "SEC-SAVE1", "kind": "fixed", "value": "1.00", **scope}, "CNY")).id
            promotion = Promotion(**coupons.promotion_values(db, {"name": "Spend more", **scope, "tiers": [
                {"threshold": "20.00", "kind": "amount", "value": "2.00"}]}, "CNY"))
            sale = Sale(**coupons.sale_values(db, {
                "sku": "SEC2", "price": "8.00", "cap": 5, "starts_at": (now - dt.timedelta(hours=1)).isoformat(),
                "ends_at": (now + dt.timedelta(days=1)).isoformat()}, "CNY"), sold=0)
            db.add_all([promotion, sale])
            db.flush()
            v["promotion_id"], v["sale_id"] = promotion.id, sale.id
    if "antifraud" in plugins:
        from kameng_antifraud import captcha, config
        from kameng_antifraud.models import ProductLimit

        with app_request(registry) as req:
            limit = ProductLimit(product_id=v["plugin_product_id"], max_quantity=2, window_days=0)
            req.db.add(limit)
            req.db.flush()
            v["product_limit_id"] = limit.id
            v["captcha_id"] = captcha.new_challenge(req, config.read(req))
        assert v["captcha_id"]
    if "webhooks" in plugins:
        from kameng_webhooks import service as webhooks
        from kameng_webhooks.models import Endpoint

        with app_request(registry, actor=ADMIN_EMAIL) as req:
            endpoint = req.db.get(Endpoint, v["webhook_endpoint_id"])
            v["webhook_delivery_id"] = webhooks.send_test(req, endpoint).delivery_id
    if "notify_email" in plugins:
        from kameng_notify_email.models import Message

        with app_request(registry) as req:
            v["email_message_id"] = req.db.scalar(select(Message.id).where(Message.order_no == v["order_no"])
                                                  .order_by(Message.id))
        assert v["email_message_id"], "no email was queued for buyer A's order"
    if "distribution" in plugins:
        from kameng_distribution import ledger, members
        from kameng_distribution import service as distribution

        with app_request(registry) as req:
            buyer_b = req.db.get(accounts.User, world.user_ids["buyer_b"])
            v["referral_code"] = members.ensure(req.db, buyer_b.id).code
            earned = ledger.balance(req.db, buyer_b.id)
            assert earned == 100, f"buyer B earned {earned} on buyer A's order (10 % of 10.00)"
            v["withdrawal_no"] = distribution.request_withdrawal(req, buyer_b, earned, "buyer B's bank").withdrawal_no


# -- the app's routes --------------------------------------------------------------------------


@dataclass
class RouteInfo:
    name: str
    pattern: str
    #: the methods some view of the route answers (GET and POST stand for "any")
    methods: tuple[str, ...]
    #: the views' ``require_csrf`` (None: the default, True)
    csrf_exempt: bool

    @property
    def api(self) -> bool:
        return self.pattern.startswith("/api/")


def routes(registry) -> dict[str, RouteInfo]:
    """Every route of the app with the methods its views answer, from
    Pyramid's introspector: a route added later shows up here by itself."""
    out = {}
    for entry in registry.introspector.get_category("routes"):
        route = entry["introspectable"]
        route_methods = route["request_methods"]
        if isinstance(route_methods, str):
            route_methods = (route_methods,)
        methods, exempt = set(), False
        for view in entry["related"]:
            if view.category_name != "views" or view.get("exception_only"):
                continue
            vm = view["request_methods"]
            vm = ("GET", "POST") if vm is None else ((vm,) if isinstance(vm, str) else tuple(vm))
            methods.update(m for m in vm if m != "HEAD")
            exempt = exempt or view["require_csrf"] is False
        if route_methods:
            methods &= set(route_methods)
        order = {m: i for i, m in enumerate(("GET", "POST", "PUT", "PATCH", "DELETE"))}
        out[route["name"]] = RouteInfo(route["name"], route["pattern"] if route["pattern"].startswith("/")
                                       else "/" + route["pattern"], tuple(sorted(methods, key=order.get)), exempt)
    return out


def route_path(registry, route_name: str, **params) -> str:
    return registry.getUtility(IRoutesMapper).get_route(route_name).generate(params)


# -- the database ----------------------------------------------------------------------------


_reflected: dict[int, MetaData] = {}


def db_fingerprint(registry, skip=("rate_counters", "alembic_version")) -> dict[str, str]:
    """A digest of every table's rows: equal before and after means nothing was written."""
    engine = registry["kameng.engine"]
    meta = _reflected.get(id(engine))
    if meta is None:
        meta = _reflected[id(engine)] = MetaData()
        meta.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for table in sorted(meta.tables.values(), key=lambda t: t.name):
            if table.name in skip:
                continue
            rows = conn.execute(select(table)).all()
            digest = hashlib.sha256(repr(sorted(repr(tuple(r)) for r in rows)).encode()).hexdigest()
            out[table.name] = f"{len(rows)}:{digest[:16]}"
    return out


def changed_tables(before: dict, after: dict) -> list[str]:
    return sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))


def count_rows(registry, table: str) -> int:
    with registry["kameng.engine"].connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()


# -- logs ------------------------------------------------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self, formatter=None):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # a record that cannot be formatted is a finding too
            self.lines.append(f"UNFORMATTABLE {record.name} {record.msg!r}: {exc!r}")


@contextlib.contextmanager
def captured_logs():
    """Everything logged meanwhile, by every logger at DEBUG: as the plain
    formatter writes it (message, arguments, ``extra`` fields and
    tracebacks) and as kameng's JSON formatter writes it. Yields a list that
    holds both renderings once the block ends."""
    from kameng.logs import JsonFormatter

    plain = _ListHandler(_EverythingFormatter())
    structured = _ListHandler(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(plain)
    root.addHandler(structured)
    root.setLevel(logging.DEBUG)
    # loggers that were given a level of their own (or silenced) still report here
    saved = {}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            saved[name] = (logger.level, logger.disabled, logger.propagate)
            logger.setLevel(logging.NOTSET)
            logger.disabled = False
    out: list[str] = []
    try:
        yield out
    finally:
        root.removeHandler(plain)
        root.removeHandler(structured)
        root.setLevel(old_level)
        for name, (level, disabled, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.disabled = disabled
            logger.propagate = propagate
        out.extend(plain.lines)
        out.extend(structured.lines)


class _EverythingFormatter(logging.Formatter):
    """The message, every ``extra`` field verbatim and the full traceback:
    what a careless handler configuration would write."""

    def format(self, record):
        standard = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
        extra = {k: v for k, v in record.__dict__.items() if k not in standard}
        line = f"{record.levelname} {record.name} {record.getMessage()} {extra!r}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def leaks(texts, secrets: dict[str, str]) -> list[str]:
    """``"<secret name> in <where>"`` for every secret found in the texts
    (``{where: text}`` or a list of lines)."""
    if not isinstance(texts, dict):
        texts = {"logs": "\n".join(texts)}
    found = []
    for where, body in texts.items():
        for name, secret in secrets.items():
            if secret and secret in body:
                found.append(f"{name} in {where}")
    return found


def inline_code(resp) -> list[str]:
    """Inline scripts, styles, event handlers and ``javascript:`` URLs in an
    HTML page: the CSP blocks them, so a page that has them is broken (or
    someone is about to allow them) — or a payload got through unescaped."""
    soup, out = resp.html, []
    for tag in soup.find_all("script"):
        if not tag.get("src") and (tag.string or "").strip():
            out.append(f"an inline <script>: {str(tag)[:80]}")
    if soup.find_all("style"):
        out.append("a <style> element")
    for tag in soup.find_all(True):
        for attr in tag.attrs:
            if attr.lower().startswith("on") or attr.lower() == "style":
                out.append(f"an inline {attr}= on <{tag.name}>")
        for attr in ("href", "src", "action", "formaction"):
            if str(tag.get(attr, "")).strip().lower().startswith("javascript:"):
                out.append(f"a javascript: URL in <{tag.name} {attr}>")
    return out


def shows(resp, value: str) -> bool:
    """Whether an HTML page shows ``value`` as text (in a text node or an
    attribute's value), once the page is parsed."""
    soup = resp.html
    if value in soup.get_text():
        return True
    return any(value in (v if isinstance(v, str) else " ".join(v))
               for tag in soup.find_all(True) for v in tag.attrs.values())


def text_of(resp) -> str:
    return resp.body.decode("utf-8", "replace") if resp.body else ""

