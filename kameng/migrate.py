"""Migrations of the core and of every installed plugin.

The core's revisions live in ``migrations/versions`` and are tracked in the
``alembic_version`` table. Each plugin ships its own version directory
(``kameng_migration_locations``) tracked in its own table
``alembic_version_<plugin id>``, and is upgraded after the core. So a plugin
can be installed, upgraded or removed without the others' histories getting
in the way: a removed plugin's tables and version row simply stay.
"""
from __future__ import annotations

import os
import re

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pyramid.path import AssetResolver

CORE = "kameng"


def _location(spec: str) -> str:
    if os.path.isabs(spec):
        return spec
    return AssetResolver().resolve(spec).abspath()


def version_table(branch: str) -> str:
    if branch == CORE:
        return "alembic_version"
    return "alembic_version_" + re.sub(r"[^a-z0-9_]", "_", branch.lower())[:40]


def branches(host) -> dict[str, list[str]]:
    """``{branch: [version directories]}``, the core first."""
    import kameng.migrations

    here = os.path.dirname(os.path.abspath(kameng.migrations.__file__))
    out = {CORE: [os.path.join(here, "versions")]}
    for pid, spec in host.collect_by_plugin("kameng_migration_locations"):
        out.setdefault(pid, []).append(_location(spec))
    return out


def alembic_config(branch: str, locations: list[str]) -> Config:
    import kameng.migrations

    cfg = Config()
    cfg.set_main_option("script_location", os.path.dirname(os.path.abspath(kameng.migrations.__file__)))
    cfg.set_main_option("path_separator", ";")
    cfg.set_main_option("version_locations", ";".join(locations))
    cfg.attributes["version_table"] = version_table(branch)
    return cfg


class MigrationError(Exception):
    pass


def upgrade(engine, host) -> None:
    """Upgrade the core, then every installed plugin, to their heads.

    On SQLite, foreign keys are off while migrating: Alembic's batch mode
    rebuilds a table by copying and dropping it, and with foreign keys on,
    dropping ``products`` would cascade-delete every SKU. The keys are
    checked once the migrations are done.
    """
    sqlite = engine.dialect.name == "sqlite"
    for branch, locations in branches(host).items():
        cfg = alembic_config(branch, locations)
        with engine.connect() as conn:
            if sqlite:  # must be set outside a transaction
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "heads")
                if sqlite:
                    problems = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    conn.rollback()
                    if problems:
                        raise MigrationError(f"migrating {branch} broke foreign keys: {problems[:5]}")
            finally:
                if sqlite:
                    conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")


def current_heads(engine, host) -> tuple[set, set]:
    """(revisions the database is at, head revisions available), over all branches."""
    current, heads = set(), set()
    for branch, locations in branches(host).items():
        cfg = alembic_config(branch, locations)
        heads |= set(ScriptDirectory.from_config(cfg).get_heads())
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": version_table(branch)})
            current |= set(ctx.get_current_heads())
    return current, heads


def pending_branches(engine, host) -> set[str]:
    """Branches whose database revision is not at their head."""
    out = set()
    for branch, locations in branches(host).items():
        cfg = alembic_config(branch, locations)
        heads = set(ScriptDirectory.from_config(cfg).get_heads())
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": version_table(branch)})
            if set(ctx.get_current_heads()) != heads:
                out.add(branch)
    return out
