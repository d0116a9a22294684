"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``."""
from __future__ import annotations

import kameng
from kameng.dock.openapi import dock_paths
from kameng.media.openapi import media_paths

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
                          "503": _err("import_stopped: the database could not store more keys (a full disk); the "
                                      "keys saved before are kept, send the same keys again to add the rest"),
                          "422": _err("keys or separator invalid"), **denied}}},
        "/api/v1/admin/skus/{code}/stock": {"get": {
            "summary": "Card keys by state", "security": admin, "parameters": [sku_code], "responses": {
                "200": _json("counts", _ref("Stock")), "404": _err("no such SKU"), **denied}}},
        "/api/v1/admin/skus/{code}/imports": {"get": {
            "summary": "Key imports, newest first (with progress while running)", "security": admin,
            "parameters": [sku_code], "responses": {
                "200": _json("imports", _items("KeyImport")), "404": _err("no such SKU"), **denied}}},
    }

# -- orders ----------------------------------------------------------------------------------------

TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_STR = {"type": ["string", "null"]}
SIGNED_MONEY = {"type": "string", "pattern": r"^-?(0|[1-9]\d{0,14})(\.\d+)?$", "examples": ["100.00", "-20.00"],
                "description": "a decimal amount with the currency's digits; a leading - takes money away"}
ORDER_STATUS = {"type": "string", "enum": ["pending", "paid", "delivering", "delivered", "failed", "refunded",
                                          "expired", "cancelled"]}
ORDER_ACTIONS = ["deliver", "redeliver", "refund", "refund_paid", "cancel", "replace_key"]
KEY = {"type": "object", "required": ["secret"], "properties": {
    "number": {"type": "string", "description": "the card number, for keys that have one"},
    "secret": {"type": "string", "description": "the card secret (a bearer value)"}}}
ORDER_EVENT = {"type": "object", "required": ["at", "kind", "from", "to", "message"], "properties": {
    "at": TIME, "kind": {"type": "string", "examples": ["status", "payment", "delivery", "refund", "note"]},
    "from": {"anyOf": [ORDER_STATUS, {"type": "null"}]}, "to": {"anyOf": [ORDER_STATUS, {"type": "null"}]},
    "message": {"type": "string", "description": "in the reader's language"}}}
ORDER_ITEM = {"type": "object", "required": ["sku", "name", "quantity", "unit_price", "keys"], "properties": {
    "sku": {"type": "string"}, "name": {"type": "string"}, "quantity": {"type": "integer"}, "unit_price": MONEY,
    "keys": {"type": "array", "items": _ref("Key"), "description": "only once delivered"}}}
PAYMENT_START = {"type": "object", "required": ["gateway", "attempt_no", "amount", "status"], "properties": {
    "gateway": {"type": "string"}, "attempt_no": {"type": "string", "description": "the merchant order number "
                                                                                  "the gateway sees"},
    "amount": MONEY, "status": {"type": "string", "enum": ["pending", "paid", "failed", "closed"]},
    "pay_url": {"type": "string", "description": "where the buyer pays (the gateway, or the order's pay page)"},
    "qr": {"type": "string", "description": "a QR code payload, for gateways that pay by scanning"}}}
PAYMENT_NOTICE = {"type": "object", "required": ["received_at", "verified", "outcome", "detail"], "properties": {
    "received_at": TIME, "verified": {"type": "boolean"},
    "outcome": {"type": "string", "examples": ["applied", "duplicate", "rejected", "amount_mismatch",
                                               "query:applied"]},
    "detail": {"type": "string"}}}
PAYMENT = {"type": "object", "required": ["attempt_no", "gateway", "amount", "status", "created_at"], "properties": {
    "attempt_no": {"type": "string"}, "gateway": {"type": "string"}, "channel": NULLABLE_STR, "amount": MONEY,
    "status": {"type": "string", "enum": ["pending", "paid", "failed", "closed"]},
    "provider_trade_no": NULLABLE_STR, "created_at": TIME, "paid_at": NULLABLE_TIME,
    "notices": {"type": "array", "items": _ref("PaymentNotice"), "description": "every notify received for it"}}}
