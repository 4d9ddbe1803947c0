"""Answers the OpenAPI document (/api/openapi.json) did not describe.

`POST /api/sql` with an `Expect` other than `100-continue` was aiohttp's 417
text/plain (its expect handler runs outside the error middleware): not the
contract's JSON, not in the document, not counted in cairn_requests_total.
`GET /health` answers 403 to a Host not the server's (mode none) while the
document listed 200 only, and the document declared no security scheme,
though token mode needs `Authorization: Bearer` on /api/sql and /metrics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.config import Config
from tests.helpers import raw_http as exchange


def documented(doc: dict[str, Any], path: str, method: str, status: int,
               headers: dict[str, str], body: bytes) -> Any:
    """The answer is one the document lists for the operation, of its type and
    its schema; its JSON."""
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, (path, status, sorted(responses))
    content = responses[str(status)]["content"]
    assert headers["content-type"].startswith("application/json"), headers
    value = json.loads(body)
    schema = {**content["application/json"]["schema"], "components": doc["components"]}
    jsonschema.validate(value, schema)
    return value


def requests_counted(text: str, status: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "cairn_requests_total" and sample.labels["protocol"] == "http"
                    and sample.labels["status"] == status):
                return sample.value
    return 0.0


async def test_every_answer_is_in_the_document(aiohttp_client: Any,
                                               cairn_config: Config) -> None:
    client = await aiohttp_client(create_app(cairn_config))
    doc = await (await client.get("/api/openapi.json")).json()
    metrics = await (await client.get("/metrics")).text()
    refused_before = requests_counted(metrics, "INVALID_REQUEST")

    # An Expect the server does not meet: 417, the contract's JSON, counted.
    head = (b"POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Expect: 200-ok\r\nContent-Length: 19\r\n\r\n")
    status, headers, body = await asyncio.to_thread(exchange, client.port, head)
    assert status == 417
    error = documented(doc, "/api/sql", "post", status, headers, body)["error"]
    assert error["code"] == "INVALID_REQUEST" and "100-continue" in error["message"], error
    assert headers.get("connection") == "close", headers  # a body may follow: never read
    metrics = await (await client.get("/metrics")).text()
    assert requests_counted(metrics, "INVALID_REQUEST") == refused_before + 1

    # The same from the API's GETs (aiohttp's own handler answered text/plain).
    for path in ("/health", "/metrics", "/api/openapi.json"):
        head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: x\r\n\r\n").encode()
        status, headers, body = await asyncio.to_thread(exchange, client.port, head)
        assert status == 417, path
        assert documented(doc, path, "get", status, headers, body)["error"]["code"] == \
            "INVALID_REQUEST"
    # ... and a GET with `Expect: 100-continue` is answered as before.
    resp = await client.get("/health", headers={"Expect": "100-continue"})
    assert resp.status == 200 and await resp.json() == {"status": "ok"}

    # /health by a name not the server's (mode none): 403, in the document.
    resp = await client.get("/health", headers={"Host": "rebound.example"})
    value = documented(doc, "/health", "get", resp.status, dict(
        (k.lower(), v) for k, v in resp.headers.items()), await resp.read())
    assert resp.status == 403 and value["error"]["code"] == "PERMISSION_DENIED"

    # The Bearer token is in the document: a client generated from it can send it.
    schemes = doc["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items()
              if s["type"] == "http" and s["scheme"].lower() == "bearer"]
    assert bearer, schemes
    for path, method in (("/api/sql", "post"), ("/metrics", "get")):
        security = doc["paths"][path][method]["security"]
        assert {bearer[0]: []} in security, (path, security)
        assert {} in security, (path, security)  # auth.mode none: no token at all
        assert "401" in doc["paths"][path][method]["responses"]


async def test_the_bearer_scheme_is_what_token_mode_takes(aiohttp_client: Any,
                                                          cairn_config: Config) -> None:
    """The scheme the document declares (http, bearer) is the header the server
    reads in token mode: without it 401, with it the statement runs."""
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "t-root", "user": "root", "role": "admin"}]
    client = await aiohttp_client(create_app(cairn_config))
    doc = await (await client.get("/api/openapi.json")).json()
    scheme = doc["components"]["securitySchemes"]["bearerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    resp = await client.post("/api/sql", json={"sql": "SELECT 1 AS one"})
    assert resp.status == 401
    resp = await client.post("/api/sql", json={"sql": "SELECT 1 AS one"},
                             headers={"Authorization": "Bearer t-root"})
    assert resp.status == 200, await resp.text()
    resp = await client.get("/metrics", headers={"Authorization": "Bearer t-root"})
    assert resp.status == 200
