"""Shared set-up for the anti-fraud tests."""
from __future__ import annotations

import secrets

from sqlalchemy import select

from kameng.catalog import service as catalog
from kameng.catalog.models import Sku
from kameng.inventory import service as inventory
from kameng.testing import app_request, set_plugin

SANDBOX_SECRET = "sandbox-secret-for-antifraud-0123"
#: the core's own per-address limits (kameng.ratelimit) off: the plugin's are tested
CORE_LIMITS_OFF = {"kameng.limits.orders_per_ip_per_minute": "0", "kameng.limits.lookups_per_ip_per_minute": "0",
                   "kameng.limits.logins_per_ip_per_minute": "0"}
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 11
#: every limit of the plugin off: a test turns on the one it checks
ALL_OFF = {"orders_per_ip_per_minute": 0, "orders_per_contact_per_hour": 0, "orders_per_account_per_hour": 0,
           "max_unpaid_per_contact": 0, "max_unpaid_per_ip": 0, "lookups_per_ip_per_minute": 0,
           "logins_per_ip_per_minute": 0, "registrations_per_ip_per_hour": 0, "password_resets_per_ip_per_hour": 0,
           "coupon_attempts_per_ip_per_minute": 0}


def make_sku(registry, code="AF1", price="5.00", keys=30, max_quantity=10, name="Anti-fraud card"):
    """A visible card-key product with one option and ``keys`` keys: ``(product_id, sku_id)``."""
    with app_request(registry) as req:
        product = catalog.save_product(req.db, {"name": name, "type": "card_key", "skus": [
            {"code": code, "name": f"{code} option", "price": price, "max_quantity": max_quantity}]}, "CNY")
        product_id = product.id
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == code))
    if keys:
        factory = registry["kameng.session_factory"]
        inventory.import_keys(lambda: factory(bind=registry["kameng.write_engine"]), registry["kameng.keyring"],
                              sku_id, [f"{code}-KEY-{i:04d}" for i in range(keys)])
    return product_id, sku_id


def setup_shop(registry, **settings):
    """The sandbox enabled, the plugin enabled with every limit off but
    ``settings``, and a SKU ``AF1``: its product id."""
    set_plugin(registry, "sandbox", enabled=True, secret=SANDBOX_SECRET)
    set_plugin(registry, "antifraud", enabled=True, **{**ALL_OFF, **settings})
    product_id, _sku = make_sku(registry)
    return product_id


def order_body(contact="buyer@example.com", sku="AF1", quantity=1, **extra):
    return {"sku": sku, "quantity": quantity, "contact": contact, "query_password": "pass1234",
            "payment_method": "sandbox", **extra}


def place(testapp, ip="198.51.100.10", status=None, headers=None, **body):
    """POST /api/v1/orders from ``ip``; the response."""
    return testapp.post_json("/api/v1/orders", order_body(**body), headers=headers or {},
                             extra_environ={"REMOTE_ADDR": ip}, status=status or "*")


def error(resp) -> dict:
    return resp.json["error"]


class RedisNamespace:
    """Keys under a random prefix on a dedicated Redis database."""

    def __init__(self, client, prefix):
        self.client, self.prefix = client, prefix
        self.url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"

    @classmethod
    def connect(cls):
        import redis

        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=2,
                             socket_connect_timeout=2, decode_responses=True)
        try:
            client.ping()
        except (redis.exceptions.RedisError, OSError):
            client.close()
            return None
        return cls(client, f"kameng-test:{secrets.token_hex(6)}:")

    def settings(self) -> dict:
        return {"redis_url": self.url, "redis_prefix": self.prefix}

    def keys(self, pattern="*") -> list[str]:
        return sorted(self.client.scan_iter(match=self.prefix + pattern, count=500))

    def cleanup(self) -> None:
        keys = self.keys()
        if keys:
            self.client.delete(*keys)
        self.client.close()


def fresh_window(seconds: int = 60, margin: float = 8.0) -> None:
    """Wait for the next fixed window when the current one ends within
    ``margin`` seconds, so that a test's requests all fall into one window."""
    import time

    left = seconds - time.time() % seconds
    if left < margin:
        time.sleep(left + 0.05)


def retry_after(resp) -> int:
    value = int(resp.headers["Retry-After"])
    assert 1 <= value <= 3600, value
    return value


def csrf_of(page_text: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


def sign_up(registry, testapp, email="member@example.com", password="member-password-1", phone=None):
    """An account, signed in on ``testapp``; the CSRF token for its API calls."""
    from kameng import accounts
    from kameng.testing import login

    with app_request(registry) as req:
        accounts.create_user(req.db, email, password, **({"phone": phone} if phone else {}))
    resp = login(testapp, email, password)
    assert resp.status_int == 302, resp.text
    return csrf_of(testapp.get("/account").text)


def risk_check(registry, action, **subject):
    """``kameng.risk.check`` as the core calls it; the APIError it raises, or None."""
    from kameng import risk
    from kameng.errors import APIError

    try:
        with app_request(registry) as req:
            risk.check(req, action, **subject)
    except APIError as exc:
        return exc
    return None


def rows(registry, model, *where):
    with app_request(registry) as req:
        return req.db.scalars(select(model).where(*where)).all()


def answer_for(registry, cid: str, ns=None) -> str:
    """The answer of a stored challenge, read as the server stores it (the
    test cannot read the picture)."""
    if ns is not None:
        return ns.client.get(f"{ns.prefix}captcha:{cid}")
    from kameng_antifraud import backends

    return backends.local_store(registry["kameng.write_engine"]).peek(cid)


def new_captcha(testapp, ip="198.51.100.10") -> dict:
    resp = testapp.post("/-/antifraud/captcha", extra_environ={"REMOTE_ADDR": ip}, status=200)
    assert resp.headers["Cache-Control"].startswith("no-store")
    return resp.json


def captcha_headers(cid: str, answer: str) -> dict:
    return {"X-Captcha-Id": cid, "X-Captcha-Answer": answer}