REFUND = {"type": "object", "required": ["refund_no", "amount", "destination", "status"], "properties": {
    "refund_no": {"type": "string"}, "amount": MONEY,
    "destination": {"type": "string", "enum": ["balance", "gateway", "manual"]},
    "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]}, "reason": {"type": "string"},
    "error": NULLABLE_STR, "created_at": TIME}}
ORDER = {"type": "object", "required": ["order_no", "status", "status_label", "amount", "currency", "items", "events"],
         "properties": {
             "order_no": {"type": "string"}, "status": ORDER_STATUS, "status_label": {"type": "string"},
             "amount": MONEY, "currency": {"type": "string"}, "subtotal": MONEY, "discount": MONEY,
             "refunded": MONEY, "created_at": TIME, "expires_at": TIME, "paid_at": NULLABLE_TIME,
             "delivered_at": NULLABLE_TIME, "product_type": PRODUCT_TYPE, "payment_method": NULLABLE_STR,
             "failure_reason": NULLABLE_STR, "items": {"type": "array", "items": _ref("OrderItem")},
             "events": {"type": "array", "items": _ref("OrderEvent")},
             "delivery_note": {"type": "string", "description": "what the shop sent for a manual order"},
             "recharge": {"type": "object", "additionalProperties": {"type": "string"},
                          "description": "the account topped up (direct_recharge)"},
             # the admin API adds:
             "contact": {"type": "string"}, "user_id": NULLABLE_INT, "client_ip": {"type": "string"},
             "held": {"type": "string", "description": "why delivery waits for a review (empty: it does not)"},
             "pricing": {"type": "array", "items": {"type": "object", "required": ["step", "amount"], "properties": {
                 "step": {"type": "string", "enum": ["base", "special_price", "adjustment", "floor", "total"]},
                 "amount": {"type": "integer", "description": "minor units"}}},
                         "description": "how the amount was reached"},
             "payments": {"type": "array", "items": _ref("Payment")},
             "refunds": {"type": "array", "items": _ref("Refund")},
             "refundable": MONEY,
             "refund": _ref("Refund"),
             "result": {"type": "string", "enum": ["replaced", "refunded"],
                        "description": "replace_key: a new key was delivered, or the key's price refunded"}}}
ORDER_INPUT = {"type": "object", "required": ["sku"], "properties": {
    "sku": {"type": "string", "maxLength": 64}, "quantity": {"type": "integer", "minimum": 1, "default": 1},
    "contact": {"type": "string", "maxLength": 254, "description": "an email address or a phone number "
                                                                   "(a signed-in buyer's email by default)"},
    "query_password": {"type": "string", "minLength": 4, "maxLength": 64,
                       "description": "needed to look a guest order up"},
    "payment_method": {"type": "string", "examples": ["sandbox", "balance", "epay", "alipay", "wechatpay", "usdt"]},
    "channel": {"type": "string", "pattern": "^[a-z0-9_]{1,32}$",
                "description": "one of the gateway's channels: epay alipay, wxpay, …; alipay qrcode, page, wap; "
                               "wechatpay native, h5"},
    "recharge": {"type": "object", "additionalProperties": {"type": "string"},
                 "description": "direct_recharge only: the product's recharge_fields"},
    "coupon": {"type": "string", "maxLength": 64}}}
ORDER_CREATED = {"type": "object", "required": ["order_no", "status", "amount", "currency", "expires_at",
                                               "access_token", "payment"], "properties": {
    "order_no": {"type": "string"}, "status": ORDER_STATUS, "amount": MONEY, "currency": {"type": "string"},
    "expires_at": TIME, "access_token": {"type": "string", "description": "reads this one order (?token=)"},
    "order_url": {"type": "string", "description": "the buyer's page for the order"},
    "payment": {"anyOf": [_ref("PaymentStart"), {"type": "null"}],
                "description": "null when nothing was left to pay"}}}
ORDER_PAYMENT = {"type": "object", "required": ["order_no", "status", "payment"], "properties": {
    "order_no": {"type": "string"}, "status": ORDER_STATUS,
    "payment": {"anyOf": [_ref("PaymentStart"), {"type": "null"}]}}}
