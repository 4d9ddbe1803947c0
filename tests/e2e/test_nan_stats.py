"""Parquet files an older Cairn flushed, and every file of a backup it took,
have REAL/DOUBLE footer statistics that leave NaN out of min and max, and
DuckDB skips a row group by them: `WHERE x > 2`, `x = 'NaN'` and `isnan(x)`
found none of their NaN rows, and a DELETE of them deleted nothing. Such a
file is written again without those statistics when a data directory is
first opened by this release, and when a restore installs it
(storage/nanstats.py).

The older flush is this one with its statistics rule taken out: every column
gets statistics, as before 2026-12-06."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog import Catalog, DataFile, Meta, Table
from server.config import Config
from storage import files as files_mod
from storage import nanstats
from tests.helpers import ok, rows

NAN = "'NaN'::DOUBLE"
FILTERS = (f"x = {NAN}", "isnan(x)", "x > 2")


async def flushed_as_older(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.d (k INT PRIMARY KEY, x DOUBLE, "
                     "r REAL, s TEXT)")
    with monkeypatch.context() as m:
        m.setattr(files_mod, "_with_statistics", lambda rows: True)
        m.setattr(files_mod, "NAN_RULE", {})  # nor did it say which rule it wrote by
        await ok(client, f"INSERT INTO app.d VALUES (1, 1.5, 1.5, 'a'), (2, {NAN}, 'NaN', 'b'), "
                         "(3, 0.5, 0.5, 'c'); FLUSH TABLE app.d")


async def found(client: Any, ns: str) -> list[list[dict[str, Any]]]:
    return [await rows(client, f"SELECT k FROM {ns}.d WHERE {where} ORDER BY k")
            for where in (*FILTERS, "isnan(r)", "r > 2")]


def table_files(data: Path, name: str) -> list[DataFile]:
    catalog = Catalog(data / "catalog")
    try:
        [uid] = [t.uid for t in catalog.scan(Table) if t.name == name]
        return [f for f in catalog.scan(DataFile) if f.table_uid == uid]
    finally:
        catalog.close()


def test_the_older_files_premise_duckdb_skips_the_nan_rows(tmp_path: Path) -> None:
    """What the rewrite is for, on pyarrow and DuckDB alone: a file with the
    older statistics hides its NaN row from a filter; written again, not."""
    path = tmp_path / "old.parquet"
    pq.write_table(pa.table({"k": [1, 2], "x": [1.5, float("nan")]}), path)  # as before
    query = f"SELECT k FROM read_parquet('{path}') WHERE x > 2"
    assert duckdb.sql(query).fetchall() == []
    assert nanstats.hides_nan(path)
    files_mod.write_data_file(path, pq.read_table(path), {})  # as a flush writes it now
    assert duckdb.sql(query).fetchall() == [(2,)]
    assert not nanstats.hides_nan(path)


async def test_a_data_directory_of_an_older_release_is_mended_when_opened(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from server.app import create_app

    client = await aiohttp_client(create_app(cairn_config))
    await flushed_as_older(client, monkeypatch)
    assert await found(client, "app") == [[]] * 5  # the older file hides them
    await client.close()
    data = tmp_path / "data"
    [old] = table_files(data, "d")
    assert nanstats.hides_nan(data / old.path)
    kept = pq.read_table(data / old.path)
    catalog = Catalog(data / "catalog")
    catalog.delete(Meta, nanstats.MARK)  # as an older release left it
    catalog.close()

    client = await aiohttp_client(create_app(cairn_config))
    two = [{"k": 2}]
    assert await found(client, "app") == [two] * 5
    assert (await ok(client, f"DELETE FROM app.d WHERE x = {NAN}"))[0]["row_count"] == 1
    assert await rows(client, "SELECT k FROM app.d ORDER BY k") == [{"k": 1}, {"k": 3}]
    await client.close()
    [new] = table_files(data, "d")
    assert new.path != old.path and not (data / old.path).exists()
    assert not nanstats.hides_nan(data / new.path)
    again = pq.read_table(data / new.path)
    assert again.schema.equals(kept.schema)
    assert repr(again.to_pylist()) == repr(kept.to_pylist())  # rows and order (NaN != NaN)
    assert again.schema.metadata == kept.schema.metadata  # cairn's keys kept
    assert (new.rows, new.min_seq, new.max_seq, new.key_range) == \
        (old.rows, old.min_seq, old.max_seq, old.key_range)
    assert new.bytes == (data / new.path).stat().st_size
    catalog = Catalog(data / "catalog")
    assert catalog.get(Meta, nanstats.MARK) is not None
    catalog.close()


async def test_an_older_backups_file_is_mended_when_restored(
        client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    await flushed_as_older(client, monkeypatch)
    done = (await rows(client, "BACKUP DATABASE app TO 'old'"))[0]
    assert done["status"] == "completed"
    report = (await rows(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'old'"))[0]
    assert report["is_valid"] is True, report
    await ok(client, "RESTORE DATABASE app FROM 'old' AS back")
    assert await found(client, "back") == [[{"k": 2}]] * 5
    await ok(client, "RESTORE TABLE app.d FROM 'old' AS app.d2")
    assert await rows(client, "SELECT k FROM app.d2 WHERE x > 2") == [{"k": 2}]
    await ok(client, "BACKUP DATABASE app, back TO 'set'")
    await ok(client, "RESTORE ALL FROM 'set' WITH (replace = true)")
    assert await found(client, "app") == [[{"k": 2}]] * 5
    assert await rows(client, "SELECT k, s FROM back.d ORDER BY k") == [
        {"k": 1, "s": "a"}, {"k": 2, "s": "b"}, {"k": 3, "s": "c"}]
    data = tmp_path / "data"
    listed = list((data / "files").rglob("*.parquet"))
    assert listed and not any(nanstats.hides_nan(p) for p in listed)
