"""The suite runs on SQLite unless KAMENG_TEST_DATABASE_URL names another
database (PostgreSQL or MariaDB; the database is emptied first)."""
import os
import sys

# test plugins under tests/plugins are importable as top-level modules
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "plugins"))
