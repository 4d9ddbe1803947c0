"""Where DuckDB spills: an in-memory DuckDB writes what passes its memory
limit under `.tmp` in the process's working directory unless told otherwise
(found by trying: a server started from a checkout left `.tmp/duckdb_temp_*`
in it). The main DuckDB spills to the data dir's tmp/duckdb-spill, at most
`[storage] duckdb_spill_limit`; every other DuckDB never spills."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import duckdb
import pytest
import sqlglot

from catalog import Catalog, Namespace
from catalog.errors import InvalidArgument
from server.pgwire.pgcatalog import CatalogEngine
from storage import sandbox
from storage.engine import Engine

from .conftest import Cfg

# A sort of ~3 million 32-character strings: ~200 MB, past a 64 MB limit.
BIG_SORT = ("SELECT count(*) AS n FROM "
            "(SELECT i, md5(i::VARCHAR) AS m FROM range(3000000) t(i) ORDER BY m)")


def engine_with(tmp_path: Path, **cfg: str) -> tuple[Catalog, Engine]:
    catalog = Catalog(tmp_path / "data" / "catalog")
    catalog.put(Namespace("app"))
    return catalog, Engine(catalog, tmp_path / "data",
                           dataclasses.replace(Cfg(), duckdb_memory_limit="64MB", **cfg))


def big_sort(engine: Engine) -> list[dict[str, int]]:
    return engine.query(sqlglot.parse_one(BIG_SORT, read="duckdb"), None, "app").to_pylist()


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_a_query_past_the_memory_limit_spills_in_the_data_dir(
        tmp_path: Path, elsewhere: Path) -> None:
    catalog, engine = engine_with(tmp_path)
    spill = tmp_path / "data" / "tmp" / sandbox.SPILL_DIR
    try:
        assert big_sort(engine) == [{"n": 3_000_000}]
        settings = dict(engine._con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('temp_directory', 'max_temp_directory_size')").fetchall())
        assert settings["temp_directory"] == str(spill.resolve())
        assert settings["max_temp_directory_size"] in ("3.7 GiB", "4.0 GB")
        assert spill.is_dir()  # DuckDB made it to spill there (it goes at close)
    finally:
        engine.close()
        catalog.close()
    assert os.listdir(elsewhere) == []  # nothing in the working directory
    assert not (elsewhere / ".tmp").exists()


def test_a_query_past_the_spill_limit_is_a_clear_400(tmp_path: Path, elsewhere: Path) -> None:
    for limit in ("0", "16MB"):
        catalog, engine = engine_with(tmp_path, duckdb_spill_limit=limit)
        try:
            with pytest.raises(InvalidArgument) as info:
                big_sort(engine)
            assert "duckdb_spill_limit" in info.value.message
            assert "PRAGMA" not in info.value.message  # DuckDB's advice is not the client's
            assert engine.query(sqlglot.parse_one("SELECT 1 AS one"), None, "app").to_pylist() \
                == [{"one": 1}]
        finally:
            engine.close()
            catalog.close()
    assert os.listdir(elsewhere) == []


def test_a_spill_that_cannot_be_written_is_a_400_not_a_500(tmp_path: Path, elsewhere: Path) -> None:
    """A disk that is full, or a spill folder that cannot be made, is the
    query's size meeting the machine; not damage to the data (INTERNAL)."""
    catalog, engine = engine_with(tmp_path)
    try:
        (tmp_path / "data" / "tmp" / sandbox.SPILL_DIR).write_bytes(b"in the way")
        with pytest.raises(InvalidArgument) as info:
            big_sort(engine)
        assert "spill to disk could not be written" in info.value.message
        assert str(tmp_path) not in info.value.message
    finally:
        engine.close()
        catalog.close()


def test_the_servers_other_duckdbs_never_spill(tmp_path: Path, elsewhere: Path) -> None:
    con = duckdb.connect(":memory:", config={**sandbox.scratch_config(), "memory_limit": "64MB"})
    assert con.execute("SELECT current_setting('temp_directory')").fetchone() == ("",)
    with pytest.raises(duckdb.OutOfMemoryException):
        con.execute(BIG_SORT).fetchall()
    con.close()
    pg = CatalogEngine()
    assert pg._con.execute("SELECT current_setting('temp_directory')").fetchone() == ("",)
    pg.close()
    assert os.listdir(elsewhere) == []


@pytest.mark.parametrize("text, bytes_", [
    ("4GB", 4e9), ("512 MiB", 512 * 2**20), ("1.5gb", 1.5e9), ("0", 0.0), ("100000000B", 1e8),
    ("0GB", 0.0), ("4", None), ("-1GB", None), ("50%", None), ("lots", None), ("", None)])
def test_sizes(text: str, bytes_: float | None) -> None:
    assert sandbox.size_bytes(text) == bytes_


def test_times_are_utc_whatever_the_servers_zone(tmp_path: Path) -> None:
    """In a server whose TZ was not UTC, `now()::TIMESTAMP`, `current_date` and
    `localtimestamp` were local times, stored and compared as UTC (found by
    trying at UTC+14 and UTC-8). Checked in a process of that zone."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from storage.sandbox import connect\n"
        "cur = connect(Path(sys.argv[1]), '256MB', 1).cursor()\n"
        "row = cur.execute(\"SELECT current_setting('TimeZone'), "
        "CAST(now()::TIMESTAMP AS VARCHAR), CAST(now() AS VARCHAR)\").fetchone()\n"
        "print(json.dumps(row))\n"
    )
    for zone in ("Pacific/Kiritimati", "America/Los_Angeles"):
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "TZ": zone},
                              cwd=Path(__file__).parents[2])
        assert done.returncode == 0, done.stderr[-500:]
        setting, naive, zoned = json.loads(done.stdout)
        assert setting == "UTC" and zoned.endswith("+00") and zoned.startswith(naive[:16]), (
            zone, naive, zoned)
