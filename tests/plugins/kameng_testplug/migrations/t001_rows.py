"""testplug rows

Revision ID: t001
Revises:
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "t001"
down_revision = None
branch_labels = ("testplug",)
depends_on = None


def upgrade():
    op.create_table(
        "testplug_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_testplug_rows")),
    )


def downgrade():
    op.drop_table("testplug_rows")
