"""The image upload in the OpenAPI document (merged into the paths of
:func:`kameng.api.openapi.document`; the schemas are inline)."""
from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}

IMAGE = {"type": "object", "required": ["name", "path", "url", "content_type", "format", "width", "height", "bytes",
                                        "created"], "properties": {
    "name": {"type": "string", "pattern": r"^[0-9a-f]{64}\.(png|jpg|gif|webp)$",
             "description": "the SHA-256 of the stored bytes and the format's extension"},
    "path": {"type": "string", "description": "/media/<name>: what to put in a product's images or the logo"},
    "url": {"type": "string", "description": "the same on kameng.base_url"},
    "content_type": {"type": "string", "enum": ["image/png", "image/jpeg", "image/gif", "image/webp"]},
    "format": {"type": "string", "enum": ["png", "jpeg", "gif", "webp"]},
    "width": {"type": "integer"}, "height": {"type": "integer"},
    "bytes": {"type": "integer", "description": "the size of the stored, re-encoded file"},
    "created": {"type": "boolean", "description": "false when the same image was stored before"}}}


def _codes(*pairs) -> dict:
    return {"description": "; ".join(f"`{code}`: {when}" for code, when in pairs),
            "content": {"application/json": {"schema": ERROR}}}


def media_paths() -> dict:
    return {"/api/v1/admin/media": {"post": {
        "summary": "Upload an image (PNG, JPEG, GIF or WebP), judged by its content and stored re-encoded, "
                   "without metadata; the answer gives its /media/ address",
        "security": [{"bearerAuth": []}],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}}}}}},
        "responses": {
            "201": {"description": "the stored image", "content": {"application/json": {"schema": IMAGE}}},
            "400": _codes(("missing_file", "no file field"), ("empty_file", "the file is empty"),
                          ("invalid_request", "the multipart body cannot be read"),
                          ("csrf_failed", "a session-cookie request without X-CSRF-Token")),
            "401": _codes(("unauthorized", "no token")),
            "403": _codes(("forbidden", "not an admin")),
            "413": _codes(("too_large", "more bytes than kameng.media.max_bytes")),
            "415": _codes(("unsupported_image", "not a PNG, JPEG, GIF or WebP image (SVG, HTML, text, …)")),
            "422": _codes(("invalid_image", "damaged or truncated"),
                          ("image_too_large", "more pixels than kameng.media.max_pixels, or a side over 16383")),
            "503": _codes(("media_unavailable", "neither kameng.media_dir nor kameng.data_dir is set"))}}}}
