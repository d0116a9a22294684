"""Alembic environment for the core and for each installed plugin (each with
its own version table, see :mod:`kameng.migrate`).

Run through ``kameng migrate`` (see :mod:`kameng.migrate`), which passes the
connection in ``config.attributes["connection"]``.
"""
from alembic import context


import kameng.models  # noqa: F401  (fills the core metadata)
from kameng.db import metadata as core_metadata

config = context.config
extra = config.attributes.get("target_metadata", [])
target_metadata = [core_metadata, *extra] if extra else core_metadata


def run_migrations_online():
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        version_table=config.attributes.get("version_table", "alembic_version"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `kameng migrate`")
run_migrations_online()
