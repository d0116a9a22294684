"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``."""
from __future__ import annotations

import kameng

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                   "field": {"type": "string", "description": "the request field at fault, when there is one"}}}}}


def _err(desc):
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


PLUGIN = {"type": "object", "required": ["id", "name", "enabled", "settings"], "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "string"},
    "description": {"type": "string"}, "author": {"type": "string"}, "category": {"type": "string"},
    "kameng_api": {"type": "string"}, "enabled": {"type": "boolean"},
    "errors": {"type": "array", "items": {"type": "string"}},
    "settings": {"type": "object"}, "settings_schema": {"type": "array", "items": {"type": "object"}}}}



# -- catalog ---------------------------------------------------------------------------------------

MONEY = {"type": "string", "pattern": r"^(0|[1-9]\d{0,14})(\.\d+)?$", "examples": ["12.50"],
         "description": "a decimal amount with the currency's digits"}
SKU_CODE = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
PRODUCT_TYPE = {"type": "string", "enum": ["card_key", "direct_recharge", "manual"]}
NULLABLE_INT = {"type": ["integer", "null"]}
SPECIAL_PRICES = {"type": "object", "maxProperties": 50, "additionalProperties": MONEY,
                  "description": "prices by member level (level_prices) or agent tier (tier_prices) code"}
ATTRIBUTES = {"type": "object", "maxProperties": 10, "additionalProperties": {"type": "string", "maxLength": 100}}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


CATEGORY = {"type": "object", "required": ["id", "name", "parent_id", "icon", "sort"], "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "parent_id": NULLABLE_INT, "icon": {"type": "string"},
    "sort": {"type": "integer"}, "visible": {"type": "boolean", "description": "admin API only"}}}
CATEGORY_INPUT = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 100}, "parent_id": {"type": ["integer", "null"],
                                                                                "minimum": 1},
    "icon": {"type": "string", "maxLength": 255, "description": "an http(s) URL or a path"},
    "sort": {"type": "integer", "minimum": -1000000, "maximum": 1000000}, "visible": {"type": "boolean"}}}
RECHARGE_FIELD = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}, "label": {"type": "string"},
    "kind": {"type": "string", "enum": ["mobile_cn", "qq", "email", "text", "choice"]},
    "required": {"type": "boolean"}, "choices": {"type": "array", "items": {"type": "string"}},
    "pattern": {"type": "string", "maxLength": 200, "description": "a regular expression (text fields)"}}}
SKU = {"type": "object", "required": ["code", "name", "price", "stock", "min_quantity", "max_quantity", "attributes"],
       "properties": {
           "code": {"type": "string"}, "name": {"type": "string"}, "price": MONEY,
           "stock": {"type": ["integer", "null"], "description": "null: unlimited"},
           "min_quantity": {"type": "integer"}, "max_quantity": {"type": "integer"}, "attributes": ATTRIBUTES,
           # the admin API adds:
           "id": {"type": "integer"}, "product_id": {"type": "integer"}, "cost_price": MONEY,
           "visible": {"type": "boolean"}, "low_stock_threshold": {"type": "integer"}, "sort": {"type": "integer"},
           "level_prices": SPECIAL_PRICES, "tier_prices": SPECIAL_PRICES}}
_SKU_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200}, "price": MONEY, "cost_price": MONEY,
    "min_quantity": {"type": "integer", "minimum": 1, "maximum": 10000},
    "max_quantity": {"type": "integer", "minimum": 1, "maximum": 10000},
    "attributes": ATTRIBUTES, "level_prices": SPECIAL_PRICES, "tier_prices": SPECIAL_PRICES,
    "stock": {"type": ["integer", "null"], "minimum": 0, "description": "not for card-key SKUs; null: unlimited"},
    "low_stock_threshold": {"type": "integer", "minimum": 0, "maximum": 1000000},
    "sort": {"type": "integer", "minimum": -1000000, "maximum": 1000000}, "visible": {"type": "boolean"}}
SKU_INPUT = {"type": "object", "required": ["code", "name", "price"],
             "properties": {"code": SKU_CODE, **_SKU_FIELDS}}
