"""Fuzzing the running app against its own OpenAPI document.

A real waitress server with a small shop (every kind of goods, accounts,
orders in several states, a docking key) is fuzzed by schemathesis from
``/api/v1/openapi.json``: every operation in it, admin ones with an admin
token, the docking API with correctly signed requests, with data that fits
the document and data that does not. No answer may be a 5xx, and every
answer must be one the document promises (status code, content type, body
schema). Bounded (a few examples per operation, derandomized, the core's
rate limits off) so that it runs in CI.

Below it, regression tests for what the fuzzing found: answers the document
did not list, and 500s on PostgreSQL and MariaDB (NUL characters, amounts
beyond an INTEGER column: see also tests/test_properties_pricing.py).
"""
from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from fuzz_helpers import NO_LIMITS, NO_SHRINK, bounded, build_shop
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sqlalchemy import select

from kameng.dock.auth import sign_request
from kameng.inventory.models import KeyImport
from kameng.testing import LiveServer, app_request, free_port

pytestmark = pytest.mark.slow

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
#: examples per operation: data that fits the document, then data that does not
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
#: pyramid_retry copies a request body over 10 KB to a temporary file that WebOb
#: never closes: a ResourceWarning whenever the garbage collector gets to it
BIG_BODIES = pytest.mark.filterwarnings("ignore::ResourceWarning",
                                        "ignore::pytest.PytestUnraisableExceptionWarning")


def serve(make_app, **settings):
    port = free_port()
    app = make_app(**{"kameng.base_url": f"http://127.0.0.1:{port}", **settings})
    return LiveServer(app, port).start(), app


@pytest.fixture
def live(make_app):
    server, app = serve(make_app, **NO_LIMITS)
    server.app = app
    shop = build_shop(app.registry)
    yield server, shop
    server.stop()


# -- the fuzzing ---------------------------------------------------------------------------------------


def real_values(shop, operation) -> list[dict]:
    """Path parameters that name things that exist, so the fuzzer gets past the 404."""
    out = []
    for name in {p.name for p in operation.path_parameters}:
        if name == "order_no":
            out += [{"order_no": no} for no in shop.order_nos]
        elif name == "code":
            out += [{"code": c} for c in shop.sku_codes]
        elif name == "id" and "/users/" in operation.path:
            out += [{"id": shop.buyer_id}, {"id": shop.agent_id}]
        elif name == "id" and "/plugins/" in operation.path:
            out += [{"id": "sandbox"}]
        elif name == "id":
            out += [{"id": i} for i in shop.product_ids]
        elif name == "key_id":
            out += [{"key_id": shop.dock[1]}]
    return out


def signed_call(case, server, shop, session):
    """Send a docking API case signed over the exact bytes that are sent."""
    kwargs = case.as_transport_kwargs(base_url=server.url)
    body = kwargs.pop("json", None)
    headers = {k: v for k, v in kwargs.pop("headers", {}).items() if not k.lower().startswith("x-kameng-")}
    data = json.dumps(body).encode() if body is not None else kwargs.pop("data", None)
    if data is not None:
        headers["Content-Type"] = "application/json"
    prepared = requests.Request(kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers,
                                data=data).prepare()
    _uid, key_id, secret = shop.dock
    prepared.headers.update(sign_request(key_id, secret, prepared.method, prepared.path_url, prepared.body or b""))
    return session.send(prepared, timeout=60)


def send(case, server, shop, session):
    path = case.operation.path
    if path.startswith("/api/v1/dock/"):
        return signed_call(case, server, shop, session), {}
    headers = {"Authorization": f"Bearer {shop.admin_token}"} if path.startswith("/api/v1/admin/") else {}
    return case.call(base_url=server.url, session=session, headers=headers, timeout=60), headers


