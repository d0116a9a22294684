"""The admin API: POST /api/v1/admin/coupons (API.md), its strict
validation, GET (list and one) and PATCH, and who may call it."""
import pytest
from coupons_helpers import add_coupon, coupon_state, error_code, place
from sqlalchemy import func, select

from kameng.testing import app_request, set_plugin

URL = "/api/v1/admin/coupons"


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def count_coupons(registry):
    from kameng_coupons.models import Coupon

    with app_request(registry) as req:
        return req.db.scalar(select(func.count()).select_from(Coupon))


def test_create_a_fixed_coupon(capi, creg, shop, admin_token):
    resp = capi.post_json(URL, {"code": "Save10", "kind": "fixed", "value": "10.00", "min_amount": "50",
                                "max_uses": 100, "per_buyer": 1, "starts_at": "2026-01-01T00:00:00+08:00",
                                "ends_at": "2099-01-01T00:00:00Z", "skus": ["CARD10"], "unknown": "ignored"},
                          headers=auth(admin_token), status=201)
    body = resp.json
    assert isinstance(body["id"], int)
    assert {k: body[k] for k in ("code", "kind", "value", "max_discount", "min_amount", "max_uses", "per_buyer",
                                 "used", "scope", "skus", "active", "status")} == {
        "code": "Save10", "kind": "fixed", "value": "10.00", "max_discount": None, "min_amount": "50.00",
        "max_uses": 100, "per_buyer": 1, "used": 0, "scope": "skus", "skus": ["CARD10"], "active": True,
        "status": "active"}
    assert body["starts_at"] == "2025-12-31T16:00:00+00:00"
    assert body["ends_at"] == "2099-01-01T00:00:00+00:00"


def test_create_a_percent_coupon_and_use_it(capi, creg, shop, admin_token):
    body = capi.post_json(URL, {"code": "P15", "kind": "percent", "value": "15", "max_discount": "1.00"},
                          headers=auth(admin_token), status=201).json
    assert (body["value"], body["max_discount"], body["scope"], body["skus"]) == ("15", "1.00", "all", [])
    assert place(capi, coupon="p15").json["amount"] == "9.00"  # 1.50 capped at 1.00
    got = capi.get(f"{URL}/{body['id']}", headers=auth(admin_token)).json
    assert got["used"] == 1


def test_a_used_code_is_409_case_insensitively(capi, creg, shop, admin_token):
    add_coupon(creg, "TAKEN", "fixed", "1.00")
    resp = capi.post_json(URL, {"code": "taken", "kind": "fixed", "value": "1.00"}, headers=auth(admin_token),
                          status=409)
    assert error_code(resp) == "code_taken" and resp.json["error"]["field"] == "code"
    assert count_coupons(creg) == 1


