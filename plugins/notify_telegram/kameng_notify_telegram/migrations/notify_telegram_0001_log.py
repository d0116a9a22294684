"""notify_telegram: the notify_telegram_log table

Revision ID: notify_telegram_0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

import kameng.db

revision = "notify_telegram_0001"
down_revision = None
branch_labels = ("notify_telegram",)
depends_on = None


def upgrade():
    op.create_table(
        "notify_telegram_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_telegram_log")),
    )
    op.create_index("ix_notify_telegram_log_created_at", "notify_telegram_log", ["created_at"])


def downgrade():
    op.drop_index("ix_notify_telegram_log_created_at", table_name="notify_telegram_log")
    op.drop_table("notify_telegram_log")
