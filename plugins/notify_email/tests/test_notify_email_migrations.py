"""The plugin's tables match its migration, on every database."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kameng.migrate import current_heads
from kameng_notify_email.models import Base


def _ours(obj, name, type_, reflected, compare_to):
    if type_ == "table":
        return name.startswith("notify_email_")
    table = getattr(obj, "table", None)
    return table is None or table.name.startswith("notify_email_")


def test_models_match_the_migration(email_app):
    engine = email_app.registry["kameng.engine"]
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _ours})
        assert compare_metadata(ctx, Base.metadata) == []


def test_the_branch_is_at_its_head(email_app):
    from kameng.migrate import pending_branches

    current, heads = current_heads(email_app.registry["kameng.engine"], email_app.registry["kameng.plugins"])
    assert "notify_email_0001" in current and "notify_email_0001" in heads
    assert "notify_email" not in pending_branches(email_app.registry["kameng.engine"],
                                                  email_app.registry["kameng.plugins"])
