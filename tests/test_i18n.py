"""Translations: every message has a Chinese translation, the compiled
catalogs are current, pages and Python-side messages come out in the chosen
language, and ${name} mappings interpolate.

Catalogs live in kameng/locale; ``python kameng/locale/update.py`` re-extracts,
merges and compiles them.
"""
from __future__ import annotations

import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kameng.testing import ADMIN_EMAIL, app_request, login

pytest.importorskip("lingua")
pytest.importorskip("babel")

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "kameng" / "locale"
PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
UPDATE_HINT = "run `python kameng/locale/update.py`, translate, run it again"


def _load_update():
    spec = importlib.util.spec_from_file_location("kameng_locale_update", LOCALE / "update.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


update = _load_update()


@pytest.fixture(scope="module")
def extracted():
    """The template catalog lingua extracts now from the templates and Python sources."""
    return update.extract()


@pytest.fixture(scope="module")
def zh_po():
    return update.read_po(update.po_path("zh_CN"), "zh_CN")


def _translations(catalog) -> dict:
    return {(m.id, m.context): m.string for m in catalog
            if m.id and m.string and not m.fuzzy}


# -- catalogs ------------------------------------------------------------------------------


def test_extraction_finds_templates_and_python(extracted, tmp_path):
    ids = update.message_ids(extracted)
    locations = {loc for m in extracted for loc, _ in m.locations}
    # a template string, a Python string, one from the sandbox plugin's template and code
    assert {"Sign in", "Wrong email or password.", "must be at least ${n}",
            "Simulate a successful payment", "Notify signing secret"} <= ids
    assert any(loc.endswith(".pt") for loc in locations)
    assert "kameng/types.py" in locations and "kameng/errors.py" in locations
    assert any(loc.startswith("plugins/sandbox/kameng_sandbox/templates/") for loc in locations)
    # the extracted template can be written out and read back as a .pot
    pot = tmp_path / "kameng.pot"
    pot.write_bytes(update.render_po(extracted))
    assert update.message_ids(update.read_po(pot)) == ids


def test_every_message_has_a_chinese_translation(extracted, zh_po):
    translated = _translations(zh_po)
    missing = sorted(m.id for m in extracted if m.id and (m.id, m.context) not in translated)
    assert not missing, f"no zh_CN translation (or fuzzy) for {missing}; {UPDATE_HINT}"


def test_pot_is_current(extracted):
    in_pot = update.message_ids(update.read_po(update.POT))
    assert in_pot == update.message_ids(extracted), UPDATE_HINT


@pytest.mark.parametrize("lang", update.LANGUAGES)
def test_po_has_every_extracted_message(extracted, lang):
    catalog = update.read_po(update.po_path(lang), lang)
    assert update.message_ids(extracted) <= update.message_ids(catalog), UPDATE_HINT


def test_chinese_translations_keep_placeholders(zh_po):
    wrong = [(m.id, m.string) for m in zh_po if m.id and m.string
             and sorted(PLACEHOLDER.findall(m.id)) != sorted(PLACEHOLDER.findall(m.string))]
    assert not wrong


def test_chinese_translations_are_chinese(zh_po):
    # catches an English text pasted as its own translation
    not_chinese = [m.id for m in zh_po if m.id and m.string and not re.search(r"[\u4e00-\u9fff]", m.string)]
    assert not not_chinese


@pytest.mark.parametrize("lang", update.LANGUAGES)
def test_mo_is_compiled_from_the_po(lang):
    from babel.messages.mofile import read_mo

    po = update.read_po(update.po_path(lang), lang)
    with open(update.mo_path(lang), "rb") as fh:
        mo = read_mo(fh)
    assert _translations(mo) == _translations(po), f"{update.mo_path(lang)} is stale; {UPDATE_HINT}"


def test_update_script_has_nothing_to_do():
    # the same as `python kameng/locale/update.py --check`
    stale = [str(p.relative_to(ROOT)) for p in update.stale_files()]
    assert not stale, f"out of date: {stale}; {UPDATE_HINT}"


# -- templates: visible text is marked ------------------------------------------------------

EXPR = re.compile(r"\$\{(?:[^{}]|\{[^{}]*\})*\}")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
TRANSLATABLE_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label")
# not words to translate: a language switch label, a time zone
ALLOWED_TEXT = {"EN", "UTC"}


class _Unmarked(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.found: list[str] = []

    def _translated(self):
        return any(t for _, t in self.stack)

    def _check_attributes(self, tag, attrs):
        attrs = dict(attrs)
        marked = {a.strip().split()[0] for a in (attrs.get("i18n:attributes") or "").split(";") if a.strip()}
        for name in TRANSLATABLE_ATTRIBUTES:
            value = EXPR.sub("", attrs.get(name) or "")
            if re.search(r"[A-Za-z]", value) and name not in marked:
                self.found.append(f"<{tag} {name}={attrs[name]!r}>")

    def handle_starttag(self, tag, attrs):
        self._check_attributes(tag, attrs)
        if tag in VOID:
            return
        names = dict(attrs)
        self.stack.append((tag, "i18n:translate" in names or "tal:content" in names
                           or "tal:replace" in names or "content" in names and tag.startswith("tal:")))

    def handle_startendtag(self, tag, attrs):
        self._check_attributes(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._translated() or (self.stack and self.stack[-1][0] in ("script", "style")):
            return
        text = EXPR.sub("", data).strip()
        words = re.findall(r"[A-Za-z][A-Za-z'.-]*", text)
        if [w for w in words if w not in ALLOWED_TEXT]:
            self.found.append(text)


TEMPLATES = sorted([*ROOT.glob("themes/*/templates/**/*.pt"),
                    *ROOT.glob("plugins/*/kameng_*/templates/**/*.pt")])


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_template_text_is_marked_for_translation(template):
    source = template.read_text(encoding="utf-8")
    assert 'i18n:domain="kameng"' in source
    parser = _Unmarked()
    parser.feed(source)
    parser.close()
    assert not parser.found, f"text without i18n:translate (or attributes without i18n:attributes): {parser.found}"


# -- rendering -----------------------------------------------------------------------------


def _set_shop_language(registry, lang):
    from kameng import shop

    with app_request(registry) as req:
        shop.save(req.db, {"default_language": lang})


def test_test_settings_default_to_english(testapp):
    # tests/ run with pyramid.default_locale_name = en, which is the shop's
    # default language while the admin has not chosen one
    resp = testapp.get("/login")
    assert '<html lang="en"' in resp.text
    assert "Sign in" in resp.text and "登录" not in resp.text


def test_shop_default_language_is_chinese(testapp, registry):
    _set_shop_language(registry, "zh_CN")
    resp = testapp.get("/login")
    assert '<html lang="zh-CN"' in resp.text
    assert "登录" in resp.text and "密码" in resp.text and "邮箱" in resp.text
    assert "Sign in" not in resp.text and "Password" not in resp.text


@pytest.fixture(scope="module")
def zh_default_app(make_app):
    """An app configured like `kameng init` writes it (pyramid.default_locale_name = zh_CN)."""
    return make_app(**{"pyramid.default_locale_name": "zh_CN"})


def test_a_new_shop_speaks_chinese(zh_default_app):
    import webtest

    resp = webtest.TestApp(zh_default_app).get("/login")
    assert "登录" in resp.text and "Sign in" not in resp.text
    assert "暂无在售商品。" in webtest.TestApp(zh_default_app).get("/").text


def test_locale_parameter_and_cookie_choose_english(testapp, registry):
    _set_shop_language(registry, "zh_CN")
    resp = testapp.get("/login", params={"_LOCALE_": "en"})
    assert "Sign in" in resp.text and "登录" not in resp.text
    testapp.set_cookie("_LOCALE_", "en")
    resp = testapp.get("/login")
    assert "Sign in" in resp.text and "登录" not in resp.text


def test_language_switch_sets_the_cookie(testapp):
    resp = testapp.get("/language/zh_CN", params={"next": "/login"})
    assert resp.status_int == 302 and resp.location.endswith("/login")
    assert "登录" in resp.follow().text
    resp = testapp.get("/language/en", params={"next": "/login"})
    assert "Sign in" in resp.follow().text


def test_unknown_locale_falls_back_to_the_shop_default(testapp, registry):
    _set_shop_language(registry, "zh_CN")
    assert "登录" in testapp.get("/login", params={"_LOCALE_": "fr"}).text


def test_failed_login_message_is_translated(testapp, admin):
    testapp.set_cookie("_LOCALE_", "zh_CN")
    resp = login(testapp, ADMIN_EMAIL, "not-the-password")
    assert resp.status_int == 400
    assert "邮箱或密码错误。" in resp.text
    assert "Wrong email or password." not in resp.text


def test_failed_login_message_in_english(testapp, admin):
    testapp.set_cookie("_LOCALE_", "en")
    resp = login(testapp, ADMIN_EMAIL, "not-the-password")
    assert "Wrong email or password." in resp.text


def test_error_pages_and_api_errors_are_translated(testapp):
    testapp.set_cookie("_LOCALE_", "zh_CN")
    assert "您访问的内容不存在。" in testapp.get("/nothing-here", status=404).text
    assert testapp.get("/api/v1/nothing-here", status=404).json == {
        "error": {"code": "not_found", "message": "您访问的内容不存在。"}}


def test_admin_menu_flash_and_field_errors_in_chinese(admin_app):
    admin_app.set_cookie("_LOCALE_", "zh_CN")
    page = admin_app.get("/admin/settings")
    for text in ("商城设置", "控制台", "插件管理", "后台任务", "商城名称", "默认语言", "保存", "退出登录"):
        assert text in page.text
    form = page.forms["shop-settings"]
    form["name"] = "x" * 81
    resp = form.submit(status=400)
    assert "不能超过 80 个字符" in resp.text
    form = resp.forms["shop-settings"]
    form["name"] = "卡盟测试店"
    resp = form.submit(status=302).follow()
    assert "设置已保存。" in resp.text


# -- Python-side messages with mappings ------------------------------------------------------


@pytest.mark.parametrize(("lang", "expected"), [
    ("zh_CN", "不能超过 80 个字符"),
    ("en", "must be at most 80 characters"),
])
def test_setting_error_interpolates_in_the_chosen_language(registry, lang, expected):
    from kameng import shop
    from kameng.types import SettingError

    with app_request(registry) as req:
        req.cookies["_LOCALE_"] = lang
        with pytest.raises(SettingError) as info:
            shop.save(req.db, {"name": "x" * 81})
        assert info.value.field_name == "name"
        assert req.localizer.translate(info.value.message) == expected


def test_mappings_interpolate_in_chinese(registry):
    from kameng.i18n import _, translate
    from kameng.types import SettingError, SettingField

    with app_request(registry) as req:
        req.cookies["_LOCALE_"] = "zh_CN"
        with pytest.raises(SettingError) as info:
            SettingField("retries", "Retries", type="int", min_value=3).parse("1")
        assert req.localizer.translate(info.value.message) == "不能小于 3"
        with pytest.raises(SettingError) as info:
            SettingField("mode", "Mode", type="choice", choices=("live", "test")).parse("x")
        assert req.localizer.translate(info.value.message) == "必须是以下之一：live, test"
        assert translate(req, "Plugin ${id} enabled.", {"id": "sandbox"}) == "插件 sandbox 已启用。"
        assert req.localizer.translate(_("Payment ${no} created.", mapping={"no": "P1"})) == "已创建支付单 P1。"