SKU_PATCH = {"type": "object", "properties": _SKU_FIELDS}
PRODUCT = {"type": "object", "required": ["id", "name", "type", "category_id", "description", "instructions",
                                          "images", "tags", "hot", "recommended", "recharge_fields", "skus"],
           "properties": {
               "id": {"type": "integer"}, "name": {"type": "string"}, "type": PRODUCT_TYPE,
               "category_id": NULLABLE_INT,
               "description": {"type": "string", "description": "sanitised HTML"},
               "instructions": {"type": "string", "description": "sanitised HTML"},
               "images": {"type": "array", "items": {"type": "string"}},
               "tags": {"type": "array", "items": {"type": "string"}},
               "hot": {"type": "boolean"}, "recommended": {"type": "boolean"},
               "recharge_fields": {"type": "array", "items": _ref("RechargeField")},
               "skus": {"type": "array", "items": _ref("Sku")},
               # the admin API adds:
               "visible": {"type": "boolean"}, "archived": {"type": "boolean"}, "sort": {"type": "integer"},
               "created_at": {"type": ["string", "null"], "format": "date-time"}}}
PRODUCT_SUMMARY = {"type": "object", "required": ["id", "name", "type", "category_id", "min_price", "in_stock"],
                   "properties": {
                       "id": {"type": "integer"}, "name": {"type": "string"}, "type": PRODUCT_TYPE,
                       "category_id": NULLABLE_INT, "image": {"type": ["string", "null"]},
                       "tags": {"type": "array", "items": {"type": "string"}},
                       "hot": {"type": "boolean"}, "recommended": {"type": "boolean"},
                       "min_price": {"anyOf": [MONEY, {"type": "null"}]}, "in_stock": {"type": "boolean"},
                       "visible": {"type": "boolean"}, "archived": {"type": "boolean"}}}
_PRODUCT_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200}, "type": PRODUCT_TYPE,
    "category_id": {"type": ["integer", "null"], "minimum": 1},
    "description": {"type": "string", "maxLength": 50000, "description": "HTML; sanitised on save"},
    "instructions": {"type": "string", "maxLength": 5000, "description": "HTML; sanitised on save"},
    "images": {"type": "array", "maxItems": 12, "items": {"type": "string", "maxLength": 491}},
    "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}},
                       {"type": "string", "description": "comma separated"}]},
    "recharge_fields": {"type": "array", "maxItems": 10, "items": _ref("RechargeField"),
                        "description": "required (non-empty) for direct_recharge products"},
    "hot": {"type": "boolean"}, "recommended": {"type": "boolean"}, "visible": {"type": "boolean"},
    "archived": {"type": "boolean"}, "sort": {"type": "integer", "minimum": -1000000, "maximum": 1000000}}
PRODUCT_INPUT = {"type": "object", "required": ["name", "type", "skus"], "properties": {
    **_PRODUCT_FIELDS, "skus": {"type": "array", "minItems": 1, "items": _ref("SkuInput")}}}
PRODUCT_PATCH = {"type": "object", "properties": _PRODUCT_FIELDS}
STOCK = {"type": "object", "required": ["available", "reserved", "sold", "void"], "properties": {
    "available": {"type": "integer"}, "reserved": {"type": "integer"}, "sold": {"type": "integer"},
    "void": {"type": "integer"},
    "stock": {"type": ["integer", "null"], "description": "the SKU's stock counter (null: unlimited)"}}}
IMPORT_RESULT = {"type": "object", "required": ["imported", "skipped", "duplicates", "invalid", "import_id"],
                 "properties": {
                     "imported": {"type": "integer"}, "skipped": {"type": "integer"},
                     "duplicates": {"type": "integer"}, "invalid": {"type": "integer"},
                     "invalid_lines": {"type": "array", "items": {"type": "integer"},
                                       "description": "numbers of the first 100 invalid lines"},
                     "lines": {"type": "integer"}, "import_id": {"type": "integer"}}}
KEY_IMPORT = {"type": "object", "required": ["id", "source", "total", "lines", "imported", "duplicates", "invalid",
                                             "created_at"], "properties": {
    "id": {"type": "integer"}, "source": {"type": "string"}, "created_by": {"type": "string"},
    "total": {"type": "integer", "description": "lines in the upload"},
    "lines": {"type": "integer", "description": "lines read so far"}, "imported": {"type": "integer"},
    "duplicates": {"type": "integer"}, "invalid": {"type": "integer"},
    "created_at": {"type": "string", "format": "date-time"}}}
