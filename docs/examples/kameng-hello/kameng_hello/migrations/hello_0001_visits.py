"""hello: the hello_visits table

The first revision of the plugin's own branch: labelled with the plugin id,
no down_revision. It needs no foreign key into core tables, so it does not
depend on a core revision (otherwise: depends_on = "0001").

Revision ID: hello_0001
Revises:
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

import kameng.db

revision = "hello_0001"
down_revision = None
branch_labels = ("hello",)
depends_on = None


def upgrade():
    # Constraint names as kameng.db.NAMING_CONVENTION makes them
    # (pk_<table>, uq_<table>_<column>), written out so they never depend
    # on the metadata the migration runs with.
    op.create_table(
        "hello_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", kameng.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hello_visits")),
        sa.UniqueConstraint("visit_id", name=op.f("uq_hello_visits_visit_id")),
    )


def downgrade():
    op.drop_table("hello_visits")
