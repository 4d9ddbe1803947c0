"""A file's footer tells each column's type twice: the logicalType, which
pyarrow reads (every check of VERIFY and RESTORE), and the legacy
converted_type, which DuckDB reads (every query). A file re-stored under a
fresh sha256 with them disagreeing verified valid and restored, and then
queries read other values: TEXT 'a' as 9.7, a BIGINT key -5 as
18446744073709551611 (a lookup of -5 found nothing), or nothing at all (a
500 for every SELECT). storage/backup/parquet_types.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from storage.backup import footer_guard
from tests.helpers import ok, replace_file, rows, sql
from tests.parquet_footer import chunk_meta, edit, get, put

INT32, STRUCT = 5, 12  # Thrift compact types
# SchemaElement fields
CONVERTED, SCALE, PRECISION, LOGICAL, NAME = 6, 7, 8, 10, 4
DECIMAL, UINT_64, BSON = 5, 14, 20  # ConvertedType


def _column(meta: list[Any], name: str) -> list[Any]:
    return next(e for e in get(meta, 2)[1] if get(e, NAME) == name.encode())


def _text_as_decimal(meta: list[Any]) -> None:
    v = _column(meta, "v")
    put(v, CONVERTED, INT32, DECIMAL)
    put(v, SCALE, INT32, 1)
    put(v, PRECISION, INT32, 10)


def _text_as_bson(meta: list[Any]) -> None:
    put(_column(meta, "v"), CONVERTED, INT32, BSON)


def _key_as_unsigned(meta: list[Any]) -> None:
    key = _column(meta, "id")
    put(key, LOGICAL, STRUCT, [[10, STRUCT, [[1, 3, 64], [2, 1, True]]]])  # INT(64, signed)
    put(key, CONVERTED, INT32, UINT_64)


def _date_without_converted_type(meta: list[Any]) -> None:
    d = _column(meta, "d")
    d[:] = [f for f in d if f[0] != CONVERTED]  # DuckDB: INTEGER


CRAFTS = {
    "text_as_decimal": _text_as_decimal,
    "text_as_bson": _text_as_bson,
    "key_as_unsigned": _key_as_unsigned,
    "date_without_converted_type": _date_without_converted_type,
}
ROWS = [{"id": -5, "v": "a", "d": "2026-01-02"}, {"id": 1, "v": "b", "d": "2026-01-03"},
        {"id": 100, "v": "c", "d": "2026-01-04"}]


async def _backup(client: Any, root: Path) -> Path:
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT, d DATE)")
    await ok(client, "INSERT INTO app.t VALUES (-5, 'a', '2026-01-02'), (1, 'b', '2026-01-03'), "
                     "(100, 'c', '2026-01-04')")
    await ok(client, "FLUSH TABLE app.t")
    source = root / "src"
    await ok(client, f"BACKUP DATABASE app TO '{source}' WITH (compression = 'none')")
    return source


@pytest.mark.parametrize("craft", sorted(CRAFTS))
async def test_a_column_whose_readers_disagree_on_its_type_is_refused(
        client: Any, cairn_config: Config, craft: str) -> None:
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / craft
    shutil.copytree(source, target)
    replace_file(target, "t", lambda data: edit(data, CRAFTS[craft]))
    backup_id = next((target / "manifests").glob("*.json")).stem

    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "annotates column" in str(report["errors"]) and "another type" in str(report["errors"])
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "annotates column" in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed


async def test_a_footer_rewritten_unchanged_still_restores(
        client: Any, cairn_config: Config) -> None:
    """The control: the same file through the same footer editor, nothing
    changed, re-stored and re-sealed (so the harness itself is no refusal)."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "unchanged"
    shutil.copytree(source, target)
    replace_file(target, "t", lambda data: edit(data, lambda meta: None))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is True, report
    await ok(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    got = await rows(client, "SELECT id, v, CAST(d AS TEXT) AS d FROM copy.t ORDER BY id")
    assert got == ROWS
    assert await rows(client, "SELECT v FROM copy.t WHERE id = -5") == [{"v": "a"}]


async def test_statistics_only_in_the_deprecated_fields_are_refused(
        client: Any, cairn_config: Config) -> None:
    """pyarrow ignores a row group's deprecated max and min where max_value
    and min_value are missing (the checks saw no statistics of `n`); DuckDB
    skips row groups by them: forged to 100..200, VERIFY said valid, RESTORE
    completed, and `WHERE n = 11` found nothing while SELECT * showed the row."""
    import struct

    from tests.parquet_footer import chunk_meta

    root = Path(cairn_config.backup.roots[0])
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, n BIGINT)")
    await ok(client, "INSERT INTO app.t VALUES (1, 10), (2, 11), (3, 12)")
    await ok(client, "FLUSH TABLE app.t")
    target = root / "forged"
    await ok(client, f"BACKUP DATABASE app TO '{target}' WITH (compression = 'none')")

    def deprecated_only(meta: list[Any]) -> None:
        column = [get(e, NAME) for e in get(meta, 2)[1][1:]].index(b"n")
        stats = get(chunk_meta(meta, 0, column), 12)
        stats[:] = [f for f in stats if f[0] not in (5, 6)]
        put(stats, 1, 8, struct.pack("<q", 200))  # max
        put(stats, 2, 8, struct.pack("<q", 100))  # min

    replace_file(target, "t", lambda data: edit(data, deprecated_only))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False and "deprecated statistics" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and "deprecated statistics" in body["error"]["message"], body


