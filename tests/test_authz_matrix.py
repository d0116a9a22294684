"""Authorisation matrix: every route of the app × every role, against the
table in ``tests/security_routes.py`` (SECURITY.md #62, #63).

The routes come from Pyramid's introspector, so a route (or a method) added
later without a row in the table fails :func:`test_every_route_is_classified`.
"""
from __future__ import annotations

from urllib.parse import urlencode

import pytest

from security_helpers import (KEYS, SKU, QUERY_PASSWORD, ROLES, Client, build_world, outcome, route_path, routes,
                              text_of)
from security_routes import BY_ROUTE, ROWS, resolve


def test_every_route_is_classified(app):
    found = routes(app.registry)
    missing = sorted(set(found) - set(BY_ROUTE))
    assert not missing, (
        f"routes without a row in the authorisation matrix: {missing}. Classify each in "
        "tests/security_routes.py (ROWS): which status anonymous, buyer_a (the owner), buyer_b, agent and "
        "admin get for every method it answers.")
    stale = sorted(set(BY_ROUTE) - set(found))
    assert not stale, f"rows in tests/security_routes.py for routes that no longer exist: {stale}"
    unclassified = {name: (info.methods, tuple(BY_ROUTE[name].expect)) for name, info in found.items()
                    if set(info.methods) != set(BY_ROUTE[name].expect)}
    assert not unclassified, (
        "these routes answer other methods than their row in tests/security_routes.py classifies "
        f"(route: (answered, classified)): {unclassified}")
    for row in ROWS:
        for method, expect in row.expect.items():
            assert set(expect) == set(ROLES), f"{row.route} {method}: every role needs an expected status"


def _send(world, client: Client, route: str, method: str, bearer: bool):
    """The row's request, sent by ``client``."""
    row, info = BY_ROUTE[route], routes_cache(world)[route]
    path = route_path(world.registry, route, **resolve(world, row, bearer))
    if row.query:
        path += "?" + urlencode(row.query)
    body = {k: v.replace("{role}", client.role) if isinstance(v, str) else v for k, v in row.body.items()}
    if info.api:
        return path, client.send(method, path, json_body=body if method != "GET" else None, bearer=bearer)
    return path, client.send(method, path, form=body)


def routes_cache(world):
    if "_routes" not in world.values:
        world.values["_routes"] = routes(world.registry)
    return world["_routes"]


def test_authorisation_matrix(app):
    """Each role, with its session (and on the API also with its bearer
    token), gets exactly the status of the table; nobody but the owner and
    the admin ever sees the owner's card keys or the order's token."""
    world = build_world(app)
    with_keys = _sold_keys(world)
    secrets = {**{f"card key {k}": k for k in with_keys}, "order access token": world["access_token"]}
    mismatches, leaked = [], []
    for row in ROWS:
        info = routes_cache(world)[row.route]
        for method, expect in row.expect.items():
            for role in ROLES:
                ways = ("session", "bearer") if info.api else ("session",)
                for way in ways:
                    client = world.clients[role]
                    path, resp = _send(world, client, row.route, method, bearer=way == "bearer")
                    got, want = outcome(resp), (row.bearer if way == "bearer" else {}).get(method, expect)[role]
                    if got != want:
                        mismatches.append(f"{method} {path} as {role} ({way}): expected {want}, got {got}"
                                          f" {text_of(resp)[:160]!r}")
                    if role not in ("buyer_a", "admin"):
                        leaked += [f"{name}: {method} {path} as {role}" for name, s in secrets.items()
                                   if s in text_of(resp) or s in (resp.location or "")]
                if row.route == "logout":
                    client.sign_in()
        # a method the route does not answer is a 404, even for the admin
        for method in {"GET", "POST"} - set(row.expect):
            admin = world.clients["admin"]
            path, resp = _send(world, admin, row.route, method, bearer=False)
            if resp.status_int != 404:
                mismatches.append(f"{method} {path} as admin: a method the route does not answer, got "
                                  f"{resp.status_int}")
    assert not leaked, "secrets shown to someone else:\n" + "\n".join(leaked)
    assert not mismatches, f"{len(mismatches)} answers differ from tests/security_routes.py:\n" + "\n".join(
        mismatches)


