"""A data page's header as the two readers take it: pyarrow (every check of
VERIFY and RESTORE) and DuckDB (every query) must decode the same values
(storage/backup/page_headers.py)."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from server.config import Config
from storage.backup import page_headers
from tests.e2e.test_backup_parquet_types import _backup
from tests.helpers import ok, replace_file, rows, sql
from tests.parquet_footer import _In, _out, chunk_meta, edit, get, put

BIT_PACKED = 4  # Encoding


def _levels_said_bit_packed(data: bytes, then_rle: bool = False) -> bytes:
    """TEXT v rewritten as one plain version 1 data page whose header says its
    definition levels are BIT_PACKED while they are RLE: a length of 8 (the
    first byte 0x08, its low three bits 0: three NULLs bit-packed), a run of
    three ones, padding; then 'EVIL-a', 'EVIL-b', 'EVIL-c'. The chunk's
    statistics keep no null count (DuckDB, given one equal to its rows, reads
    no page of it) and no bounds. `then_rle`: the header says the encoding
    again, as an i8 RLE (C++ Thrift skips a field of another type than its
    declared one; a reader keeping the last value of any type reads RLE)."""
    t = pq.read_table(pa.BufferReader(data))
    n = t.num_rows
    assert n <= 3
    out = io.BytesIO()
    pq.write_table(t, out, compression="none", use_dictionary=False, data_page_version="1.0")
    plain = out.getvalue()
    holder: list[Any] = []
    edit(plain, holder.append)  # the footer's fields, read only
    col = t.column_names.index("v")
    start = get(chunk_meta(holder[0], 0, col), 9)
    reader = _In(plain)
    reader.at = start
    header = reader.struct()
    end = reader.at + get(header, 3)
    assert end == start + get(chunk_meta(holder[0], 0, col), 7)  # one page
    body = (struct.pack("<I", 8) + bytes([n << 1, 1]) + bytes(6)
            + b"".join(struct.pack("<I", len(v)) + v
                       for v in (f"EVIL-{x}".encode() for x in t.column("v").to_pylist())))
    put(get(header, 5), 3, 5, BIT_PACKED)  # DataPageHeader.definition_level_encoding
    if then_rle:
        get(header, 5).append([3, 3, page_headers.RLE])  # the field again, an i8
    get(header, 5)[:] = [f for f in get(header, 5) if f[0] != 5]  # the page's statistics
    header[:] = [f for f in header if f[0] != 4]  # its crc
    put(header, 2, 5, len(body))
    put(header, 3, 5, len(body))
    page = _out(header) + body
    delta = len(page) - (end - start)

    def shift(meta: list[Any]) -> None:
        group = get(meta, 4)[1][0]
        for f in group:
            if f[0] in (2, 6):  # total_byte_size, total_compressed_size
                f[2] += delta
        for i, chunk in enumerate(get(group, 1)[1]):
            cm = get(chunk, 3)
            for f in cm:
                if f[0] in (9, 11) and f[2] > start:  # the offsets of the chunks after it
                    f[2] += delta
            for f in chunk:
                if f[0] == 2 and f[2] > start:  # file_offset
                    f[2] += delta
            if i == col:
                put(cm, 6, 6, get(cm, 6) + delta)
                put(cm, 7, 6, get(cm, 7) + delta)
                stats = get(cm, 12)
                stats[:] = [f for f in stats if f[0] not in (1, 2, 3, 5, 6)]

    return edit(plain[:start] + page + plain[end:], shift)


async def test_levels_the_two_readers_decode_otherwise_are_refused(
        client: Any, cairn_config: Config) -> None:
    """pyarrow honours a version 1 page's level encoding, DuckDB decodes RLE
    whatever it says: the checks read v as NULL, NULL, NULL, VERIFY said
    valid, RESTORE completed, and every query read 'EVIL-a', 'EVIL-b',
    'EVIL-c', values no check had seen."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "bit_packed"
    shutil.copytree(source, target)
    replace_file(target, "t", _levels_said_bit_packed)
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "its definition levels are BIT_PACKED" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "data page of column 'v' of row group 0" in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed
    await ok(client, f"RESTORE DATABASE app FROM '{source}' AS copy")  # as Cairn wrote it
    assert await rows(client, "SELECT id, v FROM copy.t ORDER BY id") == await rows(
        client, "SELECT id, v FROM app.t ORDER BY id")


