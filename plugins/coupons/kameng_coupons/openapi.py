"""The coupons admin API in ``/api/v1/openapi.json`` (``kameng_openapi_paths``)."""
from __future__ import annotations

ADMIN = [{"bearerAuth": []}]
MONEY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$"}
WHEN = {"type": ["string", "null"], "format": "date-time"}
CODES = {"type": "array", "items": {"type": "string"}}


def _err(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


FIELDS = {
    "code": {"type": "string", "minLength": 3, "maxLength": 64},
    "kind": {"enum": ["fixed", "percent"]},
    "value": {"type": "string", "description": "an amount (fixed) or a percentage like \"15\" (percent)"},
    "max_discount": {**MONEY, "type": ["string", "null"]},
    "min_amount": {**MONEY, "type": ["string", "null"]},
    "max_uses": {"type": ["integer", "null"], "minimum": 1},
    "per_buyer": {"type": ["integer", "null"], "minimum": 1},
    "starts_at": WHEN, "ends_at": WHEN,
    "skus": CODES, "products": {"type": "array", "items": {"type": "integer"}},
    "categories": {"type": "array", "items": {"type": "integer"}},
    "active": {"type": "boolean"}, "note": {"type": "string"},
}
COUPON = {"type": "object", "properties": {
    **FIELDS, "id": {"type": "integer"}, "used": {"type": "integer"},
    "status": {"type": "string"}, "scope": {"enum": ["all", "categories", "products", "skus"]},
    "batch": {"type": ["string", "null"]}, "currency": {"type": "string"},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"}}}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
DENIED = {"401": _err("no token"), "403": _err("not an admin")}


def paths() -> dict:
    one = {"200": {"description": "the coupon", "content": {"application/json": {"schema": COUPON}}}}
    return {
        "/api/v1/admin/coupons": {
            "get": {"summary": "Coupons (the coupons plugin)", "security": ADMIN, "parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string"}},
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "batch", "in": "query", "schema": {"type": "string"}},
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
                "responses": {"200": {"description": "coupons", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"items": {"type": "array", "items": COUPON},
                                                     "total": {"type": "integer"}}}}}},
                    "400": _err("unknown status"), **DENIED}},
            "post": {"summary": "Create a coupon (the coupons plugin)", "security": ADMIN,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["code", "kind", "value"], "properties": FIELDS}}}},
                     "responses": {"201": {"description": "created", "content": {
                         "application/json": {"schema": COUPON}}},
                         "400": _err("bad JSON"), "409": _err("code_taken: the code is in use"),
                         "422": _err("invalid_request: a field is wrong (named in `field`)"), **DENIED}},
        },
        "/api/v1/admin/coupons/{id}": {
            "get": {"summary": "One coupon", "security": ADMIN, "parameters": [ID],
                    "responses": {**one, "404": _err("no such coupon"), **DENIED}},
            "patch": {"summary": "Change a coupon (only the fields sent)", "security": ADMIN, "parameters": [ID],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {
                          "type": "object", "properties": FIELDS}}}},
                      "responses": {**one, "400": _err("bad JSON"), "404": _err("no such coupon"),
                                    "409": _err("code_taken"), "422": _err("invalid_request"), **DENIED}},
        },
    }
