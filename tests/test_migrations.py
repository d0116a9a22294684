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
    assert current == heads and "0001" in heads


def test_core_tables_exist(registry):
    names = set(inspect(registry["kameng.engine"]).get_table_names())
    assert {"users", "api_tokens", "plugin_states", "jobs", "shop_settings", "audit_log",
            "payment_attempts", "payment_notices", "categories", "products", "skus"} <= names


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
    assert {"0001", "t001"} <= current == heads


def test_sqlite_pragmas(registry):
    engine = registry["kameng.engine"]
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
