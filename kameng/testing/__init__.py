"""A pytest plugin for kameng and for plugin repositories.

Use it from a plugin's ``conftest.py``::

    pytest_plugins = ["kameng.testing"]

It gives a migrated database (SQLite in a temporary folder, or the database
named by ``KAMENG_TEST_DATABASE_URL``), emptied after every test, and
fixtures for the app: ``make_app``, ``app``, ``testapp``, ``registry``,
``admin``, ``login`` and ``live_server``.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pytest
from sqlalchemy import MetaData, inspect

from kameng.crypto import new_key_line
from kameng.db import drop_all_tables

SESSION_SECRET = "test-session-secret-" + "x" * 32
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"


def test_database_url(tmp_dir: str) -> str:
    return os.environ.get("KAMENG_TEST_DATABASE_URL") or f"sqlite:///{os.path.join(tmp_dir, 'kameng-test.sqlite')}"


#: (database URL, its table names) -> the tables in the order they are emptied:
#: reflecting every table after every test cost PostgreSQL and (one query
#: per table and aspect) MariaDB more than most tests themselves
_EMPTYING_ORDER: dict = {}


def _emptying_order(engine, keep_prefix: str) -> list:
    key = (str(engine.url), keep_prefix, frozenset(inspect(engine).get_table_names()))
    tables = _EMPTYING_ORDER.get(key)
    if tables is None:
        meta = MetaData()
        meta.reflect(engine)
        tables = _EMPTYING_ORDER[key] = [t for t in reversed(meta.sorted_tables)
                                         if not t.name.startswith(keep_prefix)]
    return tables


def empty_tables(engine, keep_prefix="alembic_version") -> None:
    tables = _emptying_order(engine, keep_prefix)
    with engine.begin() as conn:
        for table in tables:
            # a tree (categories.parent_id) cannot lose its parents first
            for fk in table.foreign_keys:
                if fk.column.table is table and fk.parent.nullable:
                    conn.execute(table.update().values({fk.parent.name: None}))
        for table in tables:
            conn.execute(table.delete())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def kameng_tmp(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kameng"))


@pytest.fixture(scope="session")
def key_file(kameng_tmp):
    path = os.path.join(kameng_tmp, "secret.key")
    with open(path, "w") as fh:
        fh.write(new_key_line() + "\n")
    return path


@pytest.fixture(scope="session")
def db_url(kameng_tmp):
    return test_database_url(kameng_tmp)


@pytest.fixture(scope="session")
def base_settings(db_url, key_file, kameng_tmp):
    return {
        "sqlalchemy.url": db_url,
        "kameng.key_file": key_file,
        "kameng.session_secret": SESSION_SECRET,
        "kameng.base_url": "http://localhost",
        "kameng.data_dir": kameng_tmp,
        "kameng.jobs.retry_base_seconds": "0.01",
        "kameng.jobs.poll_interval": "0.05",
        # the tests' fake gateways and suppliers listen on 127.0.0.1
        "kameng.http.allow_private_targets": "true",
        "pyramid.default_locale_name": "en",
        # no scheduled backups of the test database (tests/test_backup.py turns them on)
        "kameng.backup.every_hours": "0",
        # tests look at a page, change the catalog and look again at once
        # (tests/test_pagecache.py turns the anonymous page cache on)
        "kameng.storefront.cache_seconds": "0",
    }


@pytest.fixture(scope="session")
def _fresh_database(base_settings):
    from kameng.db import make_engine

    engine = make_engine(base_settings["sqlalchemy.url"])
    drop_all_tables(engine)
    engine.dispose()
    return True


@pytest.fixture(scope="session")
def make_app(base_settings, _fresh_database):
    """``make_app(extra_plugins=[(id, module)], **settings)`` → a migrated WSGI app."""
    from kameng.config import configure
    from kameng.migrate import upgrade

    made = []

    def factory(extra_plugins=(), **overrides):
        settings = {**base_settings, **overrides}
        config = configure(settings, extra_plugins=extra_plugins)
        upgrade(config.registry["kameng.engine"], config.registry["kameng.plugins"])
        app = config.make_wsgi_app()
        made.append(app)
        return app

    factory.made = made
    yield factory
    for app in made:
        app.registry["kameng.engine"].dispose()


@pytest.fixture(scope="session")
def app(make_app):
    return make_app()


@pytest.fixture
def registry(app):
    return app.registry


@pytest.fixture(autouse=True)
def _empty_database_after_test(request):
    yield
    if "make_app" in request.fixturenames:
        app_factory = request.getfixturevalue("make_app")
        from kameng.db import make_engine

        engine = make_engine(request.getfixturevalue("db_url"))
        try:
            empty_tables(engine)
        finally:
            engine.dispose()
        from kameng import ratelimit

        ratelimit.reset_memory()  # SQLite's counters, as the table's are emptied
        # every app's pooled connections are closed between tests (an engine
        # reconnects when used again): tests that build an app each (a live
        # server on a new port) would otherwise exhaust a server's connections
        for made in app_factory.made:
            engine = made.registry["kameng.engine"]  # the write engine shares its pool
            if getattr(engine.pool, "checkedin", lambda: 1)():
                engine.dispose()


@pytest.fixture
def testapp(app):
    import webtest

    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@contextlib.contextmanager
def app_request(registry, actor="test"):
    """A request with its own committed transaction, for arranging data."""
    from kameng.cli.commands import request_for

    with request_for(registry, actor=actor) as req:
        yield req


@pytest.fixture
def admin(registry):
    from kameng import accounts

    with app_request(registry) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    return ADMIN_EMAIL, ADMIN_PASSWORD


def login(testapp, email, password):
    page = testapp.get("/login")
    form = page.forms["login-form"]
    form["email"] = email
    form["password"] = password
    return form.submit(expect_errors=True)


@pytest.fixture
def admin_app(testapp, admin):
    resp = login(testapp, *admin)
    assert resp.status_int == 302, resp.text
    return testapp


class LiveServer:
    def __init__(self, app, port):
        import waitress.server

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = waitress.server.create_server(app, host="127.0.0.1", port=port, threads=8)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.server.run()
        except (OSError, ValueError):  # a socket closed under the loop while it stops
            if not self.stopping:
                raise

    def start(self):
        self.thread.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError("live server did not start")

    def stop(self):
        """Close the listening socket and every connection from inside the
        server's own loop (closing them from this thread races with it),
        then wait for the loop to end and the worker threads to finish."""
        server = self.server
        self.stopping = True

        def close_all():
            for dispatcher in list(server._map.values()):
                with contextlib.suppress(OSError):
                    dispatcher.close()

        server.trigger.pull_trigger(close_all)
        self.thread.join(timeout=10)
        server.task_dispatcher.shutdown()


@pytest.fixture
def live_server(make_app):
    """A real waitress server on 127.0.0.1 whose ``kameng.base_url`` is its
    own address, so URLs it hands out (gateway pay pages) lead back to it."""
    port = free_port()
    server = LiveServer(make_app(**{"kameng.base_url": f"http://127.0.0.1:{port}"}), port).start()
    yield server
    server.stop()


def set_plugin(registry, plugin_id, enabled=None, **settings):
    from kameng.pluginhost import configure, set_enabled

    with app_request(registry) as req:
        if settings:
            configure(req, plugin_id, settings)
        if enabled is not None:
            set_enabled(req, plugin_id, enabled)



# -- a shop to sell from, for gateway and supplier plugin tests ---------------------------


def add_card_sku(registry, code="KIT1", price="1.00", keys=3, currency="CNY", name="Test card") -> int:
    """A visible card-key product with one option ``code`` at ``price`` and
    ``keys`` generated keys (``<code>-KEY-0000``…). Returns the SKU id."""
    from kameng.catalog import service as catalog
    from kameng.catalog.models import Sku
    from kameng.inventory import service as inventory
    from sqlalchemy import select

    with app_request(registry) as req:
        catalog.save_product(req.db, {"name": name, "type": "card_key",
                                      "skus": [{"code": code, "name": f"{code} option", "price": price,
                                                "max_quantity": 10}]}, currency)
        sku_id = req.db.scalar(select(Sku.id).where(Sku.code == code))
    if keys:
        factory = registry["kameng.session_factory"]
        inventory.import_keys(lambda: factory(bind=registry["kameng.write_engine"]), registry["kameng.keyring"],
                              sku_id, [f"{code}-KEY-{i:04d}" for i in range(keys)])
    return sku_id


def open_order(registry, sku_code: str, gateway_id: str, quantity: int = 1, channel: str | None = None,
               contact: str = "buyer@example.com") -> tuple[str, str]:
    """A guest order for ``sku_code`` with a pending payment attempt at
    ``gateway_id``, made through the core without asking the provider
    anything. Returns ``(order_no, attempt_no)``."""
    from kameng.orders.checkout import OrderRequest, create_order
    from kameng.orders.service import open_attempt

    with app_request(registry, actor="buyer") as req:
        order, _ = create_order(req, OrderRequest(sku=sku_code, quantity=quantity, contact=contact,
                                                  query_password="pass1234", payment_method=gateway_id,
                                                  channel=channel))
        attempt = open_attempt(req, order, gateway_id, channel)
        return order.order_no, attempt.attempt_no


def run_jobs(registry, limit: int = 100) -> int:
    """Run due jobs (delivery, refunds, queries) in this thread; how many ran."""
    from kameng import jobs

    worker = jobs.Worker(registry, worker_id="test-worker")
    n = 0
    while n < limit and worker.run_one():
        n += 1
    return n


def load_sibling(conftest_file: str, name: str, prefix: str):
    """Import ``<name>.py`` next to ``conftest_file`` as ``<prefix>_<name>``.

    Every plugin's tests may have a ``fakeprovider.py``; imported by its bare
    name under pytest's default import mode, the second one would be the
    first one again. A plugin's conftest loads its helpers with this instead."""
    import importlib.util
    import sys

    qualified = f"{prefix}_{name}"
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            qualified, os.path.join(os.path.dirname(os.path.abspath(conftest_file)), f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
    return sys.modules[qualified]
