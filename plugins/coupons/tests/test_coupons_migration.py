"""The plugin's migration branch made its tables, and its models cannot
drift from them."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from kameng_coupons.models import Base

from kameng.migrate import current_heads


def test_the_branch_is_at_its_head(creg):
    current, heads = current_heads(creg["kameng.engine"], creg["kameng.plugins"])
    assert "coupons_0001" in current and current == heads


def _ours(obj, name, type_, reflected, compare_to):
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in Base.metadata.tables


def test_models_match_the_migration(creg):
    with creg["kameng.engine"].connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _ours})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
