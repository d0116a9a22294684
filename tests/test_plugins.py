"""Plugin discovery, metadata, enable/disable at runtime, settings."""
import json

import pytest
from sqlalchemy import inspect, select

from kameng.pluginhost import PluginError, PluginState, configure
from kameng.testing import app_request, login, set_plugin
from kameng.types import SettingError


def test_sandbox_is_discovered_by_entry_point(registry):
    host = registry["kameng.plugins"]
    sandbox = host.plugins["sandbox"]
    assert sandbox.errors == []
    assert sandbox.meta.category == "payment"
    assert sandbox.version  # from the distribution's metadata
    assert sandbox.distribution.replace("_", "-") == "kameng-sandbox"
    assert "sandbox" in registry["kameng.gateways"]


def test_check_pending_catches_a_misspelt_hook(make_app):
    import types

    from kameng import hookimpl

    bad = types.ModuleType("kameng_typo")

    @hookimpl
    def kameng_order_payed(request, order):  # no such hook
        return None

    bad.kameng_order_payed = kameng_order_payed
    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError):
        make_app(extra_plugins=[("typo", bad)])


def test_incompatible_plugin_is_listed_but_cannot_be_enabled(plug_app, plug_testapp):
    host = plug_app.registry["kameng.plugins"]
    assert host.plugins["oldplug"].errors == ["needs kameng API >=2,<3, this is 1.0"]
    with pytest.raises(PluginError):
        set_plugin(plug_app.registry, "oldplug", enabled=True)
    assert "oldplug" not in plug_testapp.get("/").text


def test_plugin_migration_branch_created_its_table(plug_app):
    engine = plug_app.registry["kameng.engine"]
    assert "testplug_rows" in inspect(engine).get_table_names()


def test_disabled_plugin_hooks_are_not_called_and_routes_404(plug_app, plug_testapp):
    registry = plug_app.registry
    assert "testplug-block" not in plug_testapp.get("/").text
    plug_testapp.get("/-/testplug/ping", status=404)

    set_plugin(registry, "testplug", enabled=True, api_key="k" * 12)
    assert "testplug-block" in plug_testapp.get("/").text
    assert plug_testapp.get("/-/testplug/ping").json == {"pong": True, "mode": "test"}

    set_plugin(registry, "testplug", enabled=False)
    assert "testplug-block" not in plug_testapp.get("/").text
    plug_testapp.get("/-/testplug/ping", status=404)
    # its data stays
    with app_request(registry) as req:
        state = req.db.get(PluginState, "testplug")
        assert state.enabled is False and state.secrets


def test_enabled_and_disabled_hooks_run_on_that_plugin_only(plug_app):
    import kameng_testplug

    kameng_testplug.CALLS.clear()
    set_plugin(plug_app.registry, "testplug", enabled=True, api_key="k" * 12)
    set_plugin(plug_app.registry, "sandbox", enabled=True, secret="s" * 32)
    set_plugin(plug_app.registry, "testplug", enabled=False)
    assert kameng_testplug.CALLS == [("enabled", "testplug"), ("disabled", "testplug")]


def test_cannot_enable_before_required_settings(plug_app):
    with pytest.raises(PluginError, match="api_key"):
        set_plugin(plug_app.registry, "testplug", enabled=True)


@pytest.mark.parametrize("name,value,message", [
    ("api_key", "short", "must be at least ${n} characters"),
    ("retries", "many", "must be a whole number"),
    ("retries", "11", "must be at most ${n}"),
    ("mode", "prod", "must be one of: ${choices}"),
    ("endpoint", "javascript:alert(1)", "must be an http(s) URL"),
    ("verbose", "maybe", "must be true or false"),
    ("nonsense", "1", "is not a setting of this plugin"),
])
def test_settings_are_validated(plug_app, name, value, message):
    with app_request(plug_app.registry) as req:
        with pytest.raises(SettingError) as info:
            configure(req, "testplug", {name: value})
    assert info.value.field_name == name
    assert str(info.value.message) == message


def test_settings_are_typed_and_secrets_encrypted_at_rest(plug_app):
    registry = plug_app.registry
    set_plugin(registry, "testplug", api_key="very-secret-key", retries="5", mode="live", verbose="yes")
    with app_request(registry) as req:
        values = req.plugin_settings("testplug")
        state = req.db.get(PluginState, "testplug")
    assert values["api_key"] == "very-secret-key"
    assert values["retries"] == 5 and values["mode"] == "live" and values["verbose"] is True
    assert "very-secret-key" not in state.secrets and "very-secret-key" not in state.settings
    assert json.loads(state.settings) == {"retries": 5, "mode": "live", "endpoint": None, "verbose": True}
    # the ciphertext is bound to its plugin: copied to another row it does not decrypt
    keyring = registry["kameng.keyring"]
    from kameng.crypto import DecryptionError

    with pytest.raises(DecryptionError):
        keyring.decrypt(state.secrets, "plugin:sandbox")


