"""The OpenAPI 3 description of the HTTP API, served at /api/openapi.json.

Written by hand from the contract (docs/http.md) rather than generated, so it
is the promise; a schemathesis run against a live server checks that every
response keeps it."""

from __future__ import annotations

from typing import Any

from catalog.errors import ALL_ERRORS

_SCALAR = {"type": ["string", "number", "integer", "boolean", "object", "array", "null"]}

RESULT = {
    "type": "object",
    "required": ["columns", "schema", "rows", "row_count", "message"],
    "additionalProperties": False,
    "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "schema": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "type"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
            },
        },
        "rows": {"type": "array", "items": {"type": "object", "additionalProperties": _SCALAR}},
        "row_count": {"type": "integer", "minimum": 0},
        "message": {"type": ["string", "null"]},
        "truncated": {"const": True,
                      "description": "Present (true) only when the answer was cut at "
                                     "[server] max_result_rows / max_result_bytes (which "
                                     "bound a request's answers together): `rows` holds "
                                     "its first rows, `message` says so"},
    },
}

ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "string", "enum": sorted({e.code for e in ALL_ERRORS})},
        "message": {"type": "string", "minLength": 1},
        "statement": {"type": ["integer", "null"], "minimum": 1},
        "line": {"type": ["integer", "null"], "minimum": 1},
        "column": {"type": ["integer", "null"], "minimum": 1},
    },
}

SUCCESS_BODY = {
    "type": "object",
    "required": ["status", "results", "took"],
    "additionalProperties": False,
    "properties": {
        "status": {"const": "success"},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
        "took": {"type": "number", "minimum": 0},
    },
}

ERROR_BODY = {
    "type": "object",
    "required": ["status", "results", "took", "error"],
    "additionalProperties": False,
    "properties": {
        "status": {"const": "error"},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
        "took": {"type": "number", "minimum": 0},
        "error": {"$ref": "#/components/schemas/Error"},
    },
}

SQL_REQUEST = {
    "type": "object",
    "required": ["sql"],
    "properties": {
        "sql": {"type": "string", "minLength": 1,
                "description": "One or more statements separated by ';'"},
        "namespace": {"type": "string",
                      "description": "Default namespace for unqualified table names"},
    },
}

_ERROR_STATUSES = {
    "400": "INVALID_REQUEST (incl. text that is not valid Unicode), PARSE_ERROR or "
           "INVALID_ARGUMENT",
    "401": "UNAUTHENTICATED: missing or wrong token",
    "403": "PERMISSION_DENIED: role too low, a path outside the backup roots, forbidden SQL",
    "404": "NOT_FOUND: namespace, table, backup, job or target",
    "408": "INVALID_REQUEST: the body did not arrive within server.body_timeout_seconds "
           "(the connection is closed)",
    "409": "ALREADY_EXISTS, or CANCELLED by KILL JOB or the statement timeout",
    "413": "REQUEST_TOO_LARGE: body over server.max_request_bytes",
    "417": "INVALID_REQUEST: an Expect header other than 100-continue (the connection "
           "is closed)",
    "422": "BACKUP_INVALID: a backup fails verification",
    "500": "INTERNAL: a bug",
    "503": "UNAVAILABLE: more than server.max_connections connections are open "
           "(Retry-After: 1; the connection is closed)",
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


# What every GET of the API may answer besides its own answers.
_EXPECT = {"417": _error_response("INVALID_REQUEST: an Expect header other than 100-continue")}
# auth.mode = "token" needs the Bearer token; mode "none" needs none (the `{}`).
_BEARER: list[dict[str, list[str]]] = [{"bearerToken": []}, {}]
_ORIGIN = ("PERMISSION_DENIED: an Origin not the server's, or (auth.mode none) a Host that "
           "is not one of the server's names (DNS rebinding)")


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Cairn", "version": "1",
                 "description": "SQL over HTTP; backup and restore of namespaces with SQL."},
        "paths": {
            "/api/sql": {
                "post": {
                    "operationId": "runSql",
                    "summary": "Run one or more SQL statements",
                    "security": _BEARER,
                    "parameters": [
                        {"name": "X-User-Id", "in": "header", "required": False,
                         "schema": {"type": "string"},
                         "description": "The caller's user id (auth mode none)"},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/SqlRequest"}}},
                    },
                    "responses": {
                        "200": {"description": "Every statement ran",
                                "content": {"application/json": {
                                    "schema": {"$ref": "#/components/schemas/SuccessBody"}}}},
                        **{code: _error_response(text) for code, text in _ERROR_STATUSES.items()},
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "responses": {
                        "200": {"description": "The server accepts SQL",
                                "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["status"],
                                    "properties": {"status": {"const": "ok"}}}}}},
                        "403": _error_response(_ORIGIN),
                        **_EXPECT,
                        "503": {"description": "The data directory refuses writes (a full "
                                               "disk): reads work, writes fail",
                                "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["status", "error"],
                                    "properties": {"status": {"const": "unavailable"},
                                                   "error": {"type": "string"}}}}}},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (admin in token mode; see docs/http.md)",
                    "security": _BEARER,
                    "responses": {
                        "200": {"description": "Prometheus text format 0.0.4",
                                "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "401": _error_response("Missing or wrong token (token mode)"),
                        "403": _error_response(f"The token's role is not admin; or {_ORIGIN}"),
                        **_EXPECT,
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {"200": {"description": "This document",
                                          "content": {"application/json": {
                                              "schema": {"type": "object"}}}},
                                  **_EXPECT},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "auth.mode = \"token\": `Authorization: Bearer <token>`, "
                                   "a token of [[auth.tokens]] (/metrics: role admin). Mode "
                                   "\"none\" takes none (X-User-Id names the user)"},
            },
            "schemas": {
                "SqlRequest": SQL_REQUEST,
                "Result": RESULT,
                "Error": ERROR,
                "SuccessBody": SUCCESS_BODY,
                "ErrorBody": ERROR_BODY,
            }
        },
    }
