"""Shared set-up for the property and fuzz tests: a small shop with every
kind of goods, accounts with tokens, and orders in several states.

Hypothesis runs here are bounded and deterministic (``derandomize``, no
example database, no deadline): CI gets the same examples every time."""
from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings

from kameng.config import DEFAULTS
from kameng.testing import app_request

#: every rate limit of the core off: these tests send many requests from one address
NO_LIMITS = {name: "0" for name in DEFAULTS if name.startswith("kameng.limits.")}

#: the settings every property test here builds on
BOUNDED = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                          HealthCheck.filter_too_much, HealthCheck.data_too_large])


#: for tests whose every example is many requests: a failure is reported as found
#: (derandomized, so it is found again the same way) instead of shrunk for minutes
NO_SHRINK = (Phase.explicit, Phase.generate)


def bounded(**overrides) -> settings:
    """:data:`BOUNDED` with ``max_examples`` (and the like) for one test."""
    return settings(BOUNDED, **overrides)


@dataclass
class Shop:
    """What :func:`build_shop` made: ids, codes and credentials to aim at."""

    admin_token: str = ""
    buyer_token: str = ""
    buyer_id: int = 0
    agent_id: int = 0
    dock: tuple = ()  # (user_id, key_id, secret)
    product_ids: list = field(default_factory=list)
    sku_codes: list = field(default_factory=list)
    order_nos: list = field(default_factory=list)
    order_tokens: dict = field(default_factory=dict)


def build_shop(registry, make_orders: bool = True) -> Shop:
    """A category, a card-key product (keys in stock), a manual product with a
    counted stock and a direct-recharge product; an admin, a buyer and an agent
    (with a balance, an API token and a docking key); the sandbox gateway on;
    a pending, a delivered and a cancelled order."""
    from sqlalchemy import select

    from kameng import accounts, wallet
    from kameng.catalog import service as catalog
    from kameng.catalog.models import Product
    from kameng.dock.models import create_key
    from kameng.testing import set_plugin
    from orders_helpers import SECRET, add_keys

    shop = Shop()
    set_plugin(registry, "sandbox", enabled=True, secret=SECRET)
    with app_request(registry) as req:
        admin = accounts.create_user(req.db, "fuzz-admin@example.com", "admin-password-123", role="admin")
        shop.admin_token = accounts.create_token(req.db, admin, "fuzz")
        buyer = accounts.create_user(req.db, "fuzz-buyer@example.com", "buyer-password-123")
        shop.buyer_token = accounts.create_token(req.db, buyer, "fuzz")
        shop.buyer_id = buyer.id
        wallet.post(req.db, buyer.id, 100_000, "CNY", "admin", note="fuzz credit")
        agent = accounts.create_user(req.db, "fuzz-agent@example.com", "agent-password-123", role="agent")
        shop.agent_id = agent.id
        wallet.post(req.db, agent.id, 100_000, "CNY", "admin", note="fuzz credit")
        key, secret = create_key(req.db, registry["kameng.keyring"], agent.id, name="fuzz")
        shop.dock = (agent.id, key.key_id, secret)
        cat = catalog.save_category(req.db, {"name": "Fuzz"})
        catalog.save_product(req.db, {"name": "Fuzz card", "type": "card_key", "category_id": cat.id, "skus": [
            {"code": "FZ-CARD", "name": "card", "price": "10.00", "max_quantity": 5,
             "tier_prices": {"gold": "9.00"}, "level_prices": {"vip": "9.50"}}]}, "CNY")
        catalog.save_product(req.db, {"name": "Fuzz manual", "type": "manual", "skus": [
            {"code": "FZ-MANUAL", "name": "manual", "price": "3.50", "stock": 50}]}, "CNY")
        catalog.save_product(req.db, {"name": "Fuzz top-up", "type": "direct_recharge",
                                      "recharge_fields": [{"name": "account", "label": "QQ", "kind": "qq"}],
                                      "skus": [{"code": "FZ-TOPUP", "name": "topup", "price": "1.00"}]}, "CNY")
        shop.product_ids = list(req.db.scalars(select(Product.id).order_by(Product.id)))
        shop.sku_codes = ["FZ-CARD", "FZ-MANUAL", "FZ-TOPUP"]
        from kameng.catalog.models import Sku

        card_sku = req.db.scalar(select(Sku.id).where(Sku.code == "FZ-CARD"))
    add_keys(registry, card_sku, [f"FZ-KEY-{i:04d}" for i in range(40)])
    if make_orders:
        _orders(registry, shop)
    return shop


def _orders(registry, shop: Shop) -> None:
    """A delivered card order, a pending one and a cancelled one."""
    from kameng.orders import service
    from kameng.orders.checkout import OrderRequest, access_token, create_order
    from kameng.orders.states import PENDING
    from kameng.testing import run_jobs

    with app_request(registry, actor="buyer") as req:
        made = []
        for sku in ("FZ-CARD", "FZ-CARD", "FZ-MANUAL"):
            order, _ = create_order(req, OrderRequest(sku=sku, quantity=1, contact="fuzz@example.com",
                                                      query_password="pass1234", payment_method="sandbox"))
            service.open_attempt(req, order, "sandbox")
            made.append(order)
        paid, pending, cancelled = made
        attempt = service.attempts_of(req.db, paid)[0]
        attempt.status, attempt.provider_trade_no = "paid", "SBX" + attempt.attempt_no
        service.mark_paid(req, paid, attempt, actor="fuzz")
        service.cancel(req, cancelled, actor="fuzz", reason="fuzz")
        assert pending.status == PENDING
        shop.order_nos = [o.order_no for o in made]
        shop.order_tokens = {o.order_no: access_token(req, o.order_no) for o in made}
    run_jobs(registry)
