"""Migrations of the core and every installed plugin, each on its own Alembic branch."""
from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pyramid.path import AssetResolver


def _location(spec: str) -> str:
    if os.path.isabs(spec):
        return spec
    return AssetResolver().resolve(spec).abspath()


def alembic_config(engine, host) -> Config:
    import kameng.migrations

    here = os.path.dirname(os.path.abspath(kameng.migrations.__file__))
    cfg = Config()
    cfg.set_main_option("script_location", here)
    locations = [os.path.join(here, "versions")]
    for _pid, spec in host.collect_by_plugin("kameng_migration_locations"):
        locations.append(_location(spec))
    # ";" never occurs in these paths; alembic splits on it with path_separator=";"
    cfg.set_main_option("path_separator", ";")
    cfg.set_main_option("version_locations", ";".join(locations))
    return cfg


def upgrade(engine, host) -> None:
    cfg = alembic_config(engine, host)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def current_heads(engine, host) -> tuple[set, set]:
    """(revisions the database is at, head revisions available)."""
    cfg = alembic_config(engine, host)
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current, set(script.get_heads())
