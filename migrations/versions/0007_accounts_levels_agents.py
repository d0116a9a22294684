"""accounts: phone sign-in, member levels, agent applications and tiers,
password-reset links

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import kameng.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('level', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('level_manual', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('tier', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('agent_status', sa.String(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('agent_note', sa.String(length=500), nullable=False, server_default=''))
        batch_op.create_unique_constraint(batch_op.f('uq_users_phone'), ['phone'])
    op.create_table('member_levels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('discount_bp', sa.Integer(), nullable=False),
    sa.Column('min_paid', sa.Integer(), nullable=True),
    sa.Column('min_topup', sa.Integer(), nullable=True),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('created_at', kameng.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_levels')),
    sa.UniqueConstraint('code', name=op.f('uq_member_levels_code'))
    )
    op.create_table('password_resets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', kameng.db.UTCDateTime(), nullable=False),
    sa.Column('used_at', kameng.db.UTCDateTime(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_resets_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_resets')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_resets_token_hash'))
    )
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_resets_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_resets_user_id'))
    op.drop_table('password_resets')
    op.drop_table('member_levels')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_phone'), type_='unique')
        batch_op.drop_column('agent_note')
        batch_op.drop_column('agent_status')
        batch_op.drop_column('tier')
        batch_op.drop_column('level_manual')
        batch_op.drop_column('level')
        batch_op.drop_column('phone')
