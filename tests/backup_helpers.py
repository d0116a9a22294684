"""Set-up for the backup tests: a shop made with ``kameng init --demo`` that
has sold keys, on SQLite or on the server named by KAMENG_TEST_DATABASE_URL
(in databases of its own, created and dropped here), and what it holds."""
from __future__ import annotations

import contextlib
import os

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

PASSPHRASE = "a long test passphrase 1"


def server_url() -> str | None:
    url = os.environ.get("KAMENG_TEST_DATABASE_URL")
    return url if url and not url.startswith("sqlite") else None


def missing_tools() -> list[str]:
    """The dump and load tools the test server's database needs that are not installed."""
    import shutil

    url = server_url()
    if url is None:
        return []
    needs = ([("pg_dump",), ("pg_restore",)] if make_url(url).get_backend_name() == "postgresql"
             else [("mariadb-dump", "mysqldump"), ("mariadb", "mysql")])
    return [names[0] for names in needs if not any(shutil.which(n) for n in names)]


def _admin_engine(url: str):
    return create_engine(url, isolation_level="AUTOCOMMIT")


def create_database(suffix: str) -> str | None:
    """A new, empty database ``<test db>_<suffix>`` on the test server (None on SQLite)."""
    base = server_url()
    if base is None:
        return None
    u = make_url(base)
    name = f"{u.database}_{suffix}"
    engine = _admin_engine(base)
    try:
        with engine.connect() as conn:
            if u.get_backend_name() == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        engine.dispose()
    return u.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str | None) -> None:
    if url is None:
        return
    u = make_url(url)
    engine = _admin_engine(server_url())
    try:
        with engine.connect() as conn:
            if u.get_backend_name() == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{u.database}`"))
    finally:
        engine.dispose()


def tables(url: str) -> list[str]:
    from sqlalchemy import inspect

    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


@contextlib.contextmanager
def shop_app(ini: str):
    """The WSGI app of the shop configured by ``ini``; its engine closed afterwards."""
    from pyramid.paster import get_app

    app = get_app(ini)
    try:
        yield app
    finally:
        app.registry["kameng.engine"].dispose()


def sell(ini: str) -> list[str]:
    """Three orders: two paid and delivered (3 keys sold), one left unpaid."""
    import webtest
    from kameng_sandbox.gateway import signed_fields

    from kameng.cli.commands import request_for
    from kameng.testing import run_jobs

    made = []
    with shop_app(ini) as app:
        with request_for(app.registry) as req:
            secret = req.plugin_settings("sandbox")["secret"]
        client = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        for quantity, pay in ((1, True), (2, True), (1, False)):
            order = client.post_json("/api/v1/orders", {
                "sku": "QB-10", "quantity": quantity, "contact": "buyer@example.com", "query_password": "pass1234",
                "payment_method": "sandbox"}, status=201).json
            made.append(order["order_no"])
            if pay:
                attempt = order["payment"]["attempt_no"]
                client.post("/pay/sandbox/notify", signed_fields(attempt, order["amount"], "paid", secret), status=200)
        run_jobs(app.registry)
    return made


def shop_state(ini: str) -> dict:
    """Every order and every card key of the shop, the keys decrypted with
    the shop's own key file."""
    from kameng.cli.commands import request_for
    from kameng.inventory.models import CardKey
    from kameng.inventory.service import reveal
    from kameng.orders.models import Order

    with shop_app(ini) as app, request_for(app.registry) as req:
        ring = app.registry["kameng.keyring"]
        orders = {o.order_no: (o.status, o.amount, o.currency, o.contact, o.quantity)
                  for o in req.db.scalars(select(Order))}
        keys = {k.id: (k.sku_id, k.state, k.order_ref, reveal(ring, k))
                for k in req.db.scalars(select(CardKey).order_by(CardKey.id))}
    return {"orders": orders, "keys": keys}
