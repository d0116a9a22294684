"""dock api keys: keys for the downstream docking API (/api/v1/dock/), the
nonces they have used, and the link from a docked order to its out_order_no

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import kameng.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dock_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('ip_allowlist', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', kameng.db.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', kameng.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_dock_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dock_keys')),
    sa.UniqueConstraint('key_id', name=op.f('uq_dock_keys_key_id'))
    )
    with op.batch_alter_table('dock_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dock_keys_user_id'), ['user_id'], unique=False)

    op.create_table('dock_nonces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('seen_at', kameng.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dock_nonces')),
    sa.UniqueConstraint('key_id', 'nonce', name='uq_dock_nonces_key_nonce')
    )
    with op.batch_alter_table('dock_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dock_nonces_seen_at'), ['seen_at'], unique=False)

    op.create_table('dock_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('out_order_no', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('callback_url', sa.String(length=1000), nullable=True),
    sa.Column('created_at', kameng.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_dock_orders_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_dock_orders_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dock_orders')),
    sa.UniqueConstraint('order_id', name=op.f('uq_dock_orders_order_id')),
    sa.UniqueConstraint('user_id', 'out_order_no', name='uq_dock_orders_user_out_order_no')
    )


def downgrade():
    op.drop_table('dock_orders')
    with op.batch_alter_table('dock_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dock_nonces_seen_at'))
    op.drop_table('dock_nonces')
    with op.batch_alter_table('dock_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dock_keys_user_id'))
    op.drop_table('dock_keys')
