"""Themes: folders of Chameleon templates and static files.

The default theme (``themes/default``, shipped as ``kameng.themes``) is
complete. Another theme is a folder ``<name>/`` with a ``theme.ini`` and any
subset of ``templates/`` and ``static/``; what it does not have comes from its
parent, and finally from the default. Themes are looked up in
``kameng.themes_dir`` (the data directory's ``themes/``) and then among the
bundled ones. The theme is chosen at start-up (``kameng.theme``).
"""
from __future__ import annotations

import configparser
import os
import re
from urllib.parse import urlsplit

from pyramid.events import BeforeRender, NewResponse
from pyramid.csrf import get_csrf_token
from pyramid.renderers import get_renderer

DEFAULT_SPEC = "kameng.themes:default/"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}\Z")


def tpl(name: str) -> str:
    """The asset spec of a core template, which the active theme may override."""
    return f"{DEFAULT_SPEC}templates/{name}"


def bundled_dir() -> str:
    import kameng.themes

    return os.path.dirname(os.path.abspath(kameng.themes.__file__))


class ThemeError(Exception):
    pass


def find_theme(name: str, extra_dir: str | None) -> str:
    if not _NAME.match(name or ""):
        raise ThemeError(f"invalid theme name {name!r}")
    for base in filter(None, (extra_dir, bundled_dir())):
        path = os.path.join(base, name)
        if os.path.isfile(os.path.join(path, "theme.ini")):
            return path
    raise ThemeError(f"theme {name!r} not found")


def theme_chain(name: str, extra_dir: str | None) -> list[str]:
    """Folders of the theme and its parents, most specific first, without the default."""
    chain = []
    while name and name != "default":
        path = find_theme(name, extra_dir)
        if path in chain:
            raise ThemeError(f"theme {name!r} is its own ancestor")
        chain.append(path)
        cp = configparser.ConfigParser()
        cp.read(os.path.join(path, "theme.ini"), encoding="utf-8")
        name = cp.get("theme", "parent", fallback="default")
    return chain


def _before_render(event: BeforeRender) -> None:
    if event.get("renderer_name", "").endswith(".pt") and "layout" not in event:
        event["layout"] = get_renderer(tpl("layout.pt")).implementation()
        event["admin_layout"] = get_renderer(tpl("admin/layout.pt")).implementation()
        event["fields_macro"] = get_renderer(tpl("admin/fields.pt")).implementation()
        request = event.get("request")
        if request is not None:
            from kameng.admin.views import admin_sections

            event["csrf_token"] = lambda: get_csrf_token(request)
            event["admin_sections"] = lambda: admin_sections(request)
            event["slot"] = lambda name: _slot_html(request, name)


def _slot_html(request, slot: str) -> list[str]:
    """Escaped HTML fragments enabled plugins put into a storefront slot."""
    blocks = []
    for result in request.hooks.kameng_storefront_blocks(request=request, slot=slot):
        blocks.extend(result or ())
    return [b.html for b in sorted(blocks, key=lambda b: b.order)]


# form-action also governs where a form's POST may redirect: payment
# gateways answer a checkout POST with a redirect to their own HTTPS pages,
# and the shop's public URL may differ from the host the admin used.
CSP = ("default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'self'; form-action 'self' {public} https:; frame-ancestors 'none'")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def _security_headers(event: NewResponse) -> None:
    h = event.response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    if (event.response.content_type or "").startswith("text/html"):
        public = _origin(event.request.registry.settings.get("kameng.base_url", ""))
        h.setdefault("Content-Security-Policy", CSP.format(public=public).replace("  ", " "))


def includeme(config):
    settings = config.get_settings()
    chain = theme_chain(settings.get("kameng.theme", "default"), settings.get("kameng.themes_dir"))
    plugin_packages = [p.package for p in config.registry["kameng.plugins"].plugins.values() if p.package]
    for path in reversed(chain):  # the most specific theme is registered last and wins
        overrides = [(f"{DEFAULT_SPEC}templates/", os.path.join(path, "templates")),
                     (f"{DEFAULT_SPEC}static/", os.path.join(path, "static"))]
        overrides += [(f"{pkg}:templates/", os.path.join(path, "plugins", pkg, "templates"))
                      for pkg in plugin_packages]
        for spec, folder in overrides:
            if os.path.isdir(folder):
                config.override_asset(spec, folder + os.sep)
    config.add_static_view("static", f"{DEFAULT_SPEC}static/", cache_max_age=3600)
    config.add_subscriber(_before_render, BeforeRender)
    config.add_subscriber(_security_headers, NewResponse)
