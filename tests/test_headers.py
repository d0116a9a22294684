"""Security headers on every kind of page, and the session cookie's flags
(SECURITY.md #61, #73).

Every page the matrix's roles can open (``tests/security_routes.py``), the
error pages and the API's answers carry ``nosniff``, a frame ban and a
Referrer-Policy; every HTML page a Content-Security-Policy without
``unsafe-inline`` or ``unsafe-eval`` (and, so that it never needs them, no
inline script, style or event handler of its own).
"""
from __future__ import annotations

import re

import pytest
import webtest

from security_helpers import ROLES, build_world, inline_code, route_path, text_of
from security_routes import ROWS, resolve

SAFE_REFERRER = {"same-origin", "strict-origin", "strict-origin-when-cross-origin", "no-referrer"}


def csp_directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def check_headers(resp, where: str) -> list[str]:
    """What is missing from one response's headers."""
    h, problems = resp.headers, []
    if h.get("X-Content-Type-Options") != "nosniff":
        problems.append("X-Content-Type-Options nosniff")
    if h.get("Referrer-Policy") not in SAFE_REFERRER:
        problems.append(f"Referrer-Policy (got {h.get('Referrer-Policy')!r})")
    csp = csp_directives(h.get("Content-Security-Policy", ""))
    framed_ok = h.get("X-Frame-Options") in ("DENY", "SAMEORIGIN") or csp.get("frame-ancestors") in (
        ["'none'"], ["'self'"])
    if not framed_ok:
        problems.append("X-Frame-Options or frame-ancestors")
    if (resp.content_type or "").startswith("text/html"):
        if not csp:
            problems.append("Content-Security-Policy")
        for directive, sources in csp.items():
            if {"'unsafe-inline'", "'unsafe-eval'", "*"} & set(sources):
                problems.append(f"CSP {directive} allows {sources}")
        for directive in ("default-src", "script-src", "object-src", "frame-ancestors", "base-uri"):
            if directive not in csp:
                problems.append(f"CSP without {directive}")
        if csp.get("object-src") != ["'none'"] or csp.get("frame-ancestors") != ["'none'"]:
            problems.append("CSP object-src/frame-ancestors not 'none'")
        problems += inline_code(resp)
    return [f"{where}: {p}" for p in problems]


def test_every_page_and_answer_carries_the_security_headers(app):
    """Every GET of the matrix, as every role: pages, redirects, 403s and
    404s, JSON answers and errors alike."""
    world = build_world(app)
    problems, html_pages = [], set()
    for row in ROWS:
        if "GET" not in row.expect:
            continue
        for role in ROLES:
            path = route_path(world.registry, row.route, **resolve(world, row))
            resp = world.clients[role].send("GET", path)
            problems += check_headers(resp, f"GET {path} as {role} ({resp.status_int})")
            if (resp.content_type or "").startswith("text/html") and resp.status_int == 200:
                html_pages.add(row.route)
    assert not problems, "\n".join(problems)
    assert {"home", "admin.home", "admin.order", "order", "account", "admin.stock"} <= html_pages


def test_error_pages_carry_the_headers_and_no_details(app, monkeypatch):
    """404, 403, 401, 400 (CSRF) and 500 pages, HTML and JSON; a 500 shows
    neither the exception's text nor a traceback."""
    world = build_world(app)
    buyer, visitor = world.clients["buyer_b"], world.clients["anonymous"]
    answers = {
        "404 page": visitor.send("GET", "/no/such/page"),
        "404 JSON": visitor.send("GET", "/api/v1/no/such"),
        "403 page": buyer.send("GET", "/admin/orders"),
        "403 JSON": buyer.send("GET", "/api/v1/admin/orders"),
        "401 JSON": visitor.send("GET", "/api/v1/admin/orders"),
        "CSRF page": visitor.send("POST", "/login", form={}, csrf=False),
        "CSRF JSON": buyer.send("POST", "/api/v1/orders", json_body={}, csrf=False),
    }

    secret = "internal-detail-4711-should-not-show"

    def boom(*a, **kw):
        raise RuntimeError(f"database password is {secret}")

    monkeypatch.setattr("kameng.storefront.views.Shelf", boom)
    monkeypatch.setattr("kameng.api.catalog._public_categories", boom)
    answers["500 page"] = visitor.send("GET", "/")
    answers["500 JSON"] = visitor.send("GET", "/api/v1/categories")
    problems = []
    for where, resp in answers.items():
        problems += check_headers(resp, where)
        body = text_of(resp)
        if secret in body or "Traceback" in body or "RuntimeError" in body:
            problems.append(f"{where}: shows the error's details")
    assert answers["500 page"].status_int == 500 and answers["500 JSON"].json["error"]["code"] == "server_error"
    assert not problems, "\n".join(problems)


