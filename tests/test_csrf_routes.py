"""CSRF on every unsafe route (SECURITY.md #65): the route list is the
app's own (Pyramid's introspector), the requests are the authorisation
matrix's (``tests/security_routes.py``).

- An HTML form post with a valid session but no token, a forged token, or
  the right token from another origin over HTTPS: 400, and not one row of
  the database changes.
- An API call riding on the session cookie without the ``X-CSRF-Token``
  header: 400 ``csrf_failed``, nothing changes; a bearer token needs none.
- The only unsafe routes without the check are the signed entry points:
  gateway notifies and supplier callbacks (and the docking API, which a
  session cannot use at all). A few routes for API callers run the check
  themselves, only on a request that carries the session cookie
  (``SESSION_CHECKED``): the rules above hold for them too.
"""
from __future__ import annotations

from urllib.parse import urlencode

import pytest

from security_helpers import (CSRF_MESSAGE, LOGIN, UNSAFE, build_world, changed_tables, db_fingerprint,
                              route_path, routes, text_of)
from security_routes import BY_ROUTE, resolve

#: non-API routes that take requests without a CSRF token, by design: the
#: caller is a payment provider or a supplier, and the request is signed
SIGNED_ENTRY_POINTS = {"pay.notify", "supplier.callback"}
#: GET-only pages that opt out (they change nothing)
EXEMPT_READS = {"pay.return"}
#: the docking API: authenticated by a request signature, never by the session
DOCK_API = {"dock.goods", "dock.goods.one", "dock.balance", "dock.orders", "dock.order"}
#: non-API routes that opt out of Pyramid's check and check the token and the
#: origin themselves when the request rides on the session cookie (a caller
#: without the cookie, such as an app fetching a captcha, needs no token)
SESSION_CHECKED = {"antifraud.captcha.new"}


def _unsafe_html_routes(registry):
    return {name: info for name, info in routes(registry).items()
            if not info.api and set(info.methods) & set(UNSAFE) and name not in SIGNED_ENTRY_POINTS}


def _unsafe_api_routes(registry):
    return {name: info for name, info in routes(registry).items()
            if info.api and set(info.methods) & set(UNSAFE) and name not in DOCK_API}


def test_only_the_signed_entry_points_skip_the_csrf_check(app):
    found = routes(app.registry)
    exempt = {name for name, info in found.items() if not info.api and info.csrf_exempt}
    assert exempt == SIGNED_ENTRY_POINTS | EXEMPT_READS | (SESSION_CHECKED & set(found))
    for name in EXEMPT_READS:
        assert not set(routes(app.registry)[name].methods) & set(UNSAFE), name


def _path(world, name, bearer=False):
    row = BY_ROUTE[name]
    path = route_path(world.registry, name, **resolve(world, row, bearer))
    return path + ("?" + urlencode(row.query) if row.query else "")


def _form(world, name, role):
    return {k: v.replace("{role}", role) if isinstance(v, str) else v for k, v in BY_ROUTE[name].body.items()}


def test_every_unsafe_form_post_needs_the_token_and_the_origin(app):
    world = build_world(app)
    evil = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"}
    checked = []
    for name, info in sorted(_unsafe_html_routes(world.registry).items()):
        row = BY_ROUTE[name]
        for method in (m for m in info.methods if m in UNSAFE):
            # the admin may post everywhere; a visitor wherever no sign-in stops it first
            roles = ["admin"] + (["anonymous"] if row.expect[method]["anonymous"] != LOGIN else [])
            for role in roles:
                client, path, form = world.clients[role], _path(world, name), _form(world, name, role)
                before = db_fingerprint(world.registry)
                attempts = {
                    "no token": client.send(method, path, form=form, csrf=False),
                    "a forged token": client.send(method, path, form={**form, "csrf_token": "forged-token"},
                                                  csrf=False),
                    "another origin": client.send(method, path, form=form, environ=evil,
                                                  headers={"Origin": "https://evil.example"}),
                }
                for what, resp in attempts.items():
                    assert resp.status_int == 400 and CSRF_MESSAGE in resp.text, (name, role, what, resp.status)
                assert changed_tables(before, db_fingerprint(world.registry)) == [], (name, role)
                checked.append((name, role))
    assert ("admin.order.action", "admin") in checked and ("login", "anonymous") in checked
    assert ("sandbox.pay", "anonymous") in checked  # a plugin's form is checked too