@pytest.mark.parametrize("change,field", [
    ({"code": None}, "code"),
    ({"code": "ab"}, "code"),
    ({"code": "has space"}, "code"),
    ({"code": "x" * 65}, "code"),
    ({"code": 12345}, "code"),
    ({"code": "-DASH"}, "code"),
    ({"kind": "bogus"}, "kind"),
    ({"kind": None}, "kind"),
    ({"value": None}, "value"),
    ({"value": "abc"}, "value"),
    ({"value": "-1"}, "value"),
    ({"value": "0"}, "value"),
    ({"value": "1.001"}, "value"),
    ({"value": "1e3"}, "value"),
    ({"value": 10.5}, "value"),
    ({"value": True}, "value"),
    ({"value": ["1"]}, "value"),
    ({"value": "99999999999"}, "value"),
    ({"kind": "percent", "value": "100"}, "value"),
    ({"kind": "percent", "value": "0"}, "value"),
    ({"kind": "percent", "value": "15.555"}, "value"),
    ({"kind": "percent", "value": "15%"}, "value"),
    ({"max_discount": "1.00"}, "max_discount"),
    ({"kind": "percent", "max_discount": "0"}, "max_discount"),
    ({"min_amount": "-5"}, "min_amount"),
    ({"max_uses": 0}, "max_uses"),
    ({"max_uses": -1}, "max_uses"),
    ({"max_uses": "many"}, "max_uses"),
    ({"max_uses": 1.5}, "max_uses"),
    ({"per_buyer": 0}, "per_buyer"),
    ({"starts_at": "2026-01-01T00:00:00"}, "starts_at"),
    ({"starts_at": "yesterday"}, "starts_at"),
    ({"starts_at": 1767225600}, "starts_at"),
    ({"starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}, "ends_at"),
    ({"skus": ["NO-SUCH"]}, "skus[0]"),
    ({"skus": "CARD10"}, "skus"),
    ({"skus": []}, "skus"),
    ({"skus": [None]}, "skus[0]"),
    ({"skus": ["CARD10"], "products": [1]}, "skus"),
    ({"categories": [999999]}, "categories"),
    ({"products": ["x"]}, "products[0]"),
    ({"scope": "galaxy"}, "scope"),
    ({"active": "maybe"}, "active"),
    ({"note": 5}, "note"),
    ({"note": "n" * 201}, "note"),
])
def test_bad_inputs_are_422_naming_the_field(capi, creg, shop, admin_token, change, field):
    body = {"code": "GOOD", "kind": "fixed", "value": "1.00", **change}
    resp = capi.post_json(URL, body, headers=auth(admin_token), status=422)
    assert error_code(resp) == "invalid_request"
    assert resp.json["error"]["field"] == field
    assert resp.json["error"]["message"]
    assert count_coupons(creg) == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\"text\"", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400(capi, creg, shop, admin_token, raw):
    resp = capi.post(URL, raw, headers={**auth(admin_token), "Content-Type": "application/json"}, status=400)
    assert error_code(resp) == "invalid_request"


def test_list_filter_and_get_one(capi, creg, shop, admin_token):
    add_coupon(creg, "AAA111", "fixed", "1.00")
    add_coupon(creg, "BBB222", "fixed", "1.00", active=False)
    listing = capi.get(URL, headers=auth(admin_token)).json
    assert listing["total"] == 2 and [c["code"] for c in listing["items"]] == ["BBB222", "AAA111"]
    assert [c["code"] for c in capi.get(URL, {"status": "disabled"}, headers=auth(admin_token)).json["items"]] == \
        ["BBB222"]
    assert [c["code"] for c in capi.get(URL, {"q": "aaa"}, headers=auth(admin_token)).json["items"]] == ["AAA111"]
    page = capi.get(URL, {"per_page": "1", "page": "2"}, headers=auth(admin_token)).json
    assert page["total"] == 2 and [c["code"] for c in page["items"]] == ["AAA111"]
    assert error_code(capi.get(URL, {"status": "nope"}, headers=auth(admin_token), status=400)) == "invalid_request"
    assert error_code(capi.get(URL, {"page": "0"}, headers=auth(admin_token), status=400)) == "invalid_request"
    for bad in ("999999", "abc", "0", "1" * 12):
        assert error_code(capi.get(f"{URL}/{bad}", headers=auth(admin_token), status=404)) == "not_found"


def test_patch_changes_only_what_it_names(capi, creg, shop, admin_token):
    cid = add_coupon(creg, "PATCHME", "percent", "10", max_discount="5.00", max_uses=3, skus=["CARD10"])
    resp = capi.patch_json(f"{URL}/{cid}", {"value": "20", "per_buyer": 2}, headers=auth(admin_token))
    body = resp.json
    assert (body["value"], body["max_discount"], body["max_uses"], body["per_buyer"], body["skus"]) == \
        ("20", "5.00", 3, 2, ["CARD10"])
    body = capi.patch_json(f"{URL}/{cid}", {"max_uses": None, "scope": "all"}, headers=auth(admin_token)).json
    assert (body["max_uses"], body["scope"], body["skus"]) == (None, "all", [])
    resp = capi.patch_json(f"{URL}/{cid}", {"kind": "fixed"}, headers=auth(admin_token), status=422)
    assert resp.json["error"]["field"] == "value"
    body = capi.patch_json(f"{URL}/{cid}", {"kind": "fixed", "value": "2.00"}, headers=auth(admin_token)).json
    assert (body["kind"], body["value"], body["max_discount"]) == ("fixed", "2.00", None)
    body = capi.patch_json(f"{URL}/{cid}", {"active": False}, headers=auth(admin_token)).json
    assert body["status"] == "disabled"
    assert error_code(place(capi, expect=409, coupon="PATCHME")) == "coupon_unavailable"
    resp = capi.patch_json(f"{URL}/{cid}", {"value": "nope"}, headers=auth(admin_token), status=422)
    assert resp.json["error"]["field"] == "value"
    add_coupon(creg, "OTHER", "fixed", "1.00")
    assert error_code(capi.patch_json(f"{URL}/{cid}", {"code": "other"}, headers=auth(admin_token),
                                      status=409)) == "code_taken"


def test_who_may_call_it(capi, creg, shop, admin_token):
    from kameng import accounts

    body = {"code": "NOPE1", "kind": "fixed", "value": "1.00"}
    assert capi.post_json(URL, body, status=401).json["error"]["code"]
    capi.get(URL, status=401)
    with app_request(creg) as req:
        buyer = accounts.create_user(req.db, "buyer@example.com", "buyer-password-123")
        token = accounts.create_token(req.db, buyer, "t")
    capi.post_json(URL, body, headers=auth(token), status=403)
    capi.get(URL, headers=auth(token), status=403)
    assert count_coupons(creg) == 0


def test_a_session_post_needs_the_csrf_header(admin_web, creg, shop):
    body = {"code": "SESSION1", "kind": "fixed", "value": "1.00"}
    resp = admin_web.post_json(URL, body, status=400)
    assert error_code(resp) == "csrf_failed"
    token = admin_web.get("/-/coupons/new").forms["coupon-form"]["csrf_token"].value
    admin_web.post_json(URL, body, headers={"X-CSRF-Token": token}, status=201)


def test_the_api_answers_404_while_the_plugin_is_disabled(capi, creg, shop, admin_token):
    set_plugin(creg, "coupons", enabled=False)
    capi.get(URL, headers=auth(admin_token), status=404)
    capi.post_json(URL, {"code": "OFF1", "kind": "fixed", "value": "1.00"}, headers=auth(admin_token), status=404)
    assert count_coupons(creg) == 0


def test_a_coupon_made_by_the_api_is_single_use_when_asked(capi, creg, shop, admin_token):
    capi.post_json(URL, {"code": "API1", "kind": "fixed", "value": "3.00", "max_uses": 1},
                   headers=auth(admin_token), status=201)
    assert place(capi, coupon="API1").json["amount"] == "7.00"
    assert error_code(place(capi, expect=409, coupon="API1", contact="b@example.com")) == "coupon_unavailable"
    assert coupon_state(creg, "API1") == (1, ["used"])


def test_openapi_lists_the_coupon_api_while_enabled(creg, capi):
    from kameng.testing import set_plugin

    set_plugin(creg, "coupons", enabled=True)
    doc = capi.get("/api/v1/openapi.json").json
    assert {"get", "post"} <= set(doc["paths"]["/api/v1/admin/coupons"])
    assert {"get", "patch"} <= set(doc["paths"]["/api/v1/admin/coupons/{id}"])
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)
    set_plugin(creg, "coupons", enabled=False)
    assert "/api/v1/admin/coupons" not in capi.get("/api/v1/openapi.json").json["paths"]
