"""The documentation stays true to the code.

- every hookspec has a section in docs/plugins.md, and no section documents
  a hook that does not exist;
- the example plugin of docs/plugins.md (docs/examples/kameng-hello) works;
- docs/configuration.md names every ``kameng.*`` setting the code reads.
"""
import inspect as pyinspect
import os
import re
import sys

import pytest
import webtest
from sqlalchemy import func, inspect, select

from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login, set_plugin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
EXAMPLE = os.path.join(DOCS, "examples", "kameng-hello")


def read_doc(name: str) -> str:
    with open(os.path.join(DOCS, name), encoding="utf-8") as fh:
        return fh.read()


# -- (a) hooks ---------------------------------------------------------------------------


def hookspecs() -> dict:
    from kameng import hookspecs as specs

    return {name: obj for name, obj in vars(specs).items()
            if name.startswith("kameng_") and hasattr(obj, "kameng_spec")}


def documented_hooks(text: str) -> list[str]:
    return re.findall(r"^### `(\w+)`[ \t]*$", text, re.M)


def test_every_hook_is_documented_once():
    documented = documented_hooks(read_doc("plugins.md"))
    missing = sorted(set(hookspecs()) - set(documented))
    assert not missing, f"docs/plugins.md has no '### `name`' section for: {missing}"
    duplicated = sorted({n for n in documented if documented.count(n) > 1})
    assert not duplicated, f"hooks documented twice: {duplicated}"


def test_no_section_for_a_hook_that_does_not_exist():
    extra = sorted(set(documented_hooks(read_doc("plugins.md"))) - set(hookspecs()))
    assert not extra, f"docs/plugins.md documents hooks that kameng.hookspecs does not declare: {extra}"


def test_each_hook_section_shows_its_signature():
    text = read_doc("plugins.md")
    for name, spec in hookspecs().items():
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        signature = f"{name}({', '.join(pyinspect.signature(spec).parameters)})"
        assert signature in section, f"the section of {name} does not show {signature}"


# -- (b) the example plugin ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hello_app(make_app):
    """The shop with the example plugin registered as if installed (which
    also runs its migration branch). Other installed plugins are not loaded,
    so an installed copy of kameng-hello cannot clash with this one."""
    sys.path.insert(0, EXAMPLE)
    try:
        import kameng_hello

        yield make_app(extra_plugins=[("hello", kameng_hello)], **{"kameng.plugins.load_entrypoints": "false"})
    finally:
        sys.path.remove(EXAMPLE)


@pytest.fixture
def hello(hello_app):
    return hello_app  # the test kit empties the tables after each test


