"""The app starts, serves the storefront and answers errors in the agreed format."""
from kameng.testing import app_request


def test_home_page_renders_catalog(testapp, registry):
    from kameng.catalog.models import load_demo

    with app_request(registry) as req:
        load_demo(req.db)
    resp = testapp.get("/")
    assert resp.status_int == 200
    assert "Steam 钱包充值码" in resp.text
    assert "50.00" in resp.text


def test_empty_shop_says_so(testapp):
    resp = testapp.get("/")
    assert "No goods are on sale yet." in resp.text


def test_security_headers(testapp):
    resp = testapp.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"


def test_api_not_found_is_json(testapp):
    resp = testapp.get("/api/v1/nothing-here", status=404)
    assert resp.json == {"error": {"code": "not_found", "message": "Not found."}}


def test_html_not_found_is_a_page(testapp):
    resp = testapp.get("/nothing-here", status=404)
    assert resp.content_type == "text/html"
    assert "Not found." in resp.text


def test_health(testapp):
    assert testapp.get("/healthz").json == {"status": "ok"}
    assert testapp.get("/api/v1/health").json == {"status": "ok"}


def test_openapi_document(testapp):
    doc = testapp.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/admin/plugins/{id}" in doc["paths"]
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
