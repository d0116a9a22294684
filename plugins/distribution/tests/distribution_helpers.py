"""Helpers of the distribution plugin's tests: accounts registered through
the core's register hook, orders bought and paid, and the ledger checks."""
from __future__ import annotations

import contextlib

from sqlalchemy import func, select

from kameng import accounts, wallet
from kameng.catalog import service as catalog
from kameng.catalog.models import Sku
from kameng.inventory import service as inventory
from kameng.orders import service
from kameng.orders.models import Order
from kameng.testing import app_request, set_plugin

SANDBOX_SECRET = "sandbox-secret-for-distribution-tests"
PASSWORD = "buyer-password-123"
ADMIN = "admin@example.com"
SETTINGS = {"levels": "3", "rate_1": "10", "rate_2": "5", "rate_3": "2.5", "min_withdrawal": "10.00",
            "withdrawal_fee": "1"}


def enable(registry, **settings):
    set_plugin(registry, "sandbox", enabled=True, secret=SANDBOX_SECRET)
    set_plugin(registry, "distribution", enabled=True, **{**SETTINGS, **settings})


def make_sku(registry, code, price="100.00", keys=10, type_="card_key", stock=None, name=None):
    """A visible product with one option; gives ``(product_id, sku_id)``."""
    with app_request(registry) as req:
        data = {"name": name or f"Product {code}", "type": type_,
                "skus": [{"code": code, "name": f"{code} option", "price": price, "max_quantity": 10,
                          **({"stock": stock} if stock is not None else {})}]}
        product = catalog.save_product(req.db, data, "CNY")
        product_id = product.id
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == code))
    if type_ == "card_key" and keys:
        factory = registry["kameng.session_factory"]
        inventory.import_keys(lambda: factory(bind=registry["kameng.write_engine"]), registry["kameng.keyring"],
                              sku_id, [f"{code}-KEY-{i:04d}" for i in range(keys)])
    return product_id, sku_id


@contextlib.contextmanager
def hook_request(registry, post=None, cookie=None, path="/register"):
    """A request like a registration's (a form ``post``, a ``kameng_ref``
    cookie), with its own committed transaction."""
    from pyramid.request import Request
    from pyramid.scripting import prepare

    headers = {"Cookie": f"kameng_ref={cookie}"} if cookie else {}
    req = Request.blank(path, base_url="http://localhost", headers=headers, POST=post,
                        environ={"kameng.write": True, "kameng.actor": "test"})
    env = prepare(request=req, registry=registry)
    try:
        with env["request"].tm:
            yield env["request"]
    finally:
        env["closer"]()


def register(registry, email, code=None, via="form", balance=0) -> int:
    """An account made the way the register form makes it (the core's
    ``kameng_user_registered`` hook), with the referral ``code`` typed into
    the form or held in the cookie. Gives the user id."""
    post = {"email": email, "referral_code": code or ""} if via == "form" else {"email": email}
    with hook_request(registry, post=post, cookie=code if via == "cookie" else None) as req:
        user = accounts.create_user(req.db, email, PASSWORD)
        req.hooks.kameng_user_registered(request=req, user=user)
        if balance:
            wallet.post(req.db, user.id, balance, "CNY", "admin", note="test credit")
        return user.id


def code_of(registry, user_id) -> str:
    from kameng_distribution import members

    with app_request(registry) as req:
        return members.ensure(req.db, user_id).code


def chain(registry, n=4, balance=0, prefix="u"):
    """``n`` accounts, each referred by the one before: ids, top first."""
    ids = []
    for i in range(n):
        code = code_of(registry, ids[-1]) if ids else None
        ids.append(register(registry, f"{prefix}{i}@example.com", code, balance=balance if i == n - 1 else 0))
    return ids


def token_for(registry, user_id) -> str:
    with app_request(registry) as req:
        return accounts.create_token(req.db, req.db.get(accounts.User, user_id), "tests")


