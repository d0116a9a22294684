"""Browser tests: Debian's chromium driven through Playwright's sync API.

Every test in this folder is marked ``browser``; run only these with
``pytest tests/browser`` or leave them out with ``-m "not browser"``.
The whole folder is skipped (with the reason shown by ``-rs``) where
chromium or the ``playwright`` package is missing. ``KAMENG_CHROMIUM``
names another chromium binary; Playwright's own browser download is never
used.

The app runs in-process under waitress on 127.0.0.1, one server for the
session, with ``kameng.base_url`` set to that server's address: the URLs
the app sends a browser to (a gateway's pay page, built by
``request.public_url``) must lead back to it. The page refuses any request
to another host, so nothing leaves the machine.

Screenshots go to ``test-artifacts/screenshots/<name>.png`` (gitignored).
Those used by the documentation are also written to ``docs/screenshots/``
when ``KAMENG_DOCS_SCREENSHOTS=1`` is set, so an ordinary run never
rewrites committed files (fonts differ between machines, and so do the
pixels).
"""
from __future__ import annotations

import os
import pathlib
import shutil
from urllib.parse import urlsplit

import pytest

from kameng.testing import LiveServer, free_port

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
LOCALE = "zh-CN"
TIMEZONE = "Asia/Shanghai"
TIMEOUT_MS = 15_000
LOCAL_HOSTS = {"127.0.0.1"}
ASSET_TYPES = {"stylesheet", "script", "image", "font"}


def pytest_collection_modifyitems(config, items):
    # this hook sees the items of the whole session: mark only this folder's
    for item in items:
        if HERE in pathlib.Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def live_server_port():
    return free_port()


@pytest.fixture(scope="session")
def app(make_app, live_server_port):
    """kameng.testing's app, but with kameng.base_url on the live server
    (there it is http://localhost, which a browser on 127.0.0.1 cannot follow)."""
    return make_app(**{"kameng.base_url": f"http://127.0.0.1:{live_server_port}"})


@pytest.fixture(scope="session")
def live_server(app, live_server_port):
    """One server for the folder; the database is still emptied after every test."""
    server = LiveServer(app, live_server_port).start()
    yield server
    server.stop()


def chromium_path() -> str:
    return os.environ.get("KAMENG_CHROMIUM") or DEFAULT_CHROMIUM


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the session (skips the test where it cannot run)."""
    path = chromium_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"browser tests need chromium at {path} (set KAMENG_CHROMIUM to another binary)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"browser tests need the playwright package ({exc})")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:  # a chromium that does not start is a broken machine, not a failing test
        pw.stop()
        pytest.skip(f"chromium at {path} did not start: {exc}")
    yield browser
    browser.close()
    pw.stop()


class PageProblems:
    """What a page did wrong on the side: requests to other hosts, assets
    that did not load, script errors, console errors (a CSP violation shows
    up there). A page itself answering 400 (a form with an error) is fine."""

    def __init__(self):
        self.foreign_requests: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.broken_assets: list[str] = []

    def check(self):
        assert not self.foreign_requests, f"requests left 127.0.0.1: {self.foreign_requests}"
        assert not self.broken_assets, f"stylesheets, scripts, images or fonts that failed: {self.broken_assets}"
        assert not self.page_errors, f"script errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


@pytest.fixture
def page_problems():
    return PageProblems()


@pytest.fixture
def page(browser, live_server, page_problems):
    """A fresh context (no cookies) and page on the live server, 1280x800,
    zh-CN; ``page.goto("/admin")`` is relative to the server."""
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT, locale=LOCALE,
                                  timezone_id=TIMEZONE, service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)

    def only_local(route):
        host = urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS or route.request.url.startswith(("data:", "about:")):
            route.continue_()
        else:
            page_problems.foreign_requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("pageerror", lambda exc: page_problems.page_errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and not _ignorable(msg)
            and page_problems.console_errors.append(f"{page.url}: {msg.text}"))
    page.on("response", lambda resp: resp.status >= 400 and resp.request.resource_type in ASSET_TYPES
            and not resp.url.endswith("/favicon.ico")
            and page_problems.broken_assets.append(f"{resp.status} {resp.url}"))
    # ERR_ABORTED: the page navigated on while the asset was loading (a click
    # that submits a form at once); that is not an asset that failed
    page.on("requestfailed", lambda req: req.resource_type in ASSET_TYPES and req.failure != "net::ERR_ABORTED"
            and page_problems.broken_assets.append(f"{req.failure} {req.url}"))
    yield page
    context.close()
    page_problems.check()


def _ignorable(msg) -> bool:
    # a failed load is reported as a console error too: the response and
    # requestfailed handlers judge those (a 400 page after a form error is fine)
    return msg.text.startswith("Failed to load resource")


def save_screenshot(page, name: str, docs: bool = False) -> pathlib.Path:
    """A viewport screenshot to test-artifacts/screenshots/<name>.png; with
    ``docs=True`` also to docs/screenshots/<name>.png when
    KAMENG_DOCS_SCREENSHOTS=1."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False, animations="disabled", caret="hide")
    if docs and os.environ.get("KAMENG_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{name}.png")
    return path


@pytest.fixture
def screenshot(page):
    """``screenshot(name, docs=False)`` saves the current page's viewport."""
    return lambda name, docs=False: save_screenshot(page, name, docs=docs)
