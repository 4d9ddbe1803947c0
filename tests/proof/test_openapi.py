"""schemathesis against a live `cairn serve`: generated requests from the
OpenAPI document never get a 500 and every response matches the document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.helpers import ServerProcess


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("openapi")
    srv = ServerProcess(root / "data").start()
    status, body = srv.post(
        "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
        "INSERT INTO app.t VALUES (1, 'x')"
    )
    assert status == 200, body
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api_schema(live_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(live_server.url + "/api/openapi.json")


OPERATIONS = [("/api/sql", "POST", "positive"), ("/api/sql", "POST", "negative"),
              ("/health", "GET", "positive"), ("/api/openapi.json", "GET", "positive")]


@pytest.mark.parametrize("path, method, mode", OPERATIONS)
def test_api_keeps_its_document(api_schema: Any, live_server: ServerProcess, path: str,
                                method: str, mode: str) -> None:
    """Positive cases follow the document; negative ones break it (wrong types,
    missing `sql`, extra junk) and must get a documented 4xx, never a 500."""
    operation = api_schema[path][method]
    generation = schemathesis.GenerationMode(mode)

    @given(case=operation.as_strategy(generation_mode=generation))
    @settings(max_examples=150 if method == "POST" else 10, deadline=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Schema-valid SQL text need not be valid SQL, so a 400 for it is right:
        # every other check (status documented, body matches its schema, …) runs.
        response = case.call_and_validate(base_url=live_server.url,
                                          excluded_checks=[positive_data_acceptance])
        assert response.status_code < 500

    check()
    # After all of that, the server still answers.
    assert live_server.post("SELECT count(*) AS n FROM app.t")[0] == 200


def test_document_is_served(live_server: ServerProcess) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(live_server.url + "/api/openapi.json") as resp:
        doc = json.loads(resp.read())
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/api/sql", "/health", "/api/openapi.json", "/metrics"}
    codes = set(doc["paths"]["/api/sql"]["post"]["responses"])
    assert codes == {"200", "400", "401", "403", "404", "408", "409", "413", "417", "422", "500",
                     "503"}