async def test_a_file_duckdb_cannot_read_is_refused(client: Any, cairn_config: Config) -> None:
    """pyarrow ignores a page header's uncompressed size in an uncompressed
    chunk; DuckDB refuses the file ("corrupted: uncompressed page size
    mismatch"). Such a file verified valid and was restored, and every
    SELECT of the table then failed, naming the server's data file."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.parquet_footer import chunk_meta, edit_page_header

    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "pages"
    shutil.copytree(source, target)

    def sizes_disagree(data: bytes) -> bytes:
        out = io.BytesIO()
        pq.write_table(pq.read_table(pa.BufferReader(data)), out, compression="none")
        plain = out.getvalue()
        n = int.from_bytes(plain[-8:-4], "little")
        holder: list[Any] = []
        edit(plain, holder.append)  # the footer's fields, read only
        meta = holder[0]
        column = [get(e, NAME) for e in get(meta, 2)[1][1:]].index(b"v")
        cm = chunk_meta(meta, 0, column)
        # the chunk's first page: its dictionary page, else its first data page
        first = get(cm, 11) if any(f[0] == 11 for f in cm) else get(cm, 9)
        assert n and first

        def one_more(header: list[Any]) -> None:
            put(header, 2, INT32, get(header, 2) + 1)  # uncompressed_page_size

        return edit_page_header(plain, first, one_more)

    replace_file(target, "t", sizes_disagree)
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "cannot be read by DuckDB" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and "cannot be read by DuckDB" in body["error"]["message"], body
    assert str(Path(cairn_config.storage.data_dir)) not in body["error"]["message"]
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed


async def test_statistics_hiding_a_nan_in_a_file_that_says_it_writes_none_are_refused(
        client: Any, cairn_config: Config) -> None:
    """A DOUBLE column's minimum and maximum leave NaN out and DuckDB skips
    row groups by them; Cairn's files write none for such a column and say
    so (`cairn.nan_statistics: none`), so a restore mends only files that do
    not say it. A file saying it, with such statistics written, verified
    valid and restored: SELECT * showed the NaN row, `WHERE isnan(n)` and
    `WHERE n > 100` did not."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(cairn_config.backup.roots[0])
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, n DOUBLE)")
    await ok(client, "INSERT INTO app.t VALUES (1, 1.0), (2, 'NaN'), (3, 3.0)")
    await ok(client, "FLUSH TABLE app.t")
    target = root / "nan"
    await ok(client, f"BACKUP DATABASE app TO '{target}' WITH (compression = 'none')")

    def with_statistics(data: bytes) -> bytes:
        rows_ = pq.read_table(pa.BufferReader(data))
        assert (rows_.schema.metadata or {}).get(b"cairn.nan_statistics") == b"none"
        out = io.BytesIO()
        pq.write_table(rows_, out, compression="zstd", write_statistics=True)
        return out.getvalue()

    replace_file(target, "t", with_statistics)
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "leave out the NaN it holds" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and "leave out the NaN" in body["error"]["message"], body


WKB = "00000000013ff00000000000004000000000000000"  # POINT(1 2), big-endian WKB


def _geo(meta: list[Any]) -> None:
    """GeoParquet's key, naming the BYTES column y: DuckDB reads y as GEOMETRY."""
    geo = {"version": "1.0.0", "primary_column": "y",
           "columns": {"y": {"encoding": "WKB", "geometry_types": []}}}
    get(meta, 5)[1].append([[1, 8, b"geo"], [2, 8, json.dumps(geo).encode()]])