async def test_a_level_encoding_said_twice_is_refused(
        client: Any, cairn_config: Config) -> None:
    """The level encoding said BIT_PACKED (an i32, as declared) and then RLE
    (an i8): pyarrow and DuckDB keep the i32 (their Thrift skips the i8), the
    page walk kept the i8 and saw RLE: VERIFY said valid, RESTORE completed,
    and every query read 'EVIL-a'... where the checks had read NULLs."""
    root = Path(cairn_config.backup.roots[0])
    source = await _backup(client, root)
    target = root / "said_twice"
    shutil.copytree(source, target)
    replace_file(target, "t", lambda data: _levels_said_bit_packed(data, then_rle=True))
    backup_id = next((target / "manifests").glob("*.json")).stem
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'"))[0]
    assert report["is_valid"] is False, report
    assert "holds its field 3 twice" in str(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS copy")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "holds its field 3 twice" in body["error"]["message"], body
    status, body = await sql(client, "SELECT * FROM copy.t")
    assert status == 404, body  # nothing installed


def test_pages_as_pyarrow_writes_them_pass(tmp_path: Path) -> None:
    """Cairn's writer's pages, many a chunk, of either version, with and
    without a dictionary (and its fallback to plain), are none refused."""
    n = 5_000
    table = pa.table({"k": pa.array(range(n), pa.int64()),
                      "v": pa.array([None if i % 7 == 0 else f"value-{i}" for i in range(n)]),
                      "b": pa.array([i % 3 == 0 for i in range(n)])})
    for version in ("1.0", "2.0"):
        for dictionary in (True, False):
            path = tmp_path / f"{version}-{dictionary}.parquet"
            pq.write_table(table, path, data_page_version=version, use_dictionary=dictionary,
                           data_page_size=512, dictionary_pagesize_limit=2048,
                           row_group_size=2_000)
            assert page_headers.problem(str(path), pq.read_metadata(path)) is None
            with open(path, "rb") as f:
                assert page_headers.problem(f, pq.read_metadata(path)) is None
                assert f.tell() == 0


def _second_page_unread(change: Any) -> bytes:
    """A file of id, v holding each column's three rows twice (two pages a
    chunk), its row group saying 3 rows and v's chunk 6 values, v's second
    page header passed through `change(fields)`: pyarrow reads 3 rows and
    never that header; the walk reads it."""
    t = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "v": pa.array(["a", "b", "c"])})
    out = io.BytesIO()
    pq.write_table(pa.concat_tables([t, t]), out, compression="none", use_dictionary=False,
                   write_batch_size=3, data_page_size=1)
    raw = out.getvalue()
    holder: list[Any] = []
    edit(raw, holder.append)
    reader = _In(raw)
    reader.at = get(chunk_meta(holder[0], 0, 1), 9)
    first = reader.struct()
    reader.at += get(first, 3)  # past the first page's header and bytes
    second = reader.at
    header = reader.struct()
    length = reader.at - second
    change(header)
    new = _out(header)
    delta = len(new) - length

    def say_three(meta: list[Any]) -> None:
        put(meta, 3, 6, 3)  # FileMetaData.num_rows
        group = get(meta, 4)[1][0]
        put(group, 3, 6, 3)  # RowGroup.num_rows
        put(group, 6, 6, get(group, 6) + delta)
        put(chunk_meta(meta, 0, 0), 5, 6, 3)  # id: 3 values, v: 6
        cm = chunk_meta(meta, 0, 1)
        put(cm, 6, 6, get(cm, 6) + delta)
        put(cm, 7, 6, get(cm, 7) + delta)

    return edit(raw[:second] + new + raw[second + length:], say_three)


def test_a_page_header_pyarrow_never_reads_is_refused_not_a_crash(tmp_path: Path) -> None:
    """The walk goes on until a chunk's values are read, past where pyarrow
    stops (its row group's rows): a count of values there as a Thrift list
    was a TypeError out of values_problem, a 500 of VERIFY and RESTORE."""
    path = tmp_path / "unread.parquet"
    path.write_bytes(_second_page_unread(  # DataPageHeader.num_values as a list<i32>
        lambda header: put(get(header, 5), 1, 9, (5, [3]))))
    read = pq.read_table(path)  # pyarrow reads it, not that page
    assert read.column("v").to_pylist() == ["a", "b", "c"]
    wrong = page_headers.problem(str(path), pq.read_metadata(path))
    assert wrong is not None and ("without its count of values" in wrong  # (the walk)
                                  or "whose rows are 3" in wrong), wrong  # (before it)


