"""coupons: coupons, redemptions, promotions, sale prices and their uses

Revision ID: coupons_0001
Revises:
Create Date: 2026-03-01
"""
import sqlalchemy as sa
from alembic import op

import kameng.db

revision = "coupons_0001"
down_revision = None
branch_labels = ("coupons",)
depends_on = None


def upgrade():
    op.create_table(
        "coupons_coupons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("code_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("max_discount", sa.Integer(), nullable=True),
        sa.Column("min_amount", sa.Integer(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("per_buyer", sa.Integer(), nullable=True),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("starts_at", kameng.db.UTCDateTime(), nullable=True),
        sa.Column("ends_at", kameng.db.UTCDateTime(), nullable=True),
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("batch", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons_coupons")),
        sa.UniqueConstraint("code_key", name=op.f("uq_coupons_coupons_code_key")),
    )
    op.create_index(op.f("ix_coupons_coupons_batch"), "coupons_coupons", ["batch"])

    op.create_table(
        "coupons_redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("coupon_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_no", sa.String(length=24), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("contact_key", sa.String(length=254), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("released_at", kameng.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons_redemptions")),
        sa.ForeignKeyConstraint(["coupon_id"], ["coupons_coupons.id"], ondelete="CASCADE",
                                name=op.f("fk_coupons_redemptions_coupon_id_coupons_coupons")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE",
                                name=op.f("fk_coupons_redemptions_order_id_orders")),
        sa.UniqueConstraint("coupon_id", "order_id", name="uq_coupons_redemptions_coupon_order"),
    )
    op.create_index(op.f("ix_coupons_redemptions_order_id"), "coupons_redemptions", ["order_id"])
    op.create_index("ix_coupons_redemptions_coupon_contact", "coupons_redemptions", ["coupon_id", "contact_key"])
    op.create_index("ix_coupons_redemptions_coupon_user", "coupons_redemptions", ["coupon_id", "user_id"])

    op.create_table(
        "coupons_promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("tiers", sa.Text(), nullable=False),
        sa.Column("starts_at", kameng.db.UTCDateTime(), nullable=True),
        sa.Column("ends_at", kameng.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons_promotions")),
    )

    op.create_table(
        "coupons_sales",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("starts_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("ends_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=False),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons_sales")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], ondelete="CASCADE",
                                name=op.f("fk_coupons_sales_sku_id_skus")),
    )
    op.create_index(op.f("ix_coupons_sales_sku_id"), "coupons_sales", ["sku_id"])

    op.create_table(
        "coupons_sale_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_no", sa.String(length=24), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("released_at", kameng.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons_sale_uses")),
        sa.ForeignKeyConstraint(["sale_id"], ["coupons_sales.id"], ondelete="CASCADE",
                                name=op.f("fk_coupons_sale_uses_sale_id_coupons_sales")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE",
                                name=op.f("fk_coupons_sale_uses_order_id_orders")),
        sa.UniqueConstraint("sale_id", "order_id", name="uq_coupons_sale_uses_sale_order"),
    )
    op.create_index(op.f("ix_coupons_sale_uses_order_id"), "coupons_sale_uses", ["order_id"])


def downgrade():
    op.drop_table("coupons_sale_uses")
    op.drop_table("coupons_sales")
    op.drop_table("coupons_promotions")
    op.drop_table("coupons_redemptions")
    op.drop_table("coupons_coupons")