def test_admin_plugins_page_masks_secrets_and_toggles(plug_app, plug_testapp, admin):
    registry = plug_app.registry
    set_plugin(registry, "testplug", api_key="very-secret-key")
    login(plug_testapp, *admin)
    page = plug_testapp.get("/admin/plugins")
    assert "Test plugin" in page.text and "needs kameng API" in page.text
    settings = plug_testapp.get("/admin/plugins/testplug")
    assert "very-secret-key" not in settings.text
    form = settings.forms["plugin-settings"]
    assert form["api_key"].value == "********"
    form["retries"] = "7"
    form.submit().follow()
    with app_request(registry) as req:
        values = req.plugin_settings("testplug")
    assert values["retries"] == 7 and values["api_key"] == "very-secret-key"  # mask kept the secret

    form = plug_testapp.get("/admin/plugins/testplug").forms["plugin-settings"]
    form["retries"] = "-1"
    bad = form.submit(status=400)
    assert "must be at least 0" in bad.text

    page = plug_testapp.get("/admin/plugins")
    toggle = [f for f in page.forms.values() if f.action.endswith("/admin/plugins/testplug/toggle")][0]
    toggle.submit().follow()
    assert plug_testapp.get("/-/testplug/ping").json["pong"] is True
    assert "Test plugin page" in plug_testapp.get("/admin").text  # its menu item
    with app_request(registry) as req:
        from kameng.audit import AuditEntry

        actions = [a.action for a in req.db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        details = " ".join(a.detail for a in req.db.scalars(select(AuditEntry)))
    assert "plugin.enable" in actions and "plugin.configure" in actions
    assert "very-secret-key" not in details


def test_admin_api_configures_and_toggles(plug_app, plug_testapp, admin):
    from kameng import accounts

    with app_request(plug_app.registry) as req:
        token = accounts.create_token(req.db, accounts.find_user(req.db, admin[0]), "ci")
    auth = {"Authorization": f"Bearer {token}"}
    resp = plug_testapp.patch_json("/api/v1/admin/plugins/testplug", {"enabled": True}, headers=auth, status=409)
    assert resp.json["error"]["code"] == "plugin_unavailable"
    resp = plug_testapp.patch_json("/api/v1/admin/plugins/testplug", {"settings": {"retries": "x"}},
                                   headers=auth, status=422)
    assert resp.json["error"] == {"code": "invalid_setting", "message": "must be a whole number", "field": "retries"}
    resp = plug_testapp.patch_json("/api/v1/admin/plugins/testplug",
                                   {"settings": {"api_key": "abcdefghij"}, "enabled": True}, headers=auth)
    assert resp.json["enabled"] is True and resp.json["settings"]["api_key"] == "********"
    listing = plug_testapp.get("/api/v1/admin/plugins", headers=auth).json
    assert {p["id"] for p in listing["items"]} >= {"sandbox", "testplug", "oldplug"}
    plug_testapp.patch("/api/v1/admin/plugins/testplug", "not json", headers=auth, status=400)
    plug_testapp.patch_json("/api/v1/admin/plugins/testplug", {"enabled": "yes"}, headers=auth, status=422)
    plug_testapp.get("/api/v1/admin/plugins/nope", headers=auth, status=404)


def test_disabled_plugin_page_is_404_even_for_anonymous_visitors(plug_app, plug_testapp):
    """The plugin check runs before the permission check: no login redirect
    tells a visitor that a disabled plugin exists."""
    import kameng_testplug  # noqa: F401

    plug_testapp.get("/-/testplug/admin", status=404)
    set_plugin(plug_app.registry, "testplug", enabled=True, api_key="k" * 12)
    plug_testapp.get("/-/testplug/admin", status=302)  # enabled: admins only


def test_enabling_waits_for_migrations(plug_app, monkeypatch):
    from kameng import migrate

    monkeypatch.setattr(migrate, "pending_branches", lambda engine, host: {"testplug"})
    with pytest.raises(PluginError, match="kameng migrate"):
        set_plugin(plug_app.registry, "testplug", enabled=True, api_key="k" * 12)