def _before_first_page(data: bytes, column: bytes, pages: bytes, cut: int = 0) -> bytes:
    """The Parquet file `data` with the page headers `pages` put before
    `column`'s first page, in place of its first `cut` bytes (the offsets
    and sizes after them shifted)."""
    holder: list[Any] = []
    edit(data, holder.append)
    names = [get(e, 4) for e in get(holder[0], 2)[1][1:]]
    col = names.index(column)
    start = get(chunk_meta(holder[0], 0, col), 9)
    delta = len(pages) - cut

    def shift(meta: list[Any]) -> None:
        group = get(meta, 4)[1][0]
        put(group, 6, 6, get(group, 6) + delta)  # total_compressed_size
        for i, chunk in enumerate(get(group, 1)[1]):
            cm = get(chunk, 3)
            for f in cm:
                if f[0] in (9, 11) and f[2] > start:  # the offsets of the chunks after it
                    f[2] += delta
            if i == col:
                put(cm, 6, 6, get(cm, 6) + delta)
                put(cm, 7, 6, get(cm, 7) + delta)

    return edit(data[:start] + pages + data[start + cut:], shift)


def test_pages_cairns_writer_does_not_write_are_refused(tmp_path: Path) -> None:
    """Both readers skip an INDEX_PAGE; the walk decoded each: three million
    9-byte ones (a 27 MB file) kept VERIFY and RESTORE walking for 43 s each,
    and then VERIFY said valid. Any page but a first dictionary page and data
    pages of values is refused at once."""
    t = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "v": pa.array(["a", "b", "c"])})
    out = io.BytesIO()
    pq.write_table(t, out, compression="none", use_dictionary=False)
    index_page = _out([[1, 5, 1], [2, 5, 0], [3, 5, 0], [6, 12, []]])  # PageHeader, no bytes
    dictionary = _out([[1, 5, 2], [2, 5, 0], [3, 5, 0], [7, 12, [[1, 5, 0], [2, 5, 0]]]])
    path = tmp_path / "f.parquet"
    for pages, said in ((index_page * 1000, "of type INDEX_PAGE"),
                        (dictionary * 2, "of type DICTIONARY_PAGE after its first page")):
        path.write_bytes(_before_first_page(out.getvalue(), b"v", pages))
        if said == "of type INDEX_PAGE":
            assert pq.read_table(path).column("v").to_pylist() == ["a", "b", "c"]  # skipped
        wrong = page_headers.problem(str(path), pq.read_metadata(path))
        assert wrong is not None and f"column 'v' of row group 0 {said}" in wrong, wrong


def test_a_chunk_of_more_values_than_rows_is_refused(tmp_path: Path) -> None:
    """The walk goes on until a chunk's values are read: a chunk saying more
    values than its row group's rows (pyarrow reads the rows, DuckDB refuses
    it) is refused before its pages are walked."""
    path = tmp_path / "f.parquet"
    path.write_bytes(_second_page_unread(lambda header: None))
    wrong = page_headers.problem(str(path), pq.read_metadata(path))
    assert wrong == "has 6 values of column 'v' of row group 0, whose rows are 3", wrong


def test_a_page_header_of_more_values_than_cairns_is_refused(tmp_path: Path) -> None:
    """A field no reader knows (a list of empty structs), which pyarrow and
    DuckDB skip in C++, was decoded here struct by struct: a million of them
    (1 MB a header) took 1.3 s a page, twice (text_batches, page_headers),
    and one page a row made a 20 MB file's VERIFY take 52 s, then say valid.
    A page header's Thrift values are bounded as a footer's are."""
    t = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "v": pa.array(["a", "b", "c"])})
    out = io.BytesIO()
    pq.write_table(t, out, compression="none", use_dictionary=False)
    holder: list[Any] = []
    edit(out.getvalue(), holder.append)
    reader = _In(out.getvalue())
    reader.at = get(chunk_meta(holder[0], 0, 1), 9)
    header = reader.struct()
    length = reader.at - get(chunk_meta(holder[0], 0, 1), 9)
    header.append([20, 9, (12, [[]] * 1_000)])  # list<struct>, a byte each
    path = tmp_path / "f.parquet"
    path.write_bytes(_before_first_page(out.getvalue(), b"v", _out(header), cut=length))
    assert pq.read_table(path).column("v").to_pylist() == ["a", "b", "c"]  # pyarrow skips it
    wrong = page_headers.problem(str(path), pq.read_metadata(path))
    assert wrong is not None and "holds more values than a page header" in wrong, wrong
