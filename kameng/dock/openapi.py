"""The docking API in the OpenAPI document (merged into the paths of
:func:`kameng.api.openapi.document`). Schemas are inline, so nothing needs
adding to the core's components."""
from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}
MONEY = {"type": "string", "pattern": r"^-?(0|[1-9]\d{0,14})(\.\d+)?$", "examples": ["12.50"]}
TIME = {"type": ["string", "null"], "format": "date-time"}
OUT_ORDER_NO = {"type": "string", "pattern": r"^[A-Za-z0-9_.:\-]{1,64}$"}

SIGNED = [
    {"name": "X-Kameng-Key", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "the key id (dk_…)"},
    {"name": "X-Kameng-Timestamp", "in": "header", "required": True, "schema": {"type": "string",
                                                                               "pattern": r"^\d{1,12}$"},
     "description": "unix seconds; more than 300 s off the shop's clock is refused"},
    {"name": "X-Kameng-Nonce", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_\-]{8,64}$"},
     "description": "new for every request of this key"},
    {"name": "X-Kameng-Signature", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": r"^[0-9a-fA-F]{64}$"},
     "description": "hex HMAC-SHA256(secret, METHOD\\nPATH\\nSORTED_QUERY\\nSHA256_HEX(BODY)\\nTIMESTAMP\\nNONCE); "
                    "see docs/docking.md"},
]

SKU = {"type": "object", "required": ["code", "name", "price", "stock"], "properties": {
    "code": {"type": "string"}, "name": {"type": "string"},
    "price": {**MONEY, "description": "this account's price for one unit"},
    "stock": {"type": ["integer", "null"], "description": "null: unlimited"},
    "min_quantity": {"type": "integer"}, "max_quantity": {"type": "integer"}, "attributes": {"type": "object"}}}
GOODS = {"type": "object", "required": ["id", "name", "type", "skus"], "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"},
    "type": {"type": "string", "enum": ["card_key", "direct_recharge", "manual"]},
    "category": {"type": "string"}, "description": {"type": "string", "description": "sanitised HTML"},
    "currency": {"type": "string"},
    "recharge_fields": {"type": "array", "items": {"type": "object"},
                        "description": "the inputs a direct_recharge order needs in recharge"},
    "updated_at": TIME, "skus": {"type": "array", "items": SKU}}}
KEY = {"type": "object", "required": ["secret"], "properties": {
    "number": {"type": "string"}, "secret": {"type": "string"}}}
ORDER = {"type": "object", "required": ["out_order_no", "order_no", "status", "amount", "keys"], "properties": {
    "out_order_no": OUT_ORDER_NO, "order_no": {"type": "string"},
    "status": {"type": "string", "enum": ["pending", "paid", "delivering", "delivered", "failed", "refunded",
                                          "expired", "cancelled"]},
    "amount": MONEY, "currency": {"type": "string"}, "sku": {"type": "string"}, "quantity": {"type": "integer"},
    "refunded": MONEY, "keys": {"type": "array", "items": KEY, "description": "once delivered"},
    "delivery_note": {"type": "string", "description": "what the shop wrote when it fulfilled the order by hand"},
    "failure_reason": {"type": ["string", "null"]}, "created_at": TIME, "paid_at": TIME, "delivered_at": TIME,
    "event": {"type": "string", "enum": ["delivered", "failed", "refunded"], "description": "callbacks only"}}}
ORDER_INPUT = {"type": "object", "required": ["sku", "quantity", "out_order_no"], "properties": {
    "sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}, "out_order_no": OUT_ORDER_NO,
    "recharge": {"type": "object", "additionalProperties": {"type": "string"}},
    "callback_url": {"type": "string", "format": "uri", "maxLength": 1000,
                     "description": "POSTed the order, signed, when it is delivered, fails or is refunded"}}}
DOCK_KEY = {"type": "object", "required": ["key_id", "active"], "properties": {
    "key_id": {"type": "string"}, "name": {"type": "string"}, "user_id": {"type": "integer"},
    "ip_allowlist": {"type": "array", "items": {"type": "string"}}, "created_at": TIME, "last_used_at": TIME,
    "revoked_at": TIME, "active": {"type": "boolean"},
    "secret": {"type": "string", "description": "in the creation answer only"}}}


def _json(desc, schema):
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


def _codes(*pairs):
    return {"description": "; ".join(f"`{code}`: {when}" for code, when in pairs),
            "content": {"application/json": {"schema": ERROR}}}