def _sold_keys(world) -> list[str]:
    resp = world.clients["buyer_a"].send("GET", f"/api/v1/orders/{world['order_no']}", bearer=True)
    keys = [k["secret"] for k in resp.json["items"][0]["keys"]]
    assert keys and set(keys) <= set(KEYS)
    return keys


def test_disabled_plugin_routes_answer_404_for_everyone(app):
    """A disabled plugin's pages are a 404 for every role, before any
    sign-in redirect; its gateway's notify route takes nothing."""
    from kameng.testing import set_plugin

    world = build_world(app)
    set_plugin(world.registry, "sandbox", enabled=False)
    set_plugin(world.registry, "sandbox_supplier", enabled=False)
    attempt = world["pending_attempt_no"]
    for role in ROLES:
        client = world.clients[role]
        assert client.send("GET", f"/pay/sandbox/pay/{attempt}").status_int == 404, role
        assert client.send("POST", f"/pay/sandbox/pay/{attempt}", form={"outcome": "paid"}).status_int == 404, role
        notify = client.send("POST", "/pay/sandbox/notify", form={"attempt_no": attempt}, csrf=False)
        assert (notify.status_int, notify.text) == (404, "fail"), role
        callback = client.send("POST", f"/supplier/callback/{world['connection_id']}", form={}, csrf=False)
        assert (callback.status_int, callback.text) == (404, "fail"), role
    # nothing was paid by any of this
    resp = world.clients["buyer_a"].send("GET", f"/api/v1/orders/{world['pending_order_no']}", bearer=True)
    assert resp.json["status"] == "pending"


def test_disabled_operations_plugins_answer_404_everywhere(app):
    """Each operations plugin, disabled: every one of its routes is a 404
    for every role (its admin pages included, before any sign-in redirect),
    and checkout still works without it."""
    from security_routes import INSTALLED_PLUGINS, PLUGIN_ROWS

    from kameng.testing import set_plugin

    installed = [p for p in PLUGIN_ROWS if p in INSTALLED_PLUGINS]
    if not installed:
        pytest.skip("no operations plugin is installed")
    world = build_world(app)
    for plugin in installed:
        set_plugin(world.registry, plugin, enabled=False)
    wrong = []
    for plugin in installed:
        for row in PLUGIN_ROWS[plugin]:
            for method in row.expect:
                for role in ROLES:
                    path, resp = _send(world, world.clients[role], row.route, method, bearer=False)
                    if resp.status_int != 404:
                        wrong.append(f"{plugin}: {method} {path} as {role}: {resp.status_int}")
    assert not wrong, "\n".join(wrong)
    body = {"sku": SKU, "quantity": 1, "payment_method": "sandbox"}
    placed = world.clients["buyer_a"].send("POST", "/api/v1/orders", json_body=body, bearer=True)
    assert placed.status_int == 201, placed.text


# -- orders: owners, other buyers, guests ------------------------------------------------------


def test_another_buyer_never_reads_an_order_or_its_keys(app):
    """Buyer B (session or token), the agent and a visitor get the same 404
    for buyer A's order as for an order that does not exist, on every page
    and API of an order; buyer A sees the keys."""
    world = build_world(app)
    keys = _sold_keys(world)
    no, unknown = world["order_no"], "29991231235959000000"
    pages = ["/orders/{no}", "/api/v1/orders/{no}", "/orders/{no}?token=" + "0" * 64,
             "/api/v1/orders/{no}?token=" + "f" * 64]
    for role in ("anonymous", "buyer_b", "agent"):
        for way in ("session", "bearer"):
            client = world.clients[role]
            # a wrong query password once per role (five wrong ones pause the number's lookup)
            wrong = ["/api/v1/orders/{no}?query_password=wrong-password"] if way == "session" else []
            for page in pages + wrong:
                mine = client.send("GET", page.format(no=no), bearer=way == "bearer")
                none = client.send("GET", page.format(no=unknown), bearer=way == "bearer")
                assert mine.status_int == none.status_int == 404, (role, way, page)
                assert _normalised(mine, no) == _normalised(none, unknown), (role, way, page)
                assert not any(k in text_of(mine) for k in keys)
    owner = world.clients["buyer_a"]
    assert all(k in owner.send("GET", f"/orders/{no}").text for k in keys)


def _normalised(resp, order_no: str) -> str:
    """A 404 body with the number asked for taken out (HTML pages carry a
    fresh CSRF token each time: compare their text without it)."""
    body = text_of(resp).replace(order_no, "N")
    if resp.content_type == "text/html":
        import re

        body = re.sub(r'name="csrf_token" value="[^"]*"', "", body)
    return body