CATALOG_SCHEMAS = {"Category": CATEGORY, "CategoryInput": CATEGORY_INPUT, "RechargeField": RECHARGE_FIELD,
                   "Sku": SKU, "SkuInput": SKU_INPUT, "SkuPatch": SKU_PATCH, "Product": PRODUCT,
                   "ProductSummary": PRODUCT_SUMMARY, "ProductInput": PRODUCT_INPUT, "ProductPatch": PRODUCT_PATCH,
                   "Stock": STOCK, "ImportResult": IMPORT_RESULT, "KeyImport": KEY_IMPORT}


def _json(desc, schema):
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


def _items(name, paged=False):
    props = {"items": {"type": "array", "items": _ref(name)}}
    if paged:
        props.update({"total": {"type": "integer"}, "page": {"type": "integer"}, "per_page": {"type": "integer"}})
    return {"type": "object", "required": list(props), "properties": props}


def _body(name):
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def catalog_paths() -> dict:
    admin = [{"bearerAuth": []}]
    denied = {"401": _err("no token"), "403": _err("not an admin")}
    bad_body = {"400": _err("the body is not a JSON object"), "422": _err("a field is invalid (error.field names it)")}
    product_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    sku_code = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
    listing = [
        {"name": "category", "in": "query", "schema": {"type": "integer", "minimum": 1},
         "description": "this category and the ones under it"},
        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100},
         "description": "words in the name or the tags, case-insensitive, taken literally"},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000000}},
        {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}]
    return {
        "/api/v1/categories": {"get": {"summary": "Visible categories, ordered", "responses": {
            "200": _json("categories", _items("Category"))}}},
        "/api/v1/products": {"get": {"summary": "Visible products, paged", "parameters": listing, "responses": {
            "200": _json("products", _items("ProductSummary", paged=True)), "400": _err("bad parameter")}}},
        "/api/v1/products/{id}": {"get": {"summary": "One visible product with its SKUs",
                                          "parameters": [product_id], "responses": {
                "200": _json("product", _ref("Product")), "404": _err("no such product")}}},
        "/api/v1/admin/categories": {
            "get": {"summary": "Every category", "security": admin, "responses": {
                "200": _json("categories", _items("Category")), **denied}},
            "post": {"summary": "Create a category", "security": admin, "requestBody": _body("CategoryInput"),
                     "responses": {"201": _json("category", _ref("Category")), **bad_body, **denied}}},
        "/api/v1/admin/products": {
            "get": {"summary": "Every product, hidden and archived too", "security": admin, "parameters": listing,
                    "responses": {"200": _json("products", _items("ProductSummary", paged=True)),
                                  "400": _err("bad parameter"), **denied}},
            "post": {"summary": "Create a product with its SKUs", "security": admin,
                     "requestBody": _body("ProductInput"),
                     "responses": {"201": _json("product", _ref("Product")), **bad_body, **denied}}},
        "/api/v1/admin/products/{id}": {
            "get": {"summary": "One product", "security": admin, "parameters": [product_id], "responses": {
                "200": _json("product", _ref("Product")), "404": _err("no such product"), **denied}},
            "patch": {"summary": "Change a product (not its SKUs)", "security": admin, "parameters": [product_id],
                      "requestBody": _body("ProductPatch"), "responses": {
                          "200": _json("product", _ref("Product")), "404": _err("no such product"),
                          **bad_body, **denied}},
            "delete": {"summary": "Delete a product, or archive it when its keys were reserved or sold",
                       "security": admin, "parameters": [product_id], "responses": {
                           "200": _json("what was done", {"type": "object", "required": ["result"], "properties": {
                               "result": {"type": "string", "enum": ["deleted", "archived"]}}}),
                           "404": _err("no such product"), **denied}}},
        "/api/v1/admin/skus/{code}": {
            "get": {"summary": "One SKU", "security": admin, "parameters": [sku_code], "responses": {
                "200": _json("SKU", _ref("Sku")), "404": _err("no such SKU"), **denied}},
            "patch": {"summary": "Change a SKU: prices, limits, visibility, stock of non-card SKUs",
                      "security": admin, "parameters": [sku_code], "requestBody": _body("SkuPatch"),
                      "responses": {"200": _json("SKU", _ref("Sku")), "404": _err("no such SKU"),
                                    **bad_body, **denied}}},
        "/api/v1/admin/skus/{code}/keys": {"post": {
            "summary": "Import card keys (duplicates are skipped)", "security": admin,
            "parameters": [sku_code,
                           {"name": "separator", "in": "query", "schema": {"type": "string", "maxLength": 10},
                            "description": "lines are number<separator>secret pairs"},
                           {"name": "source", "in": "query", "schema": {"type": "string", "maxLength": 255},
                            "description": "a label for the import list (a file name)"}],
            "requestBody": {"required": True, "content": {
                "text/plain": {"schema": {"type": "string", "description": "one key per line, UTF-8, at most 20 MB"}},
                "application/json": {"schema": {"type": "object", "required": ["keys"], "properties": {
                    "keys": {"type": "array", "items": {"type": "string"}},
                    "separator": {"type": "string", "maxLength": 10}, "source": {"type": "string"}}}}}},
            "responses": {"200": _json("import report", _ref("ImportResult")),
                          "400": _err("not UTF-8, or not JSON"), "404": _err("no such SKU"),
                          "409": _err("not a card-key product (wrong_product_type)"),
                          "413": _err("over 20 MB"), "415": _err("neither text nor JSON"),
                          "422": _err("keys or separator invalid"), **denied}}},
        "/api/v1/admin/skus/{code}/stock": {"get": {
            "summary": "Card keys by state", "security": admin, "parameters": [sku_code], "responses": {
                "200": _json("counts", _ref("Stock")), "404": _err("no such SKU"), **denied}}},
        "/api/v1/admin/skus/{code}/imports": {"get": {
            "summary": "Key imports, newest first (with progress while running)", "security": admin,
            "parameters": [sku_code], "responses": {
                "200": _json("imports", _items("KeyImport")), "404": _err("no such SKU"), **denied}}},
    }

