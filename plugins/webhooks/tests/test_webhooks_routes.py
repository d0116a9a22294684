"""Every route of the plugin, every method it answers, for every role: the
sign-in page for a visitor, 403 for buyers and agents, the page for the
admin (an empty form, with the CSRF token). The same table is what
tests/security_routes.py needs for these routes."""
from __future__ import annotations

import pytest
import webtest

from kameng import accounts
from kameng.testing import ADMIN_EMAIL, ADMIN_PASSWORD, app_request, login

from webhooks_helpers import csrf_of, deliveries, emit, make_endpoint, run_all

LOGIN = "login"
ROLES = ("anonymous", "buyer", "agent", "admin")


def page(status):
    return {"anonymous": LOGIN, "buyer": 403, "agent": 403, "admin": status}


# (method, path, expected); {eid} and {did} are an endpoint and one of its deliveries
MATRIX = [
    ("GET", "/-/webhooks/", page(200)),
    ("POST", "/-/webhooks/", page(422)),  # an empty form names no address
    ("GET", "/-/webhooks/endpoints/{eid}", page(200)),
    ("POST", "/-/webhooks/endpoints/{eid}", page(422)),
    ("POST", "/-/webhooks/endpoints/{eid}/test", page(302)),
    ("POST", "/-/webhooks/endpoints/{eid}/reveal", page(200)),
    ("POST", "/-/webhooks/endpoints/{eid}/rotate", page(200)),
    ("POST", "/-/webhooks/endpoints/{eid}/disable", page(302)),
    ("POST", "/-/webhooks/endpoints/{eid}/enable", page(302)),
    ("POST", "/-/webhooks/endpoints/{eid}/nonsense", page(404)),
    ("GET", "/-/webhooks/deliveries", page(200)),
    ("GET", "/-/webhooks/deliveries/{did}", page(200)),
    ("GET", "/-/webhooks/deliveries/wh_unknown", page(404)),
    ("POST", "/-/webhooks/deliveries/{did}/resend", page(302)),
    ("POST", "/-/webhooks/endpoints/{eid}/delete", page(302)),  # last: it removes the endpoint
]
#: methods a route does not answer: 404 for everyone
UNANSWERED = [
    ("GET", "/-/webhooks/endpoints/{eid}/reveal"),
    ("GET", "/-/webhooks/deliveries/{did}/resend"),
    ("POST", "/-/webhooks/deliveries"),
    ("POST", "/-/webhooks/deliveries/{did}"),
]


@pytest.fixture
def clients(wh_app, wh):
    out = {"anonymous": webtest.TestApp(wh_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})}
    people = {"buyer": ("buyer@example.com", "buyer"), "agent": ("agent@example.com", "agent"),
              "admin": (ADMIN_EMAIL, "admin")}
    with app_request(wh) as req:
        for email, role in people.values():
            accounts.create_user(req.db, email, ADMIN_PASSWORD, role=role)
    for name, (email, _role) in people.items():
        client = webtest.TestApp(wh_app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        assert login(client, email, ADMIN_PASSWORD).status_int == 302
        out[name] = client
    return out


def _token(client, role):
    if role == "anonymous":
        return csrf_of(client.get("/login"))
    return csrf_of(client.get("/account" if role != "admin" else "/admin"))


def _status(client, method, path, token):
    if method == "GET":
        resp = client.get(path, expect_errors=True)
    else:
        resp = client.post(path, {"csrf_token": token}, expect_errors=True)
    if resp.status_int in (302, 303) and "/login" in resp.headers.get("Location", "") and \
            "/-/webhooks/" not in resp.headers["Location"].split("?")[0]:
        return LOGIN
    return resp.status_int


def test_route_matrix(wh, clients, receiver):
    r = receiver()
    eid, _secret = make_endpoint(wh, r.url)
    emit(wh, "order.paid", {"order_no": "M1"})
    run_all(wh)
    did = deliveries(wh)[0].delivery_id
    tokens = {role: _token(clients[role], role) for role in ROLES}
    got, want = {}, {}
    for method, path, expect in MATRIX:
        url = path.format(eid=eid, did=did)
        for role in ROLES:
            got[(method, path, role)] = _status(clients[role], method, url, tokens[role])
            want[(method, path, role)] = expect[role]
    for method, path in UNANSWERED:
        url = path.format(eid=eid, did=did)
        for role in ROLES:
            got[(method, path, role)] = _status(clients[role], method, url, tokens[role])
            want[(method, path, role)] = 404
    assert got == want


def test_without_the_csrf_token_nothing_changes(wh, wh_admin):
    eid, _ = make_endpoint(wh, "https://127.0.0.1/x")
    for action in ("delete", "disable", "rotate", "reveal", "test"):
        wh_admin.post(f"/-/webhooks/endpoints/{eid}/{action}", {}, status=400)
    wh_admin.post("/-/webhooks/", {"url": "https://127.0.0.1/y", "events": "*"}, status=400)
    from kameng_webhooks.models import Endpoint

    with app_request(wh) as req:
        from sqlalchemy import select

        rows = req.db.scalars(select(Endpoint)).all()
        assert [(e.id, e.active) for e in rows] == [(eid, True)]
    assert deliveries(wh) == []
