"""A theme overrides any template; what it lacks comes from its parent and
finally from the default theme."""
import pytest
import webtest

from kameng.theming import ThemeError, theme_chain


@pytest.fixture
def themes_dir(tmp_path):
    base = tmp_path / "themes"
    (base / "dark" / "templates").mkdir(parents=True)
    (base / "dark" / "theme.ini").write_text("[theme]\nname = dark\n")
    (base / "dark" / "templates" / "login.pt").write_text(
        '<!DOCTYPE html>\n<html metal:use-macro="layout.macros[\'layout\']">'
        '<metal:c fill-slot="content"><p id="dark-login">dark login</p></metal:c></html>')
    (base / "dark-child" / "templates").mkdir(parents=True)
    (base / "dark-child" / "theme.ini").write_text("[theme]\nname = dark-child\nparent = dark\n")
    (base / "dark-child" / "static").mkdir()
    (base / "dark-child" / "static" / "kameng.css").write_text("body { color: #eee; }")
    (base / "loop" / "templates").mkdir(parents=True)
    (base / "loop" / "theme.ini").write_text("[theme]\nname = loop\nparent = loop\n")
    return str(base)


def test_child_theme_inherits_parent_overrides_and_default(make_app, themes_dir):
    app = webtest.TestApp(make_app(**{"kameng.theme": "dark-child", "kameng.themes_dir": themes_dir}))
    assert 'id="dark-login"' in app.get("/login").text  # from the parent theme
    assert "No goods are on sale yet." in app.get("/").text  # from the default theme
    assert app.get("/static/kameng.css").text == "body { color: #eee; }"  # its own static file


def test_bad_theme_names(themes_dir):
    with pytest.raises(ThemeError, match="invalid theme name"):
        theme_chain("../etc", themes_dir)
    with pytest.raises(ThemeError, match="not found"):
        theme_chain("nothing", themes_dir)
    with pytest.raises(ThemeError, match="its own ancestor"):
        theme_chain("loop", themes_dir)
    assert theme_chain("default", themes_dir) == []
