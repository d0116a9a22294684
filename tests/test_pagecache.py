"""The anonymous page cache (kameng/pagecache.py): a guest's home, category
and product pages come from memory for a few seconds, and nothing personal
is ever cached or served from it."""
from __future__ import annotations

import pytest
import webtest
from sqlalchemy import update

from kameng import pagecache
from kameng.catalog.models import Product
from kameng.testing import add_card_sku, app_request, login


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(pagecache.time, "monotonic", c)
    return c


@pytest.fixture
def cached_app(make_app):
    return make_app(**{"kameng.storefront.cache_seconds": "2"})


@pytest.fixture
def guest(cached_app):
    return webtest.TestApp(cached_app)


@pytest.fixture
def product_id(cached_app):
    add_card_sku(cached_app.registry, code="PC1", name="Cached card", keys=3)
    with app_request(cached_app.registry) as req:
        return req.db.scalar(Product.__table__.select().with_only_columns(Product.id))


def rename(registry, product_id, name):
    with app_request(registry) as req:
        req.db.execute(update(Product).where(Product.id == product_id).values(name=name))


def test_a_guest_gets_the_cached_page_until_it_expires(guest, cached_app, product_id, clock):
    assert "Cached card" in guest.get(f"/p/{product_id}").text
    rename(cached_app.registry, product_id, "Renamed card")
    assert "Cached card" in guest.get(f"/p/{product_id}").text  # from memory
    clock.now += 2.5
    # expired: this visitor renders it again
    assert "Renamed card" in guest.get(f"/p/{product_id}").text
    assert "Renamed card" in guest.get(f"/p/{product_id}").text


def test_the_page_sets_no_cookie_for_a_guest(guest, product_id, clock):
    for path in ("/", f"/p/{product_id}"):
        resp = guest.get(path)
        assert "Set-Cookie" not in resp.headers, path
    assert not guest.cookies


def test_while_one_visitor_renders_the_others_get_the_stale_copy(cached_app, product_id, clock):
    cache = cached_app.registry["kameng.page_cache"]
    key = ("localhost:80", f"/p/{product_id}", "")
    cache.put(key, 200, [("Content-Type", "text/html; charset=UTF-8")], b"old")
    clock.now += 2.5
    assert cache.get(key) is None  # the first one after expiry renders
    assert cache.get(key)[2] == b"old"  # the rest are served meanwhile
    clock.now += cache.STALE_GRACE
    assert cache.get(key) is None  # and not forever


def test_signed_in_visitors_never_get_or_leave_cached_pages(cached_app, product_id, registry, clock):
    from kameng.accounts import create_user

    with app_request(cached_app.registry) as req:
        create_user(req.db, "member@example.com", "member-password-1", role="buyer")
    member = webtest.TestApp(cached_app)
    login(member, "member@example.com", "member-password-1")
    page = member.get(f"/p/{product_id}")
    assert "member@example.com" in page.text or page.html.select_one(".nav-account") is not None
    guest = webtest.TestApp(cached_app)
    assert guest.get(f"/p/{product_id}").html.select_one(".nav-account") is None  # not the member's copy
    rename(cached_app.registry, product_id, "Renamed card")
    assert "Renamed card" in member.get(f"/p/{product_id}").text  # a session: always rendered
    assert "Cached card" in guest.get(f"/p/{product_id}").text


def test_languages_are_cached_apart(cached_app, product_id, clock):
    zh, en = webtest.TestApp(cached_app), webtest.TestApp(cached_app)
    zh.set_cookie("_LOCALE_", "zh_CN")
    en.set_cookie("_LOCALE_", "en")
    assert 'lang="zh-CN"' in zh.get("/").text
    assert 'lang="en"' in en.get("/").text
    assert 'lang="zh-CN"' in zh.get("/").text


def test_an_admin_change_empties_the_cache_at_once(cached_app, product_id, clock):
    guest = webtest.TestApp(cached_app)
    assert "Cached card" in guest.get(f"/p/{product_id}").text
    rename(cached_app.registry, product_id, "Renamed card")
    admin = webtest.TestApp(cached_app)
    admin.post("/admin/anything", status="*")  # any unsafe admin request
    assert "Renamed card" in guest.get(f"/p/{product_id}").text


def test_a_hidden_product_is_not_served_from_the_cache(cached_app, product_id, clock):
    guest = webtest.TestApp(cached_app)
    guest.get(f"/p/{product_id}", status=200)
    with app_request(cached_app.registry) as req:
        req.db.execute(update(Product).where(Product.id == product_id).values(visible=False))
    clock.now += 2.5
    guest.get(f"/p/{product_id}", status=404)
    guest.get(f"/p/{product_id}", status=404)  # no stale copy after the 404


def test_only_storefront_pages_are_cached(cached_app, product_id, clock):
    cache = cached_app.registry["kameng.page_cache"]
    guest = webtest.TestApp(cached_app)
    guest.get("/query")
    guest.get("/login")
    guest.get("/healthz")
    assert not cache.entries
    guest.get(f"/p/{product_id}?sku=PC1")
    assert not cache.entries  # the login form gave this visitor a session (its CSRF token)
    webtest.TestApp(cached_app).get(f"/p/{product_id}?sku=PC1")
    assert list(cache.entries) == [("localhost:80", f"/p/{product_id}?sku=PC1", "")]


def test_zero_turns_it_off(make_app):
    app = make_app(**{"kameng.storefront.cache_seconds": "0"})
    assert "kameng.page_cache" not in app.registry