def test_guest_order_opens_only_with_its_query_password_or_token(app):
    world = build_world(app)
    no = world["guest_order_no"]
    for n, role in enumerate(("anonymous", "buyer_a", "buyer_b", "agent")):
        client = world.clients[role]
        assert client.send("GET", f"/orders/{no}").status_int == 404, role
        assert client.send("GET", f"/api/v1/orders/{no}").status_int == 404, role
        # a wrong password, by the API or the lookup form (five would pause the number's lookup)
        if n % 2:
            resp = client.send("POST", "/query", form={"by": "number", "order_no": no,
                                                       "query_password": "not-the-password"})
            assert resp.status_int == 404 and "/orders/" not in (resp.location or ""), role
        else:
            resp = client.send("GET", f"/api/v1/orders/{no}?query_password=not-the-password")
            assert resp.status_int == 404, role
        # no password at all is not a lookup either
        resp = client.send("POST", "/query", form={"by": "number", "order_no": no})
        assert resp.status_int == 404, role
    guest = world.clients["anonymous"]
    resp = guest.send("GET", f"/api/v1/orders/{no}?query_password={QUERY_PASSWORD}")
    assert resp.status_int == 200 and resp.json["order_no"] == no
    resp = guest.send("POST", "/query", form={"by": "number", "order_no": no, "query_password": QUERY_PASSWORD})
    assert resp.status_int == 303 and resp.location.endswith(f"/orders/{no}")
    assert guest.send("GET", f"/orders/{no}").status_int == 200  # this browser found it
    assert world.clients["buyer_b"].send("GET", f"/orders/{no}").status_int == 404  # another browser did not


@pytest.mark.parametrize("role", ["buyer_b", "agent"])
def test_no_buyer_acts_on_another_buyers_order(app, role):
    """Pay again, cancel and report on buyer A's pending order: 404 for
    others and nothing changes; the owner may cancel it."""
    from security_helpers import changed_tables, db_fingerprint

    world = build_world(app)
    no = world["pending_order_no"]
    client = world.clients[role]
    before = db_fingerprint(world.registry)
    for action in ("pay", "cancel", "report"):
        assert client.send("POST", f"/orders/{no}/{action}", form={"message": "hello there"}).status_int == 404
    for way in (False, True):
        assert client.send("POST", f"/api/v1/orders/{no}/cancel", json_body={}, bearer=way).status_int == 404
        assert client.send("POST", f"/api/v1/orders/{no}/pay", json_body={"payment_method": "sandbox"},
                           bearer=way).status_int == 404
    assert changed_tables(before, db_fingerprint(world.registry)) == []
    resp = world.clients["buyer_a"].send("POST", f"/api/v1/orders/{no}/cancel", json_body={}, bearer=True)
    assert resp.status_int == 200 and resp.json["status"] == "cancelled"


def test_a_payment_qr_code_is_shown_to_the_order_alone(make_app):
    """With a gateway that pays by QR code, the pay page and the QR image of
    buyer A's pending payment open for buyer A and the admin; for everyone
    else they are the 404 of an unknown order (the sandbox of the matrix
    only redirects)."""
    from kameng.testing import othergateway, set_plugin

    app = make_app(extra_plugins=[(othergateway.PLUGIN_ID, othergateway)])
    world = build_world(app)
    set_plugin(world.registry, othergateway.PLUGIN_ID, enabled=True, secret=othergateway.SECRET)
    resp = world.clients["buyer_a"].send("POST", "/api/v1/orders", bearer=True, json_body={
        "sku": "SEC1", "quantity": 1, "payment_method": othergateway.PLUGIN_ID})
    assert resp.status_int == 201, resp.text
    no, attempt = resp.json["order_no"], resp.json["payment"]["attempt_no"]
    pages = {f"/orders/{no}/pay/{attempt}": "text/html", f"/orders/{no}/qr/{attempt}.svg": "image/svg+xml"}
    for path, ctype in pages.items():
        for role in ROLES:
            got = world.clients[role].send("GET", path)
            if role in ("buyer_a", "admin"):
                assert (got.status_int, got.content_type) == (200, ctype), (path, role)
            else:
                assert got.status_int == 404, (path, role)