def test_session_checked_routes_need_the_token_only_with_the_session(app):
    """Without the session cookie the request is an API caller's and passes
    without a token; with the cookie (the anti-fraud plugin's own check, the
    same rules as above) a missing or forged token is refused."""
    checked = SESSION_CHECKED & set(routes(app.registry))
    if not checked:
        pytest.skip("the anti-fraud plugin is not installed")
    world = build_world(app)
    for name in sorted(checked):
        method = next(m for m in BY_ROUTE[name].expect if m in UNSAFE)
        for role in ("anonymous", "admin"):
            client, path, form = world.clients[role], _path(world, name), _form(world, name, role)
            assert client.send(method, path, form=form, csrf=False, cookies=False).status_int == 200, (name, role)
            for token in (None, "forged-token"):
                resp = client.send(method, path, form={**form, **({"csrf_token": token} if token else {})},
                                   csrf=False)
                assert resp.status_int == 400 and CSRF_MESSAGE in resp.text, (name, role, token)


def test_the_fingerprint_sees_a_write(app):
    """The check above would notice a form that wrote despite the refusal."""
    world = build_world(app)
    before = db_fingerprint(world.registry)
    resp = world.clients["admin"].send("POST", "/admin/categories", form={"name": "New one"})
    assert resp.status_int == 302
    assert changed_tables(before, db_fingerprint(world.registry)) == ["audit_log", "categories"]


def test_unsafe_form_posts_with_the_token_are_not_refused_for_csrf(app):
    world = build_world(app)
    for name, info in _unsafe_html_routes(world.registry).items():
        for method in (m for m in info.methods if m in UNSAFE):
            client = world.clients["admin"]
            resp = client.send(method, _path(world, name), form=_form(world, name, "admin"))
            assert not (resp.status_int == 400 and CSRF_MESSAGE in text_of(resp)), name
            if name == "logout":
                client.sign_in()


def test_api_calls_on_the_session_need_the_csrf_header(app):
    world = build_world(app)
    admin = world.clients["admin"]
    checked = []
    for name, info in sorted(_unsafe_api_routes(world.registry).items()):
        for method in (m for m in info.methods if m in UNSAFE):
            path, body = _path(world, name), _form(world, name, "admin")
            before = db_fingerprint(world.registry)
            for headers in ({}, {"X-CSRF-Token": "forged-token"}):
                resp = admin.send(method, path, json_body=body, csrf=False, headers=headers)
                assert resp.status_int == 400, (name, method, resp.status, resp.text[:200])
                if name != "api.health":  # the storefront's view answers with its own error
                    assert resp.json["error"]["code"] == "csrf_failed", (name, method)
            assert changed_tables(before, db_fingerprint(world.registry)) == [], name
            # the same call with the header, or with a bearer token (which no other site can send), passes
            assert admin.send(method, path, json_body=body).status_int != 400 or name in _REFUSED_ANYWAY, name
            bearer = admin.send(method, _path(world, name, bearer=True), json_body=body, bearer=True)
            assert bearer.status_int != 400 or name in _REFUSED_ANYWAY | {"api.health"}, (name, bearer.text[:200])
            checked.append(name)
    assert {"api.admin.plugin", "api.orders", "api.admin.order.action", "api.admin.sku.keys"} <= set(checked)


#: calls whose (empty) body the view itself answers with a 400
_REFUSED_ANYWAY = {"api.admin.media"}


def test_the_docking_api_ignores_the_session(app):
    """A signed-in agent's browser cannot place docking orders: the docking
    API reads no cookie and no bearer token, only its own signature."""
    world = build_world(app)
    agent = world.clients["agent"]
    for bearer in (False, True):
        resp = agent.send("POST", "/api/v1/dock/orders", json_body={"sku": "SEC1", "quantity": 1,
                                                                    "out_order_no": "X-1"}, bearer=bearer)
        assert resp.status_int == 401, resp.text
        assert agent.send("GET", "/api/v1/dock/balance", bearer=bearer).status_int == 401