@pytest.fixture
def hello_testapp(hello):
    return webtest.TestApp(hello, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


def test_example_plugin_is_installed_with_its_metadata(hello):
    host = hello.registry["kameng.plugins"]
    plugin = host.plugins["hello"]
    assert plugin.errors == []
    assert plugin.meta.name == "Hello"
    assert [(f.name, f.required, f.type) for f in plugin.meta.settings] == [("greeting", True, "string")]
    assert "hello.record_visit" in hello.registry["kameng.job_handlers"]


def test_example_plugin_migration_branch_made_its_table(hello):
    from kameng.migrate import current_heads

    engine = hello.registry["kameng.engine"]
    assert "hello_visits" in inspect(engine).get_table_names()
    uniques = inspect(engine).get_unique_constraints("hello_visits")
    assert [u["name"] for u in uniques] == ["uq_hello_visits_visit_id"]
    current, heads = current_heads(engine, hello.registry["kameng.plugins"])
    assert "hello_0001" in current and current == heads


def test_example_plugin_cannot_be_enabled_without_its_greeting(hello):
    from kameng.pluginhost import PluginError

    with pytest.raises(PluginError, match="greeting"):
        set_plugin(hello.registry, "hello", enabled=True)


def test_example_plugin_block_admin_page_and_job(hello, hello_testapp):
    from kameng import accounts
    from kameng.jobs import Worker
    from kameng_hello.models import HelloVisit

    registry = hello.registry
    with app_request(registry) as req:
        accounts.create_user(req.db, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    assert login(hello_testapp, ADMIN_EMAIL, ADMIN_PASSWORD).status_int == 302

    # installed but disabled: no block, no page, no menu item
    assert "hello-block" not in hello_testapp.get("/").text
    hello_testapp.get("/-/hello/", status=404)

    set_plugin(registry, "hello", enabled=True, greeting="Hi <b>there</b>")
    home = hello_testapp.get("/")
    assert 'id="hello-block"' in home.text
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in home.text and "<b>there</b>" not in home.text
    assert 'href="http://localhost/-/hello/"' in hello_testapp.get("/admin").text

    page = hello_testapp.get("/-/hello/")
    assert page.status_int == 200
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in page.text
    form = page.forms["hello-form"]
    form["note"] = "from the test"
    assert form.submit().status_int == 302

    # the POST queued a job; the worker runs it and the row appears
    worker = Worker(registry)
    assert worker.run_one() is True
    assert worker.run_one() is False
    with app_request(registry) as req:
        assert [v.note for v in req.db.scalars(select(HelloVisit))] == ["from the test"]
    assert '<strong id="hello-total">1</strong>' in hello_testapp.get("/-/hello/").text

    set_plugin(registry, "hello", enabled=False)
    hello_testapp.get("/-/hello/", status=404)
    assert "hello-block" not in hello_testapp.get("/").text
    assert "/-/hello/" not in hello_testapp.get("/admin").text
    with app_request(registry) as req:  # a disabled plugin's data stays
        assert req.db.scalar(select(func.count()).select_from(HelloVisit)) == 1


def test_example_job_handler_is_idempotent(hello):
    from kameng_hello.jobs import record_visit
    from kameng_hello.models import HelloVisit

    for _ in range(2):
        with app_request(hello.registry) as req:
            record_visit(req, {"visit_id": "v1", "note": "once"})
    with app_request(hello.registry) as req:
        assert req.db.scalar(select(func.count()).select_from(HelloVisit)) == 1


# -- (c) settings ------------------------------------------------------------------------


_SETTING_READS = (
    re.compile(r"""settings\.get\(\s*["'](kameng\.[\w.]+)["']"""),
    re.compile(r"""settings\[\s*["'](kameng\.[\w.]+)["']"""),
)


def settings_in_code() -> set[str]:
    """``kameng.*`` settings the code reads, the defaults and environment
    overrides of kameng.config, and the ones ``kameng init`` writes."""
    from kameng import config
    from kameng.cli import commands

    names = {k for k in config.DEFAULTS if k.startswith("kameng.")}
    names |= {v for v in config.ENV_OVERRIDES.values() if v.startswith("kameng.")}
    names |= set(re.findall(r"^(kameng\.[\w.]+)\s*=", commands.INI, re.M))
    for top in ("kameng", "plugins"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d not in ("tests", "__pycache__") and not d.endswith(".egg-info")]
            for fn in filenames:
                if fn.endswith(".py"):
                    with open(os.path.join(dirpath, fn), encoding="utf-8") as fh:
                        source = fh.read()
                    for pattern in _SETTING_READS:
                        names.update(pattern.findall(source))
    return names


def test_settings_search_finds_known_settings():
    names = settings_in_code()
    assert {"kameng.base_url", "kameng.session_secret", "kameng.jobs.lease_seconds", "kameng.theme"} <= names


def test_configuration_doc_names_every_setting():
    text = read_doc("configuration.md")
    missing = sorted(n for n in settings_in_code()
                     if not re.search(r"(?<![\w.])" + re.escape(n) + r"(?![\w])(?!\.\w)", text))
    assert not missing, f"docs/configuration.md does not mention: {missing}"
