"""Test set-up of a kameng plugin: kameng's test kit gives a migrated
database (emptied after every test) and the app fixtures."""
import pytest

pytest_plugins = ["kameng.testing"]


@pytest.fixture(scope="session")
def hello_app(make_app):
    """The shop with this plugin registered as if installed, and no other
    installed plugin loaded. ``make_app`` also runs the plugin's migrations."""
    import kameng_hello

    return make_app(extra_plugins=[("hello", kameng_hello)], **{"kameng.plugins.load_entrypoints": "false"})


@pytest.fixture
def hello_testapp(hello_app):
    import webtest

    return webtest.TestApp(hello_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