def test_downloads_are_attachments_and_never_cached(app):
    world = build_world(app)
    admin = world.clients["admin"]
    for method, path in (("GET", "/admin/orders/export.csv"), ("POST", "/admin/skus/SEC1/export")):
        resp = admin.send(method, path)
        assert resp.status_int == 200 and resp.content_type == "text/csv", path
        assert resp.headers["Content-Disposition"].startswith("attachment;"), path
        assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Content-Type-Options"] == "nosniff"
    # pages that show card keys are not kept by the browser or a proxy either
    for method, path, who in (("GET", f"/orders/{world['order_no']}", "buyer_a"),
                              ("GET", f"/api/v1/orders/{world['order_no']}", "buyer_a"),
                              ("POST", f"/admin/keys/{world['sold_key_id']}/reveal", "admin"),
                              ("POST", f"/admin/orders/{world['order_no']}/reveal", "admin")):
        resp = world.clients[who].send(method, path)
        assert resp.status_int == 200 and resp.headers.get("Cache-Control") == "no-store", path


# -- the session cookie --------------------------------------------------------------------------


def _session_cookie(resp) -> str:
    cookies = [v for k, v in resp.headerlist if k == "Set-Cookie" and v.startswith("kameng_session=")]
    assert cookies, resp.headerlist
    return cookies[-1]


def _flags(cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}


def _samesite(cookie: str) -> str:
    match = re.search(r"samesite=(\w+)", cookie, re.I)
    return match[1].lower() if match else ""


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_session_cookie_flags(app, scheme):
    """HttpOnly and SameSite always; Secure whenever the request came over
    HTTPS (waitress sets the scheme behind the trusted proxy) — on the
    visitor's first page and on signing in."""
    world = build_world(app)
    env = {"wsgi.url_scheme": scheme, "HTTP_HOST": "localhost"}
    web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "10.9.1.1", **env})
    first = web.get("/login")
    form = first.forms["login-form"]
    form["email"], form["password"] = "buyer.a@example.com", "buyer-a-password-1"
    signed_in = form.submit(headers={"Origin": f"{scheme}://localhost"})
    assert signed_in.status_int == 302, signed_in.text[:300]
    for resp in (first, signed_in):
        cookie = _session_cookie(resp)
        assert {"httponly", "path"} <= _flags(cookie) and _samesite(cookie) in ("lax", "strict"), cookie
        assert ("secure" in _flags(cookie)) == (scheme == "https"), cookie
    lang = web.get("/language/en")
    locale = [v for k, v in lang.headerlist if k == "Set-Cookie" and v.startswith("_LOCALE_=")][0]
    assert "httponly" in _flags(locale) and ("secure" in _flags(locale)) == (scheme == "https")
    assert world.user_ids  # the world's accounts exist


def test_secure_cookies_setting_makes_the_cookie_secure_over_http(make_app):
    app = make_app(**{"kameng.secure_cookies": "true"})
    resp = webtest.TestApp(app).get("/login")
    assert "secure" in _flags(_session_cookie(resp))


def test_signing_in_issues_a_new_session_and_signing_out_ends_it(app):
    """A session cookie planted before the sign-in never becomes signed in;
    a copy of the signed-in cookie opens nothing after the sign-out."""
    world = build_world(app)
    web = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "10.9.1.2"})
    page = web.get("/login")
    planted = web.cookies["kameng_session"]
    form = page.forms["login-form"]
    form["email"], form["password"] = "buyer.b@example.com", "buyer-b-password-2"
    assert form.submit().status_int == 302
    signed_in = web.cookies["kameng_session"]
    assert signed_in != planted
    assert web.get("/account").status_int == 200
    for cookie, status in ((planted, 302), (signed_in, 200)):
        other = webtest.TestApp(app)
        other.set_cookie("kameng_session", cookie)
        assert other.get("/account", expect_errors=True).status_int == status
    token = web.get("/account").html.find("input", {"name": "csrf_token"})["value"]
    assert web.post("/logout", {"csrf_token": token}).status_int == 302
    replay = webtest.TestApp(app)
    replay.set_cookie("kameng_session", signed_in)
    resp = replay.get("/account", expect_errors=True)
    assert resp.status_int == 302 and "/login" in resp.location
    # the account's API token is not a session: it still authenticates (403, not 401)
    assert world.clients["buyer_b"].send("GET", "/api/v1/admin/orders", bearer=True).status_int == 403
