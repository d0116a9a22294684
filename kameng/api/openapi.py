"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``."""
from __future__ import annotations

import kameng

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}


def _err(desc):
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


PLUGIN = {"type": "object", "required": ["id", "name", "enabled", "settings"], "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "string"},
    "description": {"type": "string"}, "author": {"type": "string"}, "category": {"type": "string"},
    "kameng_api": {"type": "string"}, "enabled": {"type": "boolean"},
    "errors": {"type": "array", "items": {"type": "string"}},
    "settings": {"type": "object"}, "settings_schema": {"type": "array", "items": {"type": "object"}}}}


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
        },
        "components": {
            "schemas": {"Error": ERROR, "Plugin": PLUGIN},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