async def test_a_geo_key_that_makes_duckdb_read_bytes_as_geometry_is_refused(
        client: Any, cairn_config: Config) -> None:
    """pyarrow ignores a file's `geo` metadata; DuckDB read the column it names
    as GEOMETRY: verified valid and restored, the big-endian WKB read back as
    other bytes, and after one INSERT of bytes that are no WKB every SELECT of
    the table failed (parquet_types.metadata_problem)."""
    root = Path(cairn_config.backup.roots[0])
    value = "".join("\\x" + WKB[i:i + 2] for i in range(0, len(WKB), 2))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, y BYTES)")
    await ok(client, f"INSERT INTO app.t VALUES (1, '{value}'); FLUSH TABLE app.t")
    source = root / "src"
    await ok(client, f"BACKUP DATABASE app TO '{source}' WITH (compression = 'none')")
    target = root / "geo"
    shutil.copytree(source, target)
    replace_file(target, "t", lambda data: edit(data, _geo))
    backup_id = next((target / "manifests").glob("*.json")).stem

    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "'geo' key" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "'geo' key" in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed
    await ok(client, f"RESTORE DATABASE app FROM '{source}' AS copy")  # the file as Cairn wrote it
    assert await rows(client, "SELECT id, y FROM copy.t") == await rows(
        client, "SELECT id, y FROM app.t")


def _written_by_old_parquet_mr(meta: list[Any]) -> None:
    """Statistics of TEXT v forged to 'y'..'z' (its values 'a', 'b', 'c') in a
    file that says parquet-mr 1.8.0 wrote it: pyarrow ignores them (PARQUET-251),
    DuckDB does not."""
    put(meta, 6, 8, b"parquet-mr version 1.8.0")
    names = [get(e, NAME) for e in get(meta, 2)[1]]
    for f in get(chunk_meta(meta, 0, names.index(b"v") - 1), 12):
        if f[0] in (1, 5):  # max, max_value
            f[2] = b"z"
        if f[0] in (2, 6):  # min, min_value
            f[2] = b"y"


async def test_statistics_of_another_writer_that_pyarrow_ignores_are_refused(
        client: Any, cairn_config: Config) -> None:
    """pyarrow ignored the forged statistics (the checks compared nothing),
    DuckDB skipped the row group by them: verified valid, restored, and
    `WHERE v = 'a'` found no row (footer_guard: created_by)."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "parquet_mr"
    shutil.copytree(source, target)
    replace_file(target, "t", lambda data: edit(data, _written_by_old_parquet_mr))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "parquet-mr version 1.8.0" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "parquet-mr version 1.8.0" in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed


def _without_column_orders(meta: list[Any]) -> None:
    """v's statistics forged to 'y'..'z' and the footer's column_orders gone:
    pyarrow takes the sort order as unknown and ignores them, DuckDB does not."""
    meta[:] = [f for f in meta if f[0] != 7]  # FileMetaData.column_orders
    names = [get(e, NAME) for e in get(meta, 2)[1]]
    for f in get(chunk_meta(meta, 0, names.index(b"v") - 1), 12):
        if f[0] in (1, 5):
            f[2] = b"z"
        if f[0] in (2, 6):
            f[2] = b"y"


async def test_statistics_without_their_column_orders_are_refused(
        client: Any, cairn_config: Config) -> None:
    """Verified valid and restored, `WHERE v = 'a'` found no row (footer_guard:
    column_orders)."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "no_orders"
    shutil.copytree(source, target)
    replace_file(target, "t", lambda data: edit(data, _without_column_orders))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "column orders" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "column orders" in body["error"]["message"], body


def _only_a_max(meta: list[Any]) -> None:
    """v's statistics cut to a maximum of 'a' (its values 'a', 'b', 'c'), no
    minimum: pyarrow reports no min and max, DuckDB skips `v = 'c'` by it."""
    names = [get(e, NAME) for e in get(meta, 2)[1]]
    stats = get(chunk_meta(meta, 0, names.index(b"v") - 1), 12)
    stats[:] = [f for f in stats if f[0] not in (1, 2, 5, 6)] + [[5, 8, b"a"]]