ORDER_SUMMARY = {"type": "object", "required": ["order_no", "status", "amount", "currency", "created_at"],
                 "properties": {
                     "order_no": {"type": "string"}, "status": ORDER_STATUS, "status_label": {"type": "string"},
                     "product_type": PRODUCT_TYPE, "product": {"type": "string"}, "sku": {"type": "string"},
                     "sku_name": {"type": "string"}, "quantity": {"type": "integer"}, "amount": MONEY,
                     "refunded": MONEY, "currency": {"type": "string"}, "payment_method": NULLABLE_STR,
                     "contact": {"type": "string"}, "user_id": NULLABLE_INT, "held": NULLABLE_STR,
                     "created_at": TIME, "paid_at": NULLABLE_TIME, "delivered_at": NULLABLE_TIME}}
ORDER_LIST = {"type": "object", "required": ["items", "total", "page", "per_page"], "properties": {
    "items": {"type": "array", "items": _ref("OrderSummary")}, "total": {"type": "integer"},
    "page": {"type": "integer"}, "per_page": {"type": "integer"},
    "counts": {"type": "object", "additionalProperties": {"type": "integer"},
               "description": "orders by status under every filter but status"}}}
ORDER_ACTION = {"type": "object", "required": ["reason"], "properties": {
    "reason": {"type": "string", "minLength": 1, "maxLength": 255,
               "description": "kept in the order's history and the audit log"},
    "text": {"type": "string", "maxLength": 5000, "description": "deliver: what the buyer is sent"},
    "amount": {**MONEY, "description": "refund: how much (all that is left when absent)"},
    "destination": {"type": "string", "enum": ["auto", "balance", "gateway"],
                    "description": "refund: where the money goes (auto when absent)"},
    "key_id": {"type": "integer", "minimum": 1, "description": "replace_key: the delivered key that does not work"},
    "refund_no": {"type": "string", "description": "refund_paid: the refund paid outside kameng"}}}
USER = {"type": "object", "required": ["id", "email", "role", "active", "balance", "currency"], "properties": {
    "id": {"type": "integer"}, "email": {"type": "string"}, "role": {"type": "string",
                                                                     "enum": ["buyer", "agent", "admin"]},
    "active": {"type": "boolean"}, "balance": SIGNED_MONEY, "currency": {"type": "string"},
    "created_at": NULLABLE_TIME, "last_login_at": NULLABLE_TIME, "phone": NULLABLE_STR,
    "level": {"type": ["string", "null"], "description": "the member level's code"},
    "level_manual": {"type": "boolean", "description": "the level was set by hand: the rules leave it alone"},
    "tier": {"type": ["string", "null"], "description": "the agent tier whose SKU prices the account pays"},
    "agent_status": {"type": "string", "enum": ["", "applied", "approved", "rejected"],
                     "description": "the account's application to become an agent"}}}
ACCOUNT = {"type": "object", "required": ["id", "email", "phone", "display_name", "role", "level", "tier", "balance",
                                        "currency"], "properties": {
    "id": {"type": "integer"}, "email": {"type": "string"}, "phone": NULLABLE_STR, "display_name": {"type": "string"},
    "role": {"type": "string", "enum": ["buyer", "agent", "admin"]},
    "level": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["code", "name"], "properties": {
        "code": {"type": "string"}, "name": {"type": "string"}}}], "description": "the member level"},
    "tier": {"type": ["string", "null"], "description": "the agent tier whose SKU prices the account pays"},
    "balance": SIGNED_MONEY, "currency": {"type": "string"}}}
USER_INPUT = {"type": "object", "required": ["email", "password"], "properties": {
    "email": {"type": "string", "maxLength": 254}, "password": {"type": "string", "minLength": 10},
    "role": {"type": "string", "enum": ["buyer", "agent"], "default": "buyer"},
    "level": {"type": "string", "maxLength": 32, "description": "a member level's code (set by hand)"}}}
