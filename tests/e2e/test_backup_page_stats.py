"""A data page's own statistics, which DuckDB (every query) skips pages by
and pyarrow (every check) never reads, must bound the page's values
(storage/backup/page_stats.py)."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from server.config import Config
from tests.e2e.test_backup_parquet_types import _backup
from tests.helpers import ok, replace_file, rows, sql
from tests.parquet_footer import chunk_meta, edit, edit_page_header, get, put

FORGED = {"id": (struct.pack("<q", 1000), struct.pack("<q", 2000)), "v": (b"x", b"z")}


def _page_stats_forged(column: str) -> Any:
    """The file rewritten plain (no dictionary, uncompressed: pyarrow's
    choice of encodings, which the checks take), then the first data page
    of `column` saying its values lie in FORGED (the footer's statistics
    true)."""

    def craft(data: bytes) -> bytes:
        out = io.BytesIO()
        pq.write_table(pq.read_table(pa.BufferReader(data)), out, compression="none",
                       use_dictionary=False)
        plain = out.getvalue()
        holder: list[Any] = []
        edit(plain, holder.append)  # the footer's fields, read only
        names = [get(e, 4) for e in get(holder[0], 2)[1][1:]]
        first = get(chunk_meta(holder[0], 0, names.index(column.encode())), 9)

        def forge(header: list[Any]) -> None:
            stats = get(get(header, 5), 5)  # DataPageHeader.statistics
            low, high = FORGED[column]
            put(stats, 6, 8, low)  # min_value
            put(stats, 5, 8, high)  # max_value

        return edit_page_header(plain, first, forge)

    return craft


@pytest.mark.parametrize("column", ["id", "v"])
async def test_a_page_whose_statistics_leave_out_its_values_is_refused(
        client: Any, cairn_config: Config, column: str) -> None:
    """Its first page of `id` said 1000..2000 (its values -5, 1, 100), or of
    `v` 'x'..'z' ('a', 'b', 'c'): VERIFY said valid, RESTORE completed, and
    `WHERE id = 1` (or `v = 'b'`) found nothing while SELECT * showed it."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / f"forged_{column}"
    shutil.copytree(source, target)
    replace_file(target, "t", _page_stats_forged(column))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    said = f"has a data page of column '{column}' of row group 0 (its page 0) whose header "
    assert said in str(report["errors"]) and "skips pages by them" in str(report["errors"])
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert said in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed


async def test_pages_rewritten_plain_with_their_own_statistics_restore(
        client: Any, cairn_config: Config) -> None:
    """The control: the same rewrite, the statistics left as pyarrow wrote
    them, restores, and a filtered query finds its row."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "plain"
    shutil.copytree(source, target)

    def plain(data: bytes) -> bytes:
        out = io.BytesIO()
        pq.write_table(pq.read_table(pa.BufferReader(data)), out, compression="none",
                       use_dictionary=False)
        return out.getvalue()

    replace_file(target, "t", plain)
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is True, report
    await ok(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert await rows(client, "SELECT v FROM copy.t WHERE id = 1") == [{"v": "b"}]
    assert await rows(client, "SELECT id FROM copy.t WHERE v = 'b'") == [{"id": 1}]


async def test_a_boolean_statistic_the_readers_take_apart_is_refused(
        client: Any, cairn_config: Config) -> None:
    """Cairn's own file, its footer's minimum of BOOLEAN `b` (false, true,
    false... written 0) made 0x02: false to pyarrow, which reads its lowest
    bit (so the checks found the values within it), true to DuckDB, which
    then skipped the row group for `WHERE b = false`. VERIFY said valid,
    RESTORE completed, and the query, an UPDATE and a DELETE of those rows
    found none of them (the same with a data page's own statistics:
    tests/storage_backup/test_page_stats.py)."""
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, b BOOLEAN)")
    await ok(client, "INSERT INTO app.t VALUES (1, false), (2, false), (3, true)")
    await ok(client, "FLUSH TABLE app.t")
    root = Path(cairn_config.backup.roots[0])
    target = root / "bool"
    await ok(client, f"BACKUP DATABASE app TO '{target}' WITH (compression = 'none')")

    def forge(data: bytes) -> bytes:
        names = pq.read_metadata(pa.BufferReader(data)).schema.names

        def two(meta: list[Any]) -> None:
            stats = get(chunk_meta(meta, 0, names.index("b")), 12)
            put(stats, 2, 8, b"\x02")  # min
            put(stats, 6, 8, b"\x02")  # min_value

        return edit(data, two)

    replace_file(target, "t", forge)
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "not a BOOLEAN's 0 or 1" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "not a BOOLEAN's 0 or 1" in body["error"]["message"], body
