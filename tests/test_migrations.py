"""Migrations: from empty to head on the test database, and models that
cannot drift from them."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import kameng.models  # noqa: F401
from kameng.db import metadata
from kameng.migrate import current_heads


def test_database_is_at_every_head(registry):
    current, heads = current_heads(registry["kameng.engine"], registry["kameng.plugins"])
    assert current == heads and any(h.startswith("000") for h in heads)


def test_core_tables_exist(registry):
    names = set(inspect(registry["kameng.engine"]).get_table_names())
    assert {"users", "api_tokens", "plugin_states", "jobs", "shop_settings", "audit_log",
            "payment_attempts", "payment_notices", "categories", "products", "skus", "sku_prices",
            "card_keys", "key_imports"} <= names


def _core_only(obj, name, type_, reflected, compare_to):
    """Plugin tables (and their indexes) belong to the plugins' own migrations."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in metadata.tables


def test_models_match_migrations(registry):
    engine = registry["kameng.engine"]
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _core_only})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_plugin_branch_upgrades_with_the_core(plug_app):
    current, heads = current_heads(plug_app.registry["kameng.engine"], plug_app.registry["kameng.plugins"])
    assert "t001" in current and current == heads


def test_sqlite_pragmas(registry):
    engine = registry["kameng.engine"]
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_upgrade_from_the_first_revision_keeps_data(tmp_path):
    """A shop made before 0002 upgrades in place: its SKUs get the new
    columns with their defaults (card-key SKUs start with no stock)."""
    from alembic import command
    from sqlalchemy import text

    from kameng.db import make_engine
    from kameng.migrate import alembic_config, branches, upgrade
    from kameng.pluginhost import PluginHost

    engine = make_engine(f"sqlite:///{tmp_path}/old.sqlite")
    host = PluginHost.build({}, load_entrypoints=False)
    locations = branches(host)["kameng"]
    cfg = alembic_config("kameng", locations)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO products (id, name, type, description, instructions, sort, visible, created_at)"
                          " VALUES (1, 'p', 'card_key', '', '', 0, 1, '2026-01-01 00:00:00'),"
                          " (2, 'q', 'manual', '', '', 0, 1, '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO skus (product_id, code, name, price, min_quantity, max_quantity, sort, visible)"
                          " VALUES (1, 'A', 'a', 100, 1, 10, 0, 1), (2, 'B', 'b', 100, 1, 10, 0, 1)"))
    upgrade(engine, host)  # what `kameng migrate` runs
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, stock, cost_price, attributes FROM skus ORDER BY code")).all()
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert rows == [("A", 0, 0, "{}"), ("B", None, 0, "{}")]
    engine.dispose()