def order_body(sku="CARD10", quantity=1, method="balance"):
    return {"sku": sku, "quantity": quantity, "contact": "buyer@example.com", "query_password": "pass1234",
            "payment_method": method}


def buy(web, registry, user_id, sku="CARD10", quantity=1, method="balance", pay=True) -> dict:
    """An order through the public API as the signed-in buyer; a sandbox
    order is paid through the sandbox's signed notify. Gives the API's answer."""
    from kameng.testing import run_jobs

    token = token_for(registry, user_id) if user_id is not None else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    made = web.post_json("/api/v1/orders", order_body(sku, quantity, method), headers=headers, status=201).json
    if method == "sandbox" and pay:
        notify(web, made["payment"]["attempt_no"], made["amount"])
    if pay:
        run_jobs(registry)
    return made


def notify(web, attempt_no, amount):
    from kameng_sandbox.gateway import signed_fields

    return web.post("/pay/sandbox/notify", signed_fields(attempt_no, amount, "paid", SANDBOX_SECRET), status=200)


def load_order(registry, order_no) -> Order:
    with app_request(registry) as req:
        return req.db.scalar(select(Order).where(Order.order_no == order_no))


def refund(registry, order_no, amount=None, destination="balance", reason="customer asked"):
    with app_request(registry, actor=ADMIN) as req:
        order = service.get(req.db, order_no, lock=True)
        made = service.admin_refund(req, order, amount, reason, destination)
        return made.refund_no if made is not None else None


def commissions(registry, order_no=None) -> list[tuple]:
    """``(level, beneficiary, amount, reversed, status)`` of an order's (or every) commission."""
    from kameng_distribution.models import Commission

    with app_request(registry) as req:
        stmt = select(Commission).order_by(Commission.order_id, Commission.level)
        if order_no is not None:
            stmt = stmt.where(Commission.order_no == order_no)
        return [(c.level, c.beneficiary_id, c.amount, c.reversed_amount, c.status) for c in req.db.scalars(stmt)]


def balance(registry, user_id) -> int:
    from kameng_distribution import ledger

    with app_request(registry) as req:
        return ledger.balance(req.db, user_id)


def wallet_balance(registry, user_id) -> int:
    with app_request(registry) as req:
        return wallet.balance(req.db, user_id)


def check_ledgers(registry) -> None:
    """For every account: the entries' sum is the balance, their sequence
    has no gap, and the commission entries are what the commission rows say
    (credited − reversed); each withdrawal's hold and return are in it."""
    from kameng_distribution.models import Commission, LedgerEntry, Withdrawal

    with app_request(registry) as req:
        db = req.db
        users = db.scalars(select(LedgerEntry.user_id).distinct()).all()
        for uid in users:
            rows = db.scalars(select(LedgerEntry).where(LedgerEntry.user_id == uid).order_by(LedgerEntry.seq)).all()
            assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), uid
            running = 0
            for r in rows:
                running += r.amount
                assert r.balance_after == running, (uid, r.seq)
            by_kind = dict(db.execute(select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
                                      .where(LedgerEntry.user_id == uid).group_by(LedgerEntry.kind)).all())
            credited, reversed_ = db.execute(select(func.coalesce(func.sum(Commission.amount), 0),
                                                    func.coalesce(func.sum(Commission.reversed_amount), 0))
                                             .where(Commission.beneficiary_id == uid)).one()
            assert by_kind.get("commission", 0) == credited, uid
            assert -by_kind.get("reversal", 0) == reversed_, uid
            held = db.scalar(select(func.coalesce(func.sum(Withdrawal.amount), 0))
                             .where(Withdrawal.user_id == uid)) or 0
            returned = db.scalar(select(func.coalesce(func.sum(Withdrawal.amount), 0))
                                 .where(Withdrawal.user_id == uid, Withdrawal.status == "rejected")) or 0
            assert -by_kind.get("withdrawal", 0) == held, uid
            assert by_kind.get("withdrawal_returned", 0) == returned, uid
            assert running == credited - reversed_ - held + returned, uid
