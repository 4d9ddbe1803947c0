"""A RESTORE's check of its fetched files (pyarrow's reads, then DuckDB's:
storage/backup/fetched_checks.py) runs in a job process, as VERIFY's does:
with DuckDB's read in the server, a restore's peak server RSS went 242 ->
352 MB (bench_backup.py, 0.25 GiB), and a reader ending its process on a
crafted file would end the server."""

from __future__ import annotations

from typing import Any

import pytest

from storage.backup import duck_read, fetched_checks
from tests.helpers import ok, rows


async def test_a_restores_file_checks_run_outside_the_server(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def here(*args: Any) -> str:
        raise AssertionError("a restore's file check ran in the server's process")

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t")
    await ok(client, "BACKUP DATABASE app TO 'b'")
    monkeypatch.setattr(fetched_checks, "values_problem", here)
    monkeypatch.setattr(duck_read, "_base", None)
    (r,) = await rows(client, "RESTORE DATABASE app FROM 'b' AS copy")
    assert r["status"] == "completed", r
    assert await rows(client, "SELECT id, v FROM copy.t ORDER BY id") == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    assert duck_read._base is None  # no DuckDB of the check's opened here