def fuzz_operation(operation, server, shop, session, mode):
    strategies = [operation.as_strategy(mode)] + [operation.as_strategy(mode, path_parameters=p)
                                                  for p in real_values(shop, operation)]

    @bounded(max_examples=EXAMPLES[mode], phases=NO_SHRINK)
    @given(case=st.one_of(strategies))
    def run(case):
        response, headers = send(case, server, shop, session)
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


@BIG_BODIES
def test_every_operation_answers_as_its_document_says(live):
    server, shop = live
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    failures, seen = [], []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            seen.append(operation.label)
            takes_input = bool(operation.path_parameters or operation.query or operation.headers or operation.body)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if takes_input else 1]:
                try:
                    fuzz_operation(operation, server, shop, session, mode)
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all operations, then report
                    failures.append(f"{mode.value} {operation.label}:\n{str(exc)[:3000]}")
    assert len(seen) >= 35 and {"POST /api/v1/orders", "POST /api/v1/dock/orders", "PATCH /api/v1/admin/skus/{code}",
                                "POST /api/v1/admin/orders/{order_no}/{action}"} <= set(seen)
    assert not failures, "\n\n".join(failures)


# -- regressions: answers the document did not list ----------------------------------------------------


def conforms(server, method, path, response):
    """The answer is one the served document lists for the operation, with its schema."""
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    operation = schema[path][method]
    assert operation.responses.find_by_status_code(response.status_code) is not None, (
        f"{method} {path} answered {response.status_code}, which its document does not list")
    operation.validate_response(response)


def test_a_locked_order_lookup_is_a_documented_429_on_every_route(make_app):
    """Wrong query passwords lock an order's lookup; read, pay and cancel then
    answer 429, which the document did not list for pay and cancel."""
    server, app = serve(make_app, **{**NO_LIMITS, "kameng.limits.lookup_failures_per_order": "1",
                                     "kameng.limits.lookup_lockout_minutes": "15"})
    try:
        shop = build_shop(app.registry)
        order_no = shop.order_nos[1]  # the pending one
        url = f"{server.url}/api/v1/orders/{order_no}"
        for _ in range(2):
            got = requests.get(url, params={"query_password": "wrong-password"}, timeout=60)
        assert got.status_code == 429
        conforms(server, "GET", "/api/v1/orders/{order_no}", got)
        for action, body in (("pay", {"payment_method": "sandbox"}), ("cancel", None)):
            got = requests.post(f"{url}/{action}", params={"query_password": "pass1234"}, json=body, timeout=60)
            assert got.status_code == 429, got.text
            conforms(server, "POST", f"/api/v1/orders/{{order_no}}/{action}", got)
    finally:
        server.stop()


def test_refused_docking_requests_over_the_limit_are_a_documented_429(make_app):
    server, app = serve(make_app, **{**NO_LIMITS, "kameng.limits.dock_failures_per_ip_per_minute": "1"})
    try:
        shop = build_shop(app.registry, make_orders=False)
        _uid, key_id, _secret = shop.dock
        for _ in range(3):
            got = requests.get(f"{server.url}/api/v1/dock/balance",
                               headers=sign_request(key_id, "not-the-secret", "GET", "/api/v1/dock/balance"),
                               timeout=60)
        assert got.status_code == 429, got.text
        conforms(server, "GET", "/api/v1/dock/balance", got)
    finally:
        server.stop()


def test_a_docking_key_request_that_is_not_json_is_a_documented_400(live):
    server, shop = live
    got = requests.post(f"{server.url}/api/v1/admin/users/{shop.agent_id}/dock-keys", data=b"\x00",
                        headers={"Authorization": f"Bearer {shop.admin_token}", "Content-Type": "application/json"},
                        timeout=60)
    assert got.status_code == 400
    conforms(server, "POST", "/api/v1/admin/users/{id}/dock-keys", got)


# -- regressions: NUL characters (a 500 on PostgreSQL, which refuses them in text) ---------------------

