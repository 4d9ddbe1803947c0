"""A catalog DataFile whose `path` leaves the data directory's files/ (an
absolute path, or `files/../../…`: a planted or damaged record) was used as
is: a point SELECT read the outside file as the table's rows, and DROP TABLE
deleted it. Now such a path is damage: queries of that table say so (the log
names the path), the file is never read, and DROP TABLE leaves it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog, DataFile, Table
from server.config import Config
from tests.helpers import ok, sql


@pytest.mark.parametrize("bad", ["absolute", "files/../../outside/precious.parquet",
                                 "files/tbl-x/../../../outside/precious.parquet"])
async def test_a_path_out_of_files_is_never_read_or_deleted(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path, bad: str,
        caplog: pytest.LogCaptureFixture) -> None:
    from server.app import create_app

    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE a; CREATE TABLE a.t (k BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO a.t VALUES (3, 'three'), (4, 'four'); FLUSH TABLE a.t; "
                     "CREATE TABLE a.u (k BIGINT PRIMARY KEY); INSERT INTO a.u VALUES (1); "
                     "FLUSH TABLE a.u")
    await client.close()

    data = tmp_path / "data"
    outside = tmp_path / "outside" / "precious.parquet"
    outside.parent.mkdir()
    catalog = Catalog(data / "catalog")
    [uid] = [t.uid for t in catalog.scan(Table) if t.name == "t"]
    [rec] = [f for f in catalog.scan(DataFile) if f.table_uid == uid]
    shutil.copy(data / rec.path, outside)  # a Parquet file of the same table's shape
    path = str(outside) if bad == "absolute" else bad
    catalog.put(dataclasses.replace(rec, path=path))
    catalog.close()

    client = await aiohttp_client(create_app(cairn_config))
    # The file the record named is unreferenced now, but the start-up sweep
    # leaves a table with a damaged record alone: it may be the right one.
    assert (data / rec.path).exists()
    assert "folders are not swept" in caplog.text
    for query in ("SELECT count(*) AS n FROM a.t", "SELECT v FROM a.t WHERE k = 3",
                  "INSERT INTO a.t VALUES (3, 'again')"):
        status, body = await sql(client, query)
        assert (status, body["error"]["code"]) == (500, "INTERNAL"), (query, body)
        assert "the catalog is damaged" in body["error"]["message"], body
        assert path not in body["error"]["message"]
    assert f"a data file record's path {path!r} is not files/<table>/<file>.parquet" \
        in caplog.text
    status, body = await sql(client, "BACKUP DATABASE a TO 'nightly'")
    assert (status, body["error"]["code"]) == (500, "INTERNAL"), body
    assert "the catalog is damaged" in body["error"]["message"], body
    assert (await ok(client, "SELECT k FROM a.u"))[0]["rows"] == [{"k": 1}]
    await ok(client, "DROP TABLE a.t")
    assert outside.exists()
    assert "not deleted" in caplog.text
    assert "Traceback" not in caplog.text
