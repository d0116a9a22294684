"""webhooks: endpoints, deliveries and attempts

Revision ID: webhooks_0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

import kameng.db

revision = "webhooks_0001"
down_revision = None
branch_labels = ("webhooks",)
depends_on = None


def upgrade():
    op.create_table(
        "webhooks_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("events", sa.String(length=1000), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("secret_rotated_at", kameng.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks_endpoints")),
    )
    op.create_table(
        "webhooks_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("auto_attempts", sa.Integer(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", kameng.db.UTCDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", kameng.db.UTCDateTime(), nullable=True),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhooks_endpoints.id"], ondelete="CASCADE",
                                name=op.f("fk_webhooks_deliveries_endpoint_id_webhooks_endpoints")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks_deliveries")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_webhooks_deliveries_delivery_id")),
    )
    op.create_index("ix_webhooks_deliveries_endpoint_id_id", "webhooks_deliveries", ["endpoint_id", "id"])
    op.create_index("ix_webhooks_deliveries_status_id", "webhooks_deliveries", ["status", "id"])
    op.create_index("ix_webhooks_deliveries_event", "webhooks_deliveries", ["event"])
    op.create_index("ix_webhooks_deliveries_created_at", "webhooks_deliveries", ["created_at"])
    op.create_table(
        "webhooks_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_pk", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("request_headers", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_pk"], ["webhooks_deliveries.id"], ondelete="CASCADE",
                                name=op.f("fk_webhooks_attempts_delivery_pk_webhooks_deliveries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks_attempts")),
        sa.UniqueConstraint("delivery_pk", "ref", name="uq_webhooks_attempts_delivery_pk_ref"),
    )


def downgrade():
    op.drop_table("webhooks_attempts")
    op.drop_table("webhooks_deliveries")
    op.drop_table("webhooks_endpoints")
