"""Docking keys in the admin (pages and API), their storage, and the
docking API in the OpenAPI document."""
import pytest
from dockapi_helpers import signed
from sqlalchemy import select

from kameng import accounts
from kameng.audit import AuditEntry
from kameng.dock.models import DockKey, key_secret
from kameng.testing import app_request

DOCK_PATHS = [("get", "/api/v1/dock/goods"), ("get", "/api/v1/dock/goods/{id}"), ("get", "/api/v1/dock/balance"),
              ("post", "/api/v1/dock/orders"), ("get", "/api/v1/dock/orders/{out_order_no}"),
              ("get", "/api/v1/admin/users/{id}/dock-keys"), ("post", "/api/v1/admin/users/{id}/dock-keys"),
              ("post", "/api/v1/admin/dock-keys/{key_id}/revoke")]


@pytest.fixture
def agent(registry):
    with app_request(registry) as req:
        return accounts.create_user(req.db, "agent@example.com", "agent-password-123", role="agent").id


@pytest.fixture
def admin_auth(registry, admin):
    with app_request(registry) as req:
        token = accounts.create_token(req.db, accounts.find_user(req.db, admin[0]), "dock-tests")
    return {"Authorization": f"Bearer {token}"}


# -- pages -------------------------------------------------------------------------------------


def test_keys_page_creates_shows_once_restricts_and_revokes(admin_app, registry, agent):
    user_page = admin_app.get(f"/admin/users/{agent}")
    page = user_page.click(href=f"/admin/users/{agent}/dock-keys")
    assert "no docking keys" in page.text
    form = page.forms["key-form"]
    form["name"] = "Shop B"
    made = form.submit()
    key_id = made.html.select_one("#new-key-id").text.strip()
    secret = made.html.select_one("#new-key-secret").text.strip()
    assert key_id.startswith("dk_") and len(key_id) == 27 and secret.startswith("dks_")
    assert made.headers["Cache-Control"] == "no-store"
    creds = (agent, key_id, secret)
    signed(admin_app, creds, "GET", "/api/v1/dock/balance")
    again = admin_app.get(f"/admin/users/{agent}/dock-keys")
    assert key_id in again.text and secret not in again.text  # shown once
    # restrict it to an address the tests do not come from
    ips = again.forms[f"ips-{key_id}"]
    ips["ip_allowlist"] = "203.0.113.0/24\n203.0.113.9"
    saved = ips.submit().follow()
    assert "203.0.113.0/24" in saved.text
    assert signed(admin_app, creds, "GET", "/api/v1/dock/balance", status=403).json["error"]["code"] == \
        "ip_not_allowed"
    signed(admin_app, creds, "GET", "/api/v1/dock/balance", remote="203.0.113.44")
    bad = saved.forms[f"ips-{key_id}"]
    bad["ip_allowlist"] = "not-an-address"
    shown = bad.submit().follow()
    assert "Not an IP address or CIDR range: not-an-address" in shown.text
    with app_request(registry) as req:
        kept = req.db.scalar(select(DockKey.ip_allowlist).where(DockKey.key_id == key_id))
    assert kept == "203.0.113.0/24\n203.0.113.9"
    revoked = shown.forms[f"revoke-{key_id}"].submit().follow()
    assert "Revoked" in revoked.text and f"revoke-{key_id}" not in revoked.forms
    assert signed(admin_app, creds, "GET", "/api/v1/dock/balance", remote="203.0.113.44",
                  status=401).json["error"]["code"] == "invalid_key"


def test_a_bad_allowlist_is_shown_on_the_form(admin_app, agent):
    form = admin_app.get(f"/admin/users/{agent}/dock-keys").forms["key-form"]
    form["ip_allowlist"] = "10.0.0.0/8\n999.1.1.1"
    resp = form.submit(status=422)
    assert "999.1.1.1" in resp.html.select_one("#key-error").text
    assert resp.html.select_one("#new-key-secret") is None


