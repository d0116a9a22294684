"""distribution: members, product rates, commissions, ledger, withdrawals

Revision ID: distribution_0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

import kameng.db

revision = "distribution_0001"
down_revision = None
branch_labels = ("distribution",)
depends_on = None


def upgrade():
    op.create_table(
        "distribution_members",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=True),
        sa.Column("bound_via", sa.String(length=16), nullable=False),
        sa.Column("bound_at", kameng.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_distribution_members_user_id_users"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["referrer_id"], ["users.id"],
                                name=op.f("fk_distribution_members_referrer_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_distribution_members")),
        sa.UniqueConstraint("code", name=op.f("uq_distribution_members_code")),
    )
    op.create_index(op.f("ix_distribution_members_referrer_id"), "distribution_members", ["referrer_id"])

    op.create_table(
        "distribution_rates",
        sa.Column("product_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rate_1", sa.Integer(), nullable=True),
        sa.Column("rate_2", sa.Integer(), nullable=True),
        sa.Column("rate_3", sa.Integer(), nullable=True),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"],
                                name=op.f("fk_distribution_rates_product_id_products"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_distribution_rates")),
    )

    op.create_table(
        "distribution_commissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_no", sa.String(length=24), nullable=False),
        sa.Column("buyer_id", sa.Integer(), nullable=True),
        sa.Column("beneficiary_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("base", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("reversed_amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kameng.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"],
                                name=op.f("fk_distribution_commissions_order_id_orders"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["buyer_id"], ["users.id"],
                                name=op.f("fk_distribution_commissions_buyer_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["users.id"],
                                name=op.f("fk_distribution_commissions_beneficiary_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_distribution_commissions")),
        sa.UniqueConstraint("order_id", "level", name="uq_distribution_commissions_order_level"),
    )
    op.create_index(op.f("ix_distribution_commissions_order_no"), "distribution_commissions", ["order_no"])
    op.create_index(op.f("ix_distribution_commissions_beneficiary_id"), "distribution_commissions",
                    ["beneficiary_id"])
    op.create_index(op.f("ix_distribution_commissions_created_at"), "distribution_commissions", ["created_at"])

    op.create_table(
        "distribution_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("ref", sa.String(length=96), nullable=True),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_distribution_ledger_user_id_users"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_distribution_ledger")),
        sa.UniqueConstraint("ref", name=op.f("uq_distribution_ledger_ref")),
        sa.UniqueConstraint("user_id", "seq", name="uq_distribution_ledger_user_seq"),
    )
    op.create_index(op.f("ix_distribution_ledger_user_id"), "distribution_ledger", ["user_id"])

    op.create_table(
        "distribution_withdrawals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("withdrawal_no", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("fee", sa.Integer(), nullable=False),
        sa.Column("net", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("payee", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.Column("decided_at", kameng.db.UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=254), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_distribution_withdrawals_user_id_users"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_distribution_withdrawals")),
        sa.UniqueConstraint("withdrawal_no", name=op.f("uq_distribution_withdrawals_withdrawal_no")),
    )
    op.create_index(op.f("ix_distribution_withdrawals_user_id"), "distribution_withdrawals", ["user_id"])
    op.create_index("ix_distribution_withdrawals_status_id", "distribution_withdrawals", ["status", "id"])


def downgrade():
    op.drop_table("distribution_withdrawals")
    op.drop_table("distribution_ledger")
    op.drop_table("distribution_commissions")
    op.drop_table("distribution_rates")
    op.drop_table("distribution_members")
