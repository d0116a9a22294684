"""notify_email: the send log, the templates and the event switches

Revision ID: notify_email_0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

import kameng.db

revision = "notify_email_0001"
down_revision = None
branch_labels = ("notify_email",)
depends_on = None


def upgrade():
    op.create_table(
        "notify_email_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=191), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=True),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("resend_of", sa.Integer(), nullable=True),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("sent_at", kameng.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_email_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notify_email_messages_dedupe_key")),
    )
    op.create_index("ix_notify_email_messages_status", "notify_email_messages", ["status"])
    op.create_index("ix_notify_email_messages_order_no", "notify_email_messages", ["order_no"])
    op.create_table(
        "notify_email_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_email_templates")),
        sa.UniqueConstraint("event", "language", name="uq_notify_email_templates_event_language"),
    )
    op.create_table(
        "notify_email_switches",
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event", name=op.f("pk_notify_email_switches")),
    )


def downgrade():
    op.drop_table("notify_email_switches")
    op.drop_table("notify_email_templates")
    op.drop_index("ix_notify_email_messages_order_no", table_name="notify_email_messages")
    op.drop_index("ix_notify_email_messages_status", table_name="notify_email_messages")
    op.drop_table("notify_email_messages")
