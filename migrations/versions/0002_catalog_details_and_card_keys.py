"""catalog details and card keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import kameng.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('key_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('imported', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('invalid', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_key_imports_sku_id_skus'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_imports'))
    )
    with op.batch_alter_table('key_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_imports_sku_id'), ['sku_id'], unique=False)

    op.create_table('sku_prices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('price', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_sku_prices_sku_id_skus'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sku_prices')),
    sa.UniqueConstraint('sku_id', 'kind', 'ref', name='uq_sku_prices_sku_kind_ref')
    )
    op.create_table('card_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('number', sa.Text(), nullable=True),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('order_ref', sa.String(length=64), nullable=True),
    sa.Column('reserved_until', kameng.db.UTCDateTime(), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('created_at', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('sold_at', kameng.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['key_imports.id'], name=op.f('fk_card_keys_batch_id_key_imports'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_card_keys_sku_id_skus'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_keys')),
    sa.UniqueConstraint('sku_id', 'fingerprint', name='uq_card_keys_sku_fingerprint')
    )
    with op.batch_alter_table('card_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_keys_order_ref'), ['order_ref'], unique=False)
        batch_op.create_index('ix_card_keys_sku_state', ['sku_id', 'state', 'id'], unique=False)
        batch_op.create_index('ix_card_keys_state_reserved_until', ['state', 'reserved_until'], unique=False)

    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('images', sa.Text(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('tags', sa.String(length=255), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('recharge_fields', sa.Text(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('hot', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('recommended', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('archived', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('skus', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attributes', sa.Text(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('cost_price', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('stock', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('low_stock_threshold', sa.Integer(), nullable=False, server_default='0'))

    # card-key SKUs start with no keys; other SKUs stay unlimited (NULL)
    op.execute("UPDATE skus SET stock = 0 WHERE product_id IN (SELECT id FROM products WHERE type = 'card_key')")


def downgrade():
    with op.batch_alter_table('skus', schema=None) as batch_op:
        batch_op.drop_column('low_stock_threshold')
        batch_op.drop_column('stock')
        batch_op.drop_column('cost_price')
        batch_op.drop_column('attributes')

    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('archived')
        batch_op.drop_column('recommended')
        batch_op.drop_column('hot')
        batch_op.drop_column('recharge_fields')
        batch_op.drop_column('tags')
        batch_op.drop_column('images')

    with op.batch_alter_table('card_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_card_keys_state_reserved_until')
        batch_op.drop_index('ix_card_keys_sku_state')
        batch_op.drop_index(batch_op.f('ix_card_keys_order_ref'))

    op.drop_table('card_keys')
    op.drop_table('sku_prices')
    with op.batch_alter_table('key_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_imports_sku_id'))

    op.drop_table('key_imports')
