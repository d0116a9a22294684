"""Alembic migrations of the core (branch ``kameng``); installed as ``kameng.migrations``."""