def test_keys_pages_need_an_admin(testapp, registry, agent):
    resp = testapp.get(f"/admin/users/{agent}/dock-keys", status=302)
    assert "/login" in resp.location
    testapp.post(f"/admin/users/{agent}/dock-keys", {"name": "x"}, status=302)
    with app_request(registry) as req:
        assert req.db.scalar(select(DockKey)) is None


def test_key_forms_need_the_csrf_token(admin_app, registry, agent):
    admin_app.post(f"/admin/users/{agent}/dock-keys", {"name": "x"}, status=400)
    with app_request(registry) as req:
        assert req.db.scalar(select(DockKey)) is None


def test_unknown_user_and_key(admin_app):
    admin_app.get("/admin/users/999999/dock-keys", status=404)
    admin_app.get("/admin/users/abc/dock-keys", status=404)
    page = admin_app.get("/admin/users")
    token = page.forms["user-form"]["csrf_token"].value
    admin_app.post("/admin/dock-keys/dk_nope/revoke", {"csrf_token": token}, status=404)


def test_no_keys_for_admin_accounts(admin_app, registry, admin):
    with app_request(registry) as req:
        admin_id = accounts.find_user(req.db, admin[0]).id
    page = admin_app.get(f"/admin/users/{admin_id}/dock-keys")
    assert "key-form" not in page.forms


# -- storage -------------------------------------------------------------------------------------


def test_the_secret_is_encrypted_at_rest_and_never_audited(admin_app, registry, agent, admin_auth):
    made = admin_app.post_json(f"/api/v1/admin/users/{agent}/dock-keys", {"name": "n"}, headers=admin_auth,
                               status=201).json
    with app_request(registry) as req:
        row = req.db.scalar(select(DockKey).where(DockKey.key_id == made["key_id"]))
        assert made["secret"] not in row.secret and row.secret.startswith(registry["kameng.keyring"].current_id)
        assert key_secret(registry["kameng.keyring"], row) == made["secret"]
        audits = req.db.scalars(select(AuditEntry).where(AuditEntry.action.like("dock_key.%"))).all()
        assert [a.action for a in audits] == ["dock_key.create"] and made["key_id"] in audits[0].detail
        assert all(made["secret"] not in a.detail for a in audits)


# -- admin API -----------------------------------------------------------------------------------


def test_admin_api_creates_lists_and_revokes(testapp, registry, agent, admin_auth):
    made = testapp.post_json(f"/api/v1/admin/users/{agent}/dock-keys",
                             {"name": "Shop B", "ip_allowlist": ["127.0.0.1", "10.0.0.0/8"]},
                             headers=admin_auth, status=201)
    body = made.json
    assert set(body) >= {"key_id", "secret"} and body["ip_allowlist"] == ["127.0.0.1", "10.0.0.0/8"]
    assert made.headers["Cache-Control"] == "no-store"
    creds = (agent, body["key_id"], body["secret"])
    signed(testapp, creds, "GET", "/api/v1/dock/balance")
    listed = testapp.get(f"/api/v1/admin/users/{agent}/dock-keys", headers=admin_auth).json["items"]
    assert [k["key_id"] for k in listed] == [body["key_id"]] and "secret" not in listed[0]
    assert listed[0]["last_used_at"] is not None and listed[0]["active"] is True
    revoked = testapp.post(f"/api/v1/admin/dock-keys/{body['key_id']}/revoke", headers=admin_auth).json
    assert revoked["active"] is False and revoked["revoked_at"]
    signed(testapp, creds, "GET", "/api/v1/dock/balance", status=401)
    # a bare POST with no body makes a key too (API.md: POST …/dock-keys → 201 {key_id, secret})
    bare = testapp.post(f"/api/v1/admin/users/{agent}/dock-keys", headers=admin_auth, status=201).json
    assert bare["key_id"] != body["key_id"] and bare["ip_allowlist"] == []