NUL_BODIES = [  # (method, path, who, body, the answer)
    ("POST", "/api/v1/orders", None, {"sku": "FZ-CARD", "contact": "a\x00b@example.com", "query_password": "pass1234",
                                      "payment_method": "sandbox"}, 422),
    ("POST", "/api/v1/orders", None, {"sku": "FZ-CARD\x00", "contact": "ab@example.com",
                                      "query_password": "pass1234", "payment_method": "sandbox"}, 404),
    ("POST", "/api/v1/orders", None, {"sku": "FZ-TOPUP", "contact": "ab@example.com", "query_password": "pass\x00",
                                      "payment_method": "sandbox", "recharge": {"account": "12345\x00"}}, 422),
    ("POST", "/api/v1/admin/categories", "admin", {"name": "a\x00b", "icon": "/i\x00.png"}, 201),
    ("POST", "/api/v1/admin/products", "admin", {"name": "a\x00b", "type": "manual", "tags": ["x\x00"],
                                                 "skus": [{"code": "NUL1", "name": "n\x00", "price": "1.00"}]}, 201),
    ("PATCH", "/api/v1/admin/products/{id}", "admin", {"description": "<p>\x00</p>"}, 200),
    ("PATCH", "/api/v1/admin/products/{id}", "admin", {"images": ["/a\x00.png"]}, 422),
    ("PATCH", "/api/v1/admin/plugins/{plugin}", "admin", {"settings": {"secret": "sandbox-secret-\x00-0123456789"}},
     None),
    ("POST", "/api/v1/admin/users", "admin", {"email": "nul@example.com", "password": "long-password\x00"}, 201),
    ("POST", "/api/v1/admin/users/{user}/balance", "admin", {"amount": "1.00", "reason": "a\x00b"}, 200),
    ("POST", "/api/v1/admin/users/{user}/dock-keys", "admin", {"name": "a\x00b"}, None),
    ("POST", "/api/v1/admin/orders/{order_no}/{action}", "admin", {"reason": "a\x00b"}, 200),
    ("POST", "/api/v1/dock/orders", "dock", {"sku": "FZ-CARD\x00", "quantity": 1, "out_order_no": "nul-1"}, 404),
    ("POST", "/api/v1/dock/orders", "dock", {"sku": "FZ-CARD", "quantity": 1, "out_order_no": "nul-2",
                                             "callback_url": "https://127.0.0.1/\x00"}, 422),
]


@pytest.mark.parametrize("method,path,who,body,status", NUL_BODIES,
                         ids=[f"{m} {p} {i}" for i, (m, p, *_rest) in enumerate(NUL_BODIES)])
def test_a_nul_character_in_a_body_is_refused_or_dropped_never_a_500(live, method, path, who, body, status):
    """Each field refuses a NUL (with its own error) or drops it; PostgreSQL refuses it in text."""
    server, shop = live
    url = server.url + (path.replace("{id}", str(shop.product_ids[0])).replace("{order_no}", shop.order_nos[1])
                        .replace("{action}", "cancel").replace("{plugin}", "sandbox")
                        .replace("{user}", str(shop.agent_id)))
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if who == "admin":
        headers["Authorization"] = f"Bearer {shop.admin_token}"
    elif who == "dock":
        _uid, key_id, secret = shop.dock
        headers.update(sign_request(key_id, secret, method, path, raw))
    got = requests.request(method, url, data=raw, headers=headers, timeout=60)
    assert got.status_code < 500 and got.status_code == (status or got.status_code), got.text
    assert "\x00" not in got.text and "\\u0000" not in got.text  # nothing stored with it, nothing shown
    conforms(server, method, path.replace("{plugin}", "{id}").replace("{user}", "{id}"), got)


