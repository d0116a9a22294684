"""The plugin's migration and its models cannot drift apart."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from kameng.migrate import current_heads

from kameng_webhooks.models import Base


def _ours(obj, name, type_, reflected, compare_to):
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in Base.metadata.tables


def test_branch_is_at_head_and_models_match(wh_app):
    registry = wh_app.registry
    current, heads = current_heads(registry["kameng.engine"], registry["kameng.plugins"])
    assert "webhooks_0001" in current and current == heads
    engine = registry["kameng.engine"]
    assert {"webhooks_endpoints", "webhooks_deliveries", "webhooks_attempts",
            "alembic_version_webhooks"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _ours})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