def test_admin_api_refusals(testapp, registry, agent, admin_auth, admin):
    url = f"/api/v1/admin/users/{agent}/dock-keys"
    assert testapp.post_json(url, {}, status=401).json["error"]["code"] == "unauthorized"
    with app_request(registry) as req:
        buyer_token = accounts.create_token(req.db, req.db.get(accounts.User, agent), "mine")
        admin_id = accounts.find_user(req.db, admin[0]).id
    testapp.post_json(url, {}, headers={"Authorization": f"Bearer {buyer_token}"}, status=403)
    testapp.post_json("/api/v1/admin/users/999999/dock-keys", {}, headers=admin_auth, status=404)
    testapp.post_json(f"/api/v1/admin/users/{admin_id}/dock-keys", {}, headers=admin_auth, status=422)
    bad = testapp.post_json(url, {"ip_allowlist": "1.2.3.4/99"}, headers=admin_auth, status=422).json
    assert bad["error"]["field"] == "ip_allowlist"
    testapp.post_json(url, {"name": 5}, headers=admin_auth, status=422)
    testapp.post("/api/v1/admin/dock-keys/dk_nope/revoke", headers=admin_auth, status=404)
    for _ in range(20):
        testapp.post_json(url, {}, headers=admin_auth, status=201)
    assert testapp.post_json(url, {}, headers=admin_auth, status=409).json["error"]["code"] == "too_many_keys"


# -- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_lists_the_docking_api(testapp, registry):
    doc = testapp.get("/api/v1/openapi.json").json
    for method, path in DOCK_PATHS:
        op = doc["paths"][path][method]
        assert op["summary"] and op["responses"], (method, path)
        if path.startswith("/api/v1/dock/"):
            names = {p["name"] for p in op["parameters"] if p["in"] == "header"}
            assert names == {"X-Kameng-Key", "X-Kameng-Timestamp", "X-Kameng-Nonce", "X-Kameng-Signature"}
            assert {"401", "403"} <= set(op["responses"])
        else:
            assert op["security"] == [{"bearerAuth": []}] and {"401", "403"} <= set(op["responses"])
    # every route under /api/v1/dock/ is documented
    from pyramid.interfaces import IRoutesMapper

    routes = registry.getUtility(IRoutesMapper).get_routes()
    dock = {r.pattern for r in routes if r.pattern.startswith("/api/v1/") and "dock" in r.pattern}
    assert dock <= set(doc["paths"])
    described = str(doc["paths"]["/api/v1/dock/orders"]["post"]["responses"])
    for code in ("insufficient_balance", "idempotency_conflict", "nonce_reused", "stale_timestamp", "ip_not_allowed"):
        assert code in described


def test_openapi_document_is_still_valid(testapp):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(testapp.get("/api/v1/openapi.json").json)


def test_secrets_can_be_reencrypted_under_a_new_key(registry, agent):
    """For ``kameng keys rotate`` (kameng/inventory/rotate.py calls these)."""
    import os

    from sqlalchemy.orm import Session

    from kameng.crypto import KeyRing
    from kameng.dock.models import create_key, reencrypt_secrets, ring_keys_in_use

    old = registry["kameng.keyring"]
    with app_request(registry) as req:
        key, secret = create_key(req.db, old, agent)
        key_id = key.key_id
    ring = KeyRing([("rot1", os.urandom(32)), *((kid, old._raw[kid]) for kid in old.key_ids)])
    engine = registry["kameng.write_engine"]
    with Session(engine) as s, s.begin():
        assert ring_keys_in_use(s, ring) == {old.current_id}
        assert reencrypt_secrets(s, ring) == 1
    with Session(engine) as s, s.begin():
        assert reencrypt_secrets(s, ring) == 0 and ring_keys_in_use(s, ring) == {"rot1"}
        row = s.scalar(select(DockKey).where(DockKey.key_id == key_id))
        assert key_secret(ring, row) == secret