REFUSED = {
    "401": _codes(("missing_credentials", "a signing header is missing"),
                  ("invalid_timestamp", "the timestamp is not unix seconds"),
                  ("stale_timestamp", "the timestamp is more than 300 s off"),
                  ("invalid_nonce", "the nonce is malformed"), ("invalid_key", "unknown or revoked key"),
                  ("invalid_signature", "the signature does not match"),
                  ("nonce_reused", "the nonce was seen already")),
    "403": _codes(("ip_not_allowed", "the key's IP allow-list does not hold the caller's address")),
    "429": _codes(("rate_limited", "too many refused requests from this address or with this key: wait until "
                                   "the minute ends (Retry-After)")),
}


def dock_paths() -> dict:
    admin = [{"bearerAuth": []}]
    denied = {"401": _err("no token"), "403": _err("not an admin")}
    user_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "/api/v1/dock/goods": {"get": {
            "summary": "Docking: the goods on sale, with this account's prices and the stock",
            "parameters": SIGNED, "responses": {
                "200": _json("goods", {"type": "object", "required": ["items"],
                                       "properties": {"items": {"type": "array", "items": GOODS}}}), **REFUSED}}},
        "/api/v1/dock/goods/{id}": {"get": {
            "summary": "Docking: one product", "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}, *SIGNED],
            "responses": {"200": _json("the product", GOODS), "404": _codes(("not_found", "not on sale")),
                          **REFUSED}}},
        "/api/v1/dock/balance": {"get": {
            "summary": "Docking: this account's balance", "parameters": SIGNED, "responses": {
                "200": _json("the balance", {"type": "object", "required": ["balance", "currency"], "properties": {
                    "balance": MONEY, "currency": {"type": "string"}}}), **REFUSED}}},
        "/api/v1/dock/orders": {"post": {
            "summary": "Docking: place an order paid from this account's balance (idempotent on out_order_no)",
            "parameters": SIGNED,
            "requestBody": {"required": True, "content": {"application/json": {"schema": ORDER_INPUT}}},
            "responses": {
                "201": _json("the order (delivered with its keys when the shop's own stock has them)", ORDER),
                "200": _json("the order placed before under this out_order_no (Idempotent-Replayed: true)",
                             ORDER),
                "400": _codes(("invalid_request", "the body is not a JSON object")),
                **REFUSED,
                "404": _codes(("unknown_sku", "no such SKU on sale")),
                "409": _codes(("insufficient_balance", "the balance is too low: nothing was created"),
                              ("idempotency_conflict", "the out_order_no was used for another order"),
                              ("out_of_stock", "not enough stock")),
                "413": _codes(("too_large", "the body is over 64 KiB")),
                "422": _codes(("invalid_request", "a field is missing or has the wrong type (field names it)"),
                              ("invalid_quantity", "not a whole number, or outside the SKU's limits"),
                              ("invalid_recharge_account", "a recharge field is missing or wrong"),
                              ("invalid_callback_url", "not a public https URL"))}}},
        "/api/v1/dock/orders/{out_order_no}": {"get": {
            "summary": "Docking: an order of this account, by its out_order_no",
            "parameters": [{"name": "out_order_no", "in": "path", "required": True, "schema": OUT_ORDER_NO},
                           *SIGNED],
            "responses": {"200": _json("the order; keys once delivered", ORDER),
                          "404": _codes(("not_found", "no order of this account has this out_order_no")),
                          **REFUSED}}},
        "/api/v1/admin/users/{id}/dock-keys": {
            "get": {"summary": "An account's docking keys (never their secrets)", "security": admin,
                    "parameters": [user_id],
                    "responses": {"200": _json("keys", {"type": "object", "properties": {
                        "items": {"type": "array", "items": DOCK_KEY}}}), "404": _err("no such account"), **denied}},
            "post": {"summary": "Create a docking key for an account; the secret is in this answer only",
                     "security": admin, "parameters": [user_id],
                     "requestBody": {"required": False, "content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "name": {"type": "string", "maxLength": 100},
                             "ip_allowlist": {"oneOf": [{"type": "string"},
                                                        {"type": "array", "items": {"type": "string"}}],
                                              "description": "IP addresses or CIDR ranges; empty: any"}}}}}},
                     "responses": {"201": _json("the key and its secret", DOCK_KEY),
                                   "400": _codes(("invalid_request", "the body is not a JSON object")),
                                   "404": _err("no such account"),
                                   "409": _codes(("too_many_keys", "the account has 20 active keys")),
                                   "422": _codes(("invalid_request", "a bad name or allow-list, or an admin account")),
                                   **denied}}},
        "/api/v1/admin/dock-keys/{key_id}/revoke": {"post": {
            "summary": "Revoke a docking key (at once, for good)", "security": admin,
            "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json("the revoked key", DOCK_KEY), "404": _err("no such key"), **denied}}},
    }


def _err(desc):
    return {"description": desc, "content": {"application/json": {"schema": ERROR}}}