async def test_statistics_pyarrow_does_not_read_are_refused(
        client: Any, cairn_config: Config) -> None:
    """Verified valid and restored, `WHERE v = 'c'` found no row
    (onesided.py: a bound pyarrow does not report is compared with the values).
    A true bound of that kind is Cairn's own writer's for long texts
    (tests/e2e/test_schema_history.py restores one)."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "one_sided"
    shutil.copytree(source, target)
    replace_file(target, "t", lambda data: edit(data, _only_a_max))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "pyarrow does not read" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "pyarrow does not read" in body["error"]["message"], body


def _rows_twice_read_from_the_second_page(column: str, again: bool = False) -> Any:
    """The file holding each column's rows twice (a second data page a
    chunk; `column`'s second page holding other values), saying it holds
    them once, with `column`'s dictionary offset at its second data page:
    pyarrow starts the chunk at its first page, DuckDB at the second.
    `again`: the offset said a second time, as an i32 at the first data
    page (C++ Thrift skips it, not an i64; a reader keeping the last value
    of any type sees the two readers start at one page)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.parquet_footer import _In

    def craft(data: bytes) -> bytes:
        t = pq.read_table(pa.BufferReader(data))
        n, at = t.num_rows, t.schema.get_field_index(column)
        was = t.column(column).to_pylist()
        other = pa.array([f"EVIL-{x}" for x in was] if column == "v"
                         else was[1:] + was[:1], t.schema.field(column).type)
        both = pa.concat_tables([t, t.set_column(at, t.schema.field(column), other)])
        out = io.BytesIO()
        pq.write_table(both.replace_schema_metadata(t.schema.metadata), out,
                       compression="none", use_dictionary=False, write_batch_size=n,
                       data_page_size=1)
        plain = out.getvalue()
        holder: list[Any] = []
        edit(plain, holder.append)  # the footer's fields, read only
        first = get(chunk_meta(holder[0], 0, at), 9)  # data_page_offset
        reader = _In(plain)
        reader.at = first
        header = reader.struct()
        second = reader.at + get(header, 3)  # past the first page's header and bytes

        def say_once(meta: list[Any]) -> None:
            put(meta, 3, 6, n)  # FileMetaData.num_rows
            put(get(meta, 4)[1][0], 3, 6, n)  # RowGroup.num_rows
            for c in range(len(t.column_names)):
                put(chunk_meta(meta, 0, c), 5, 6, n)  # num_values
            put(chunk_meta(meta, 0, at), 11, 6, second)  # dictionary_page_offset
            if again:
                chunk_meta(meta, 0, at).append([11, 5, first])

        return edit(plain, say_once)

    return craft


@pytest.mark.parametrize("column", ["v", "id"])
async def test_a_chunk_the_two_readers_would_start_at_different_pages_is_refused(
        client: Any, cairn_config: Config, column: str) -> None:
    """pyarrow starts a column chunk at its dictionary offset only if that
    lies before its first data page, DuckDB wherever it lies: the checks
    read 'a', 'b', 'c' (or keys -5, 1, 100), VERIFY said valid, RESTORE
    completed, and every query read 'EVIL-a'... (or keys 1, 100, -5: each
    key with another row's values) (footer_guard)."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / f"two_starts_{column}"
    shutil.copytree(source, target)
    replace_file(target, "t", _rows_twice_read_from_the_second_page(column))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "after its first data page" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert f"column '{column}' of row group 0" in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed


async def test_a_chunk_start_said_twice_is_refused(client: Any, cairn_config: Config) -> None:
    """The dictionary offset at the second data page (an i64, as declared),
    then again at the first (an i32): pyarrow and DuckDB keep the i64 (their
    Thrift skips the i32) and start the chunk at different pages, while the
    footer's check kept the i32 and saw one start: VERIFY said valid,
    RESTORE completed, and every query read 'EVIL-a'... (footer_guard)."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "start_said_twice"
    shutil.copytree(source, target)
    replace_file(target, "t", _rows_twice_read_from_the_second_page("v", again=True))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "holds its field 11 twice" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "holds its field 11 twice" in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed


@pytest.mark.parametrize("column", ["v", "id"])
async def test_the_two_readers_values_are_compared_row_by_row(
        aiohttp_client: Any, cairn_config: Config, column: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk above with footer_guard's rule for it taken away: DuckDB's
    values, compared with pyarrow's row by row (duck_read.py), refuse it
    alone, naming the column and the first row the readers differ on. Any
    other way the two readers take the same bytes differently is refused
    alike."""
    from server.app import create_app

    monkeypatch.setattr(footer_guard, "_start_for_duckdb", footer_guard._start_for_pyarrow)
    cairn_config.jobs.job_process = "off"  # the checks in this process: the rule stays off
    client = await aiohttp_client(create_app(cairn_config))
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / f"compared_{column}"
    shutil.copytree(source, target)
    replace_file(target, "t", _rows_twice_read_from_the_second_page(column))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    said = f"the two Parquet readers disagree on column '{column}' at row "
    assert said in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert said in body["error"]["message"], body
    if column == "v":  # the first row, both values
        assert "at row 0 (DuckDB: 'EVIL-a'; pyarrow: 'a')" in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed
