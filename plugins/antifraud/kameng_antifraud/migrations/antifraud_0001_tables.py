"""antifraud: the risk log, captcha challenges and per-product purchase limits

Revision ID: antifraud_0001
Revises:
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

import kameng.db

revision = "antifraud_0001"
down_revision = None
branch_labels = ("antifraud",)
depends_on = None


def upgrade():
    # constraint and index names as kameng.db.NAMING_CONVENTION makes them
    op.create_table(
        "antifraud_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("contact", sa.String(length=254), nullable=False),
        sa.Column("contact_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_antifraud_log")),
    )
    op.create_index(op.f("ix_antifraud_log_created_at"), "antifraud_log", ["created_at"])
    op.create_index(op.f("ix_antifraud_log_rule"), "antifraud_log", ["rule"])
    op.create_index(op.f("ix_antifraud_log_ip"), "antifraud_log", ["ip"])
    op.create_index(op.f("ix_antifraud_log_contact_hash"), "antifraud_log", ["contact_hash"])

    op.create_table(
        "antifraud_captchas",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("answer", sa.String(length=16), nullable=False),
        sa.Column("expires_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_antifraud_captchas")),
    )
    op.create_index(op.f("ix_antifraud_captchas_expires_at"), "antifraud_captchas", ["expires_at"])

    op.create_table(
        "antifraud_product_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("max_quantity", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_antifraud_product_limits")),
        sa.UniqueConstraint("product_id", name=op.f("uq_antifraud_product_limits_product_id")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE",
                                name=op.f("fk_antifraud_product_limits_product_id_products")),
    )


def downgrade():
    op.drop_table("antifraud_product_limits")
    op.drop_index(op.f("ix_antifraud_captchas_expires_at"), table_name="antifraud_captchas")
    op.drop_table("antifraud_captchas")
    for name in ("contact_hash", "ip", "rule", "created_at"):
        op.drop_index(op.f(f"ix_antifraud_log_{name}"), table_name="antifraud_log")
    op.drop_table("antifraud_log")