USER_PATCH = {"type": "object", "properties": {
    "role": {"type": "string", "enum": ["buyer", "agent"],
             "description": "buyer: also drops the tier; agent: also approves any application"},
    "tier": {"type": ["string", "null"], "maxLength": 32, "description": "agents only; null or empty: none"},
    "level": {"type": ["string", "null"], "maxLength": 32,
              "description": "a level's code (fixed by hand), \"\" (no level, fixed by hand) or null (automatic: "
                             "the level rules decide)"}}}
BALANCE_INPUT = {"type": "object", "required": ["amount", "reason"], "properties": {
    "amount": SIGNED_MONEY, "reason": {"type": "string", "minLength": 1, "maxLength": 255}}}
BALANCE = {"type": "object", "required": ["balance", "currency"], "properties": {
    "balance": SIGNED_MONEY, "currency": {"type": "string"},
    "entry": {"type": "object", "description": "the ledger entry written", "properties": {
        "seq": {"type": "integer"}, "amount": SIGNED_MONEY, "reason": {"type": "string"}, "note": {"type": "string"},
        "created_at": NULLABLE_TIME}}}}
ORDER_SCHEMAS = {"Key": KEY, "OrderEvent": ORDER_EVENT, "OrderItem": ORDER_ITEM, "PaymentStart": PAYMENT_START,
                 "PaymentNotice": PAYMENT_NOTICE, "Payment": PAYMENT, "Refund": REFUND, "Order": ORDER,
                 "OrderInput": ORDER_INPUT, "OrderCreated": ORDER_CREATED, "OrderPayment": ORDER_PAYMENT,
                 "OrderSummary": ORDER_SUMMARY, "OrderList": ORDER_LIST, "OrderAction": ORDER_ACTION, "User": USER,
                 "UserInput": USER_INPUT, "UserPatch": USER_PATCH, "BalanceInput": BALANCE_INPUT, "Balance": BALANCE}


def _codes(*pairs) -> dict:
    """An error response that lists its codes: ``("code", "when"), …``."""
    return {"description": "; ".join(f"`{code}`: {when}" for code, when in pairs),
            "content": {"application/json": {"schema": _ref("Error")}}}