def document(request) -> dict:
    admin = [{"bearerAuth": []}]
    pid = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "kameng API", "version": kameng.__version__},
        "servers": [{"url": request.application_url}],
        "paths": {
            "/api/v1/health": {"get": {"summary": "Liveness and database check", "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"status": {"type": "string"}}}}}}}}},
            "/api/v1/admin/plugins": {"get": {"summary": "Installed plugins", "security": admin, "responses": {
                "200": {"description": "plugins", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"items": {"type": "array",
                                                               "items": {"$ref": "#/components/schemas/Plugin"}}}}}}},
                "401": _err("no token"), "403": _err("not an admin")}}},
            "/api/v1/admin/plugins/{id}": {
                "get": {"summary": "One plugin", "security": admin, "parameters": [pid], "responses": {
                    "200": {"description": "plugin", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Plugin"}}}},
                    "401": _err("no token"), "404": _err("no such plugin")}},
                "patch": {"summary": "Configure, enable or disable a plugin", "security": admin,
                          "parameters": [pid],
                          "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                              "enabled": {"type": "boolean"}, "settings": {"type": "object"}}}}}},
                          "responses": {
                              "200": {"description": "plugin", "content": {"application/json": {
                                  "schema": {"$ref": "#/components/schemas/Plugin"}}}},
                              "400": _err("bad JSON"), "401": _err("no token"), "404": _err("no such plugin"),
                              "409": _err("cannot be enabled"), "422": _err("invalid setting")}}},
            "/api/v1/admin/jobs": {"get": {"summary": "Background jobs", "security": admin, "parameters": [
                {"name": "status", "in": "query", "schema": {"enum": ["queued", "running", "done", "dead"]}}],
                "responses": {"200": {"description": "jobs"}, "401": _err("no token"),
                              "422": _err("unknown status")}}},
            **catalog_paths(),
        },
        "components": {
            "schemas": {"Error": ERROR, "Plugin": PLUGIN, **CATALOG_SCHEMAS},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
