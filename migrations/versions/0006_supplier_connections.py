"""supplier connections: upstream accounts, SKUs they fulfil, orders placed
upstream, the sync log; orders say how they are fulfilled

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import kameng.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('supplier_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connector', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('settings', sa.Text(), nullable=False),
    sa.Column('secrets', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('health_message', sa.String(length=255), nullable=False),
    sa.Column('checked_at', kameng.db.UTCDateTime(), nullable=True),
    sa.Column('sync_interval', sa.Integer(), nullable=False),
    sa.Column('last_sync_at', kameng.db.UTCDateTime(), nullable=True),
    sa.Column('deadline_minutes', sa.Integer(), nullable=False),
    sa.Column('created_at', kameng.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supplier_connections'))
    )
    op.create_table('sku_upstreams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku_id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('upstream_goods', sa.String(length=128), nullable=False),
    sa.Column('upstream_sku', sa.String(length=128), nullable=False),
    sa.Column('cost', sa.Integer(), nullable=False),
    sa.Column('upstream_stock', sa.Integer(), nullable=True),
    sa.Column('available', sa.Boolean(), nullable=False),
    sa.Column('hidden_by_sync', sa.Boolean(), nullable=False),
    sa.Column('price_mode', sa.String(length=16), nullable=False),
    sa.Column('price_value', sa.String(length=32), nullable=False),
    sa.Column('price_step', sa.Integer(), nullable=False),
    sa.Column('synced_at', kameng.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['connection_id'], ['supplier_connections.id'],
                            name=op.f('fk_sku_upstreams_connection_id_supplier_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_sku_upstreams_sku_id_skus'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sku_upstreams')),
    sa.UniqueConstraint('sku_id', name=op.f('uq_sku_upstreams_sku_id'))
    )
    op.create_index(op.f('ix_sku_upstreams_connection_id'), 'sku_upstreams', ['connection_id'], unique=False)
    op.create_table('upstream_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('out_order_no', sa.String(length=40), nullable=False),
    sa.Column('upstream_sku', sa.String(length=128), nullable=False),
    sa.Column('upstream_order_no', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('polls', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=255), nullable=False),
    sa.Column('cost', sa.Integer(), nullable=True),
    sa.Column('deadline', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('overdue_at', kameng.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('finished_at', kameng.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['connection_id'], ['supplier_connections.id'],
                            name=op.f('fk_upstream_orders_connection_id_supplier_connections'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_upstream_orders_order_id_orders'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upstream_orders')),
    sa.UniqueConstraint('order_id', name=op.f('uq_upstream_orders_order_id')),
    sa.UniqueConstraint('out_order_no', name=op.f('uq_upstream_orders_out_order_no'))
    )
    op.create_index(op.f('ix_upstream_orders_connection_id'), 'upstream_orders', ['connection_id'], unique=False)
    op.create_table('supplier_sync_logs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('at', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('changes', sa.Text(), nullable=False),
    sa.Column('error', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['supplier_connections.id'],
                            name=op.f('fk_supplier_sync_logs_connection_id_supplier_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supplier_sync_logs'))
    )
    op.create_index(op.f('ix_supplier_sync_logs_connection_id'), 'supplier_sync_logs', ['connection_id'],
                    unique=False)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fulfilment', sa.String(length=16), nullable=False, server_default='stock'))


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('fulfilment')
    op.drop_index(op.f('ix_supplier_sync_logs_connection_id'), table_name='supplier_sync_logs')
    op.drop_table('supplier_sync_logs')
    op.drop_index(op.f('ix_upstream_orders_connection_id'), table_name='upstream_orders')
    op.drop_table('upstream_orders')
    op.drop_index(op.f('ix_sku_upstreams_connection_id'), table_name='sku_upstreams')
    op.drop_table('sku_upstreams')
    op.drop_table('supplier_connections')