def order_paths() -> dict:
    admin = [{"bearerAuth": []}]
    optional_auth = [{}, {"bearerAuth": []}]
    denied = {"401": _err("no token"), "403": _err("not an admin")}
    order_no = {"name": "order_no", "in": "path", "required": True, "schema": {"type": "string",
                                                                               "pattern": r"^\d{1,24}$"}}
    access = [{"name": "query_password", "in": "query", "schema": {"type": "string"},
               "description": "the guest's query password"},
              {"name": "token", "in": "query", "schema": {"type": "string"},
               "description": "the order's access_token (also accepted as the X-Order-Token header)"},
              {"name": "X-Order-Token", "in": "header", "schema": {"type": "string"}}]
    not_found = _err("no order with this number, or a wrong or missing password or token (the same answer)")
    # a query password is checked on every route that takes one: each may answer 429
    lookup_limited = _codes(("rate_limited", "too many lookups from this address, or too many wrong query passwords "
                                             "for this order (its lookup is locked for a while; Retry-After)"))
    page = [{"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000000}},
            {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}]
    return {
        "/api/v1/orders": {"post": {
            "summary": "Place an order and start paying it", "security": optional_auth,
            "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {
                "type": "string", "pattern": r"^[A-Za-z0-9_.:\-]{8,128}$"},
                "description": "the same key and body answer the order created first (Idempotent-Replayed: "
                               "true); the same key with another body is a 409"}],
            "requestBody": _body("OrderInput"),
            "responses": {
                "201": _json("the order, and what the buyer does to pay", _ref("OrderCreated")),
                "400": _codes(("invalid_request", "the body is not a JSON object, or a bad Idempotency-Key")),
                "403": _codes(("blocked", "anti-fraud refused the order")),
                "404": _codes(("unknown_sku", "no such SKU on sale")),
                "409": _codes(("out_of_stock", "not enough stock"),
                              ("coupon_unavailable", "the coupon cannot be used (coupons plugin)"),
                              ("idempotency_conflict", "the Idempotency-Key was used for another order"),
                              ("insufficient_balance", "payment_method balance: the balance is too low")),
                "422": _codes(("invalid_quantity", "not a whole number, outside the SKU's limits, or more than "
                                                   "one order's amount can hold (max_quantity says how many)"),
                              ("invalid_amount", "the discounts leave nothing to pay"),
                              ("invalid_recharge_account", "a recharge field is missing or wrong (field names it)"),
                              ("payment_method_unavailable", "the method is not enabled, or balance for a guest"),
                              ("invalid_contact", "neither an email address nor a phone number"),
                              ("invalid_query_password", "a guest's query password must be 4 to 64 characters"),
                              ("invalid_request", "a field has the wrong type")),
                "429": _codes(("rate_limited", "too many orders from this address")),
                "502": _codes(("gateway_unavailable", "the payment provider refused or did not answer; nothing "
                                                      "was created: try again or use another method"))}}},
        "/api/v1/orders/{order_no}": {"get": {
            "summary": "An order, for its buyer (password, token, or the owner's session or token)",
            "security": optional_auth, "parameters": [order_no, *access],
            "responses": {"200": _json("the order; keys once delivered", _ref("Order")), "404": not_found,
                          "400": _codes(("captcha_required", "an anti-fraud plugin asks for a captcha first")),
                          "403": _codes(("blocked", "an anti-fraud plugin refused the lookup")),
                          "429": lookup_limited}}},
        "/api/v1/account": {"get": {
            "summary": "The signed-in account (session cookie or API token)", "security": [{"bearerAuth": []}],
            "responses": {"200": _json("the account", ACCOUNT), "401": _err("not signed in")}}},
        "/api/v1/orders/{order_no}/pay": {"post": {
            "summary": "Pay a pending order (again), maybe with another method", "security": optional_auth,
            "parameters": [order_no, *access],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["payment_method"], "properties": {
                    "payment_method": {"type": "string"}, "channel": {"type": "string"}}}}}},
            "responses": {"200": _json("the payment to make", _ref("OrderPayment")), "404": not_found,
                          "400": _codes(("invalid_request", "the body is not a JSON object")),
                          "403": _codes(("blocked", "anti-fraud refused the payment")),
                          "409": _codes(("order_not_payable", "not pending any more, or expired"),
                                        ("insufficient_balance", "the balance is too low")),
                          "422": _codes(("payment_method_unavailable", "the method or channel is not available"),
                                        ("invalid_request", "a field has the wrong type")),
                          "429": lookup_limited,
                          "502": _codes(("gateway_unavailable", "the payment provider refused or did not answer"))}}},
        "/api/v1/orders/{order_no}/cancel": {"post": {
            "summary": "Cancel an unpaid order", "security": optional_auth, "parameters": [order_no, *access],
            "responses": {"200": _json("the cancelled order", _ref("Order")), "404": not_found,
                          "409": _codes(("illegal_transition", "the order is not pending")),
                          "429": lookup_limited}}},
        "/api/v1/admin/orders": {"get": {
            "summary": "Orders, newest first, filtered and paged", "security": admin,
            "parameters": [
                {"name": "status", "in": "query", "schema": ORDER_STATUS},
                {"name": "type", "in": "query", "schema": PRODUCT_TYPE},
                {"name": "method", "in": "query", "schema": {"type": "string"}, "description": "payment method"},
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
                 "description": "placed on or after this day (UTC)"},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
                 "description": "placed on or before this day (UTC)"},
                {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100},
                 "description": "order number (or part), contact, SKU code, payment attempt or gateway trade number"},
                *page],
            "responses": {"200": _json("orders", _ref("OrderList")),
                          "400": _codes(("invalid_request", "a filter or page parameter is not understood")),
                          **denied}}},
        "/api/v1/admin/orders/{order_no}": {"get": {
            "summary": "One order with its payments (and their notifications), refunds and full trail",
            "security": admin, "parameters": [order_no],
            "responses": {"200": _json("the order", _ref("Order")), "404": _err("no such order"), **denied}}},
        "/api/v1/admin/orders/{order_no}/{action}": {"post": {
            "summary": "Act on an order: deliver by hand, deliver again, refund, mark a refund paid by hand, "
                       "cancel, replace an invalid key",
            "security": admin,
            "parameters": [order_no, {"name": "action", "in": "path", "required": True,
                                      "schema": {"type": "string", "enum": ORDER_ACTIONS}}],
            "requestBody": _body("OrderAction"),
            "responses": {"200": _json("the order after the action", _ref("Order")),
                          "400": _codes(("invalid_request", "the body is not a JSON object")),
                          "404": _codes(("not_found", "no such order, action or refund")),
                          "409": _codes(("illegal_transition", "the order's status does not allow it"),
                                        ("not_manual", "card-key orders are delivered automatically"),
                                        ("refund_started", "a refund was started for this order"),
                                        ("not_replaceable", "not a delivered key of this order"),
                                        ("not_manual_refund", "the refund is not waiting to be paid by hand"),
                                        ("nothing_to_refund", "nothing is left to refund")),
                          "422": _codes(("invalid_request", "a field is missing or wrong (field names it)"),
                                        ("refund_too_large", "more than is left to refund"),
                                        ("no_balance", "a guest order cannot be refunded to a balance"),
                                        ("refund_unsupported", "the gateway cannot refund")),
                          **denied}}},
        "/api/v1/admin/users": {
            "get": {"summary": "Accounts with their balances, newest first", "security": admin,
                    "parameters": [{"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100},
                                    "description": "part of the email address"},
                                   {"name": "role", "in": "query",
                                    "schema": {"type": "string", "enum": ["buyer", "agent", "admin"]}}, *page],
                    "responses": {"200": _json("accounts", _items("User", paged=True)),
                                  "400": _err("bad parameter"), **denied}},
            "post": {"summary": "Create a buyer or agent account", "security": admin,
                     "requestBody": _body("UserInput"),
                     "responses": {"201": _json("the account", _ref("User")),
                                   "400": _codes(("invalid_request", "the body is not a JSON object")),
                                   "409": _codes(("email_taken", "an account with this email exists")),
                                   "422": _codes(("invalid_request",
                                                  "a bad email, a weak password, a role other than buyer or agent, "
                                                  "or no such member level")),
                                   **denied}}},
        "/api/v1/admin/users/{id}": {
            "get": {"summary": "One account", "security": admin,
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "responses": {"200": _json("the account", _ref("User")), "404": _err("no such account"),
                                  **denied}},
            "patch": {"summary": "Change an account's role, agent tier or member level", "security": admin,
                      "parameters": [{"name": "id", "in": "path", "required": True,
                                      "schema": {"type": "integer"}}],
                      "requestBody": _body("UserPatch"),
                      "responses": {"200": _json("the account", _ref("User")),
                                    "400": _codes(("invalid_request", "the body is not a JSON object")),
                                    "404": _err("no such account"),
                                    "422": _codes(("invalid_request", "a bad role, tier or level, a tier for a "
                                                   "buyer, or an admin account")), **denied}}},
        "/api/v1/admin/users/{id}/balance": {"post": {
            "summary": "Credit or debit an account's balance (a ledger entry)", "security": admin,
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "requestBody": _body("BalanceInput"),
            "responses": {"200": _json("the new balance", _ref("Balance")),
                          "400": _codes(("invalid_request", "the body is not a JSON object")),
                          "404": _err("no such account"),
                          "409": _codes(("insufficient_balance", "the debit is more than the balance")),
                          "422": _codes(("invalid_request", "amount or reason missing or wrong")), **denied}}},
    }


def plugin_paths(request, core: dict) -> dict:
    """The paths enabled plugins document (``kameng_openapi_paths``); never one of the core's."""
    out = {}
    for result in request.hooks.kameng_openapi_paths(request=request):
        for path, item in (result or {}).items():
            if isinstance(path, str) and path.startswith("/") and path not in core and isinstance(item, dict):
                out.setdefault(path, item)
    return out


def document(request) -> dict:
    doc = core_document(request)
    doc["paths"].update(plugin_paths(request, doc["paths"]))
    return doc


def core_document(request) -> dict:
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
            **order_paths(),
            **dock_paths(),
            **media_paths(),
        },
        "components": {
            "schemas": {"Error": ERROR, "Plugin": PLUGIN, **CATALOG_SCHEMAS, **ORDER_SCHEMAS},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
