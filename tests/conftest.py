"""The suite runs on SQLite unless KAMENG_TEST_DATABASE_URL names another
database (PostgreSQL or MariaDB; the database is emptied first)."""
import os
import sys

# test plugins under tests/plugins are importable as top-level modules
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "plugins"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def plug_app(make_app):
    """The app with the test plugins of tests/plugins registered as installed."""
    import kameng_oldplug
    import kameng_testplug

    return make_app(extra_plugins=[("testplug", kameng_testplug), ("oldplug", kameng_oldplug)])


@pytest.fixture
def plug_testapp(plug_app):
    import webtest

    return webtest.TestApp(plug_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