def test_a_nul_character_in_a_search_or_a_code_is_harmless(live):
    server, shop = live
    admin = {"Authorization": f"Bearer {shop.admin_token}"}
    for path, headers in (("/api/v1/products", {}), ("/api/v1/admin/products", admin)):
        got = requests.get(server.url + path, params={"q": "Fuzz\x00 card"}, headers=headers, timeout=60)
        assert got.status_code == 200, got.text
        assert [p["name"] for p in got.json()["items"]] == ["Fuzz card"]  # the NUL is dropped
        conforms(server, "GET", path, got)
    for code in ("FZ-CARD%00", "%00"):
        got = requests.get(f"{server.url}/api/v1/admin/skus/{code}", headers=admin, timeout=60)
        assert got.status_code == 404, got.text
        conforms(server, "GET", "/api/v1/admin/skus/{code}", got)


@BIG_BODIES
def test_a_nul_character_in_a_key_import_source_is_dropped(live):
    """The import's source label is stored; with a NUL it was a 500 on PostgreSQL."""
    server, shop = live
    admin = {"Authorization": f"Bearer {shop.admin_token}"}
    url = f"{server.url}/api/v1/admin/skus/FZ-CARD/keys"
    got = requests.post(url, params={"source": "fi\x00le.txt"}, data="NUL-KEY-1\n".encode(), timeout=60,
                        headers={**admin, "Content-Type": "text/plain"})
    assert got.status_code == 200, got.text
    conforms(server, "POST", "/api/v1/admin/skus/{code}/keys", got)
    got = requests.post(url, json={"keys": ["NUL-KEY-2"], "source": "js\x00on"}, headers=admin, timeout=60)
    assert got.status_code == 200, got.text
    imports = requests.get(f"{url[:-5]}/imports", headers=admin, timeout=60).json()["items"]
    assert {"file.txt", "json"} <= {i["source"] for i in imports}


def test_a_nul_character_in_the_admin_pages_is_harmless(live):
    """The admin's product search and a key file whose name holds a NUL (stored as the import's source)."""
    import webtest

    from kameng.testing import login

    server, _shop = live
    web = webtest.TestApp(server.app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert login(web, "fuzz-admin@example.com", "admin-password-123").status_int == 302
    page = web.get("/admin/products", {"q": "Fuzz\x00 card"})
    assert "Fuzz card" in page.text and "Fuzz manual" not in page.text
    form = web.get("/admin/skus/FZ-CARD/stock").forms
    token = next(f["csrf_token"].value for f in form.values() if "csrf_token" in f.fields)
    got = web.post("/admin/skus/FZ-CARD/import", {"csrf_token": token, "action": "import", "separator": "none"},
                   upload_files=[("file", "ke\x00ys.txt", b"NUL-FILE-KEY-1\n")], expect_errors=True)
    assert got.status_int in (200, 302, 303), got.status_int
    with app_request(server.app.registry) as req:
        assert "keys.txt" in set(req.db.scalars(select(KeyImport.source)))


def test_a_nul_character_in_the_storefront_forms_is_refused_not_a_500(live):
    """The same bug in the HTML checkout and the order lookup by contact."""
    server, shop = live
    with requests.Session() as web:
        page = web.get(f"{server.url}/checkout/{shop.product_ids[0]}", params={"sku": "FZ-CARD", "quantity": "1"},
                       timeout=60)
        token = _csrf(page.text)
        got = web.post(f"{server.url}/checkout/{shop.product_ids[0]}", timeout=60, data={
            "csrf_token": token, "sku": "FZ-CARD", "quantity": "1", "contact": "a\x00b@example.com",
            "query_password": "pass1234", "payment_method": "sandbox"}, allow_redirects=False)
        assert got.status_code == 422, got.status_code  # "enter an email address or a phone number"
        token = _csrf(web.get(f"{server.url}/query", timeout=60).text)
        got = web.post(f"{server.url}/query", timeout=60, data={
            "csrf_token": token, "by": "contact", "contact": "fuzz@example.com\x00", "query_password": "pass1234"},
            allow_redirects=False)
        assert got.status_code in (200, 404), got.status_code


def _csrf(html: str) -> str:
    import re

    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"', html)
    assert found, "no csrf_token on the page"
    return found.group(1) or found.group(2)
