"""storage/nanstats.py on files made here: which files hide NaN rows, and a
rewrite that keeps every row, holds a row group at a time and writes no
statistics for the columns holding NaN."""

from __future__ import annotations

import errno
import hashlib
import math
import random
import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog import Catalog, DataFile, Meta
from storage import footer_stats as fs
from storage import nanreader, nanstats
from storage.files import NAN_RULE, FileStore, write_data_file
from storage.nanreader import NanReader, Unreadable

UID = "tbl-0000000000000000000a"


def older_file(path: Path, rows: int = 20_000, group: int = 700) -> pa.Table:
    """As a flush before 2026-12-06 wrote it (statistics for every column),
    in small row groups; one NaN in `x`, none in `y`."""
    x = [float(i) for i in range(rows)]
    x[rows // 2] = math.nan
    table = pa.table({"k": pa.array(range(rows), pa.int64()), "x": x,
                      "y": pa.array([0.5] * rows, pa.float32()), "s": ["v"] * rows})
    table = table.replace_schema_metadata({b"cairn.schema_version": b"1"})
    pq.write_table(table, path, row_group_size=group, compression="zstd")
    return table


def test_which_files_hide_nan_rows(tmp_path: Path) -> None:
    older_file(tmp_path / "old.parquet")
    assert nanstats.hides_nan(tmp_path / "old.parquet")
    plain = pa.table({"k": [1, 2], "x": [1.0, 2.0]})
    pq.write_table(plain, tmp_path / "no_nan.parquet")
    assert not nanstats.hides_nan(tmp_path / "no_nan.parquet")
    pq.write_table(pa.table({"k": [1], "s": ["a"]}), tmp_path / "no_float.parquet")
    assert not nanstats.hides_nan(tmp_path / "no_float.parquet")
    with_nan = pa.table({"k": [1, 2], "x": [1.0, math.nan]})
    pq.write_table(with_nan, tmp_path / "no_stats.parquet", write_statistics=["k"])
    assert not nanstats.hides_nan(tmp_path / "no_stats.parquet")
    write_data_file(tmp_path / "now.parquet", with_nan, {})  # today's flush
    assert not nanstats.hides_nan(tmp_path / "now.parquet")
    # A file saying it was written by the rule is taken at its word.
    pq.write_table(with_nan.replace_schema_metadata(NAN_RULE), tmp_path / "claims.parquet")
    assert not nanstats.hides_nan(tmp_path / "claims.parquet")


def test_a_rewrite_keeps_every_row_and_drops_only_the_nan_columns_statistics(
        tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data")
    _, rel, src = files.place(UID)
    table = older_file(src)
    size = src.stat().st_size
    rec = DataFile(table_uid=UID, file_id=rel.split("/")[2][:-8], path=rel, rows=table.num_rows,
                   bytes=size, sha256="0" * 64, schema_version=1, min_seq=3, max_seq=9)
    meta, at = nanstats.footer(src)
    with NanReader() as reader:
        leaves = nanstats.nan_leaves(src, meta, reader)
    assert leaves == {1}  # x; not y, whose statistics are true
    new = nanstats.rewrite(files, rec, meta, at, leaves)
    path = files.abs(new.path)
    assert new.path != rel and src.exists()  # the old file is the caller's to remove
    assert (new.rows, new.min_seq, new.max_seq) == (rec.rows, 3, 9)
    assert new.bytes == path.stat().st_size
    assert new.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    again = pq.read_table(path)
    assert again.schema.equals(table.schema, check_metadata=True)
    assert repr(again.to_pylist()) == repr(table.to_pylist())
    before, after = pq.ParquetFile(src).metadata, pq.ParquetFile(path).metadata
    old_bytes = src.read_bytes()
    body = len(old_bytes) - 8 - int.from_bytes(old_bytes[-8:-4], "little")  # the pages
    assert path.read_bytes()[:body] == old_bytes[:body] and new.bytes < len(old_bytes)
    assert [after.row_group(g).num_rows for g in range(after.num_row_groups)] == \
        [before.row_group(g).num_rows for g in range(before.num_row_groups)]
    names = [after.schema.column(c).name for c in range(after.num_columns)]
    for g in range(after.num_row_groups):
        stats = {n: after.row_group(g).column(c).is_stats_set for c, n in enumerate(names)}
        assert stats == {"k": True, "x": False, "y": True, "s": True}, stats
        assert after.row_group(g).column(0).statistics == before.row_group(g).column(0).statistics
    assert not nanstats.hides_nan(path)


def data_dir(tmp_path: Path, kinds: list[str]) -> tuple[Catalog, FileStore, list[DataFile]]:
    """A catalog and files: "older" (hides a NaN), "garbage", "short stats"
    (a DOUBLE's min and max 3 bytes long: pyarrow ends the process reading
    them), "bad path" (a column chunk's path not UTF-8), "damaged page",
    "arrow schema" (its ARROW:schema metadata garbled), "now" (this release's)."""
    files = FileStore(tmp_path / "data")
    catalog = Catalog(tmp_path / "data" / "catalog")
    recs = []
    for kind in kinds:
        file_id, rel, path = files.place(UID)
        if kind == "garbage":
            path.write_bytes(b"not parquet")
        elif kind == "now":
            write_data_file(path, older_file(path, rows=3000), {})
        else:
            older_file(path, rows=3000)
            if kind == "damaged page":  # bytes of x's first page flipped: DuckDB refuses it
                start = pq.ParquetFile(path).metadata.row_group(0).column(1).data_page_offset
                data = bytearray(path.read_bytes())
                data[start + 40:start + 72] = bytes(b ^ 0xFF for b in data[start + 40:start + 72])
                path.write_bytes(bytes(data))
            elif kind == "arrow schema":  # pyarrow refuses it, DuckDB reads it
                data = path.read_bytes()
                at = data.index(b"ARROW:schema") + 40
                path.write_bytes(data[:at] + b"A" * 40 + data[at + 40:])
            elif kind != "older":
                meta, at = nanstats.footer(path)
                data = path.read_bytes()[:at]
                meta = craft_footer(meta, 1, stats=kind == "short stats")
                path.write_bytes(data + meta + len(meta).to_bytes(4, "little") + b"PAR1")
        recs.append(DataFile(table_uid=UID, file_id=file_id, path=rel, rows=3000,
                             bytes=path.stat().st_size, sha256="0" * 64, schema_version=1))
        catalog.put(recs[-1])
    return catalog, files, recs


def craft_footer(footer: bytes, column: int, stats: bool) -> bytes:
    """`footer` with column `column`'s statistics min/max cut to 3 bytes
    (`stats`), or its path_in_schema not UTF-8 (the attacker's craft.py).
    Each `on_*` says (keep the field, the position after a value it walked:
    -1 for none), as footer_stats._struct asks."""
    def on_stats(fid: int, kind: int, s: int, d: int, out: bytearray) -> tuple[bool, int]:
        if fid in (1, 2, 5, 6) and kind == fs._BINARY:
            _, at = fs._varint(footer, s)
            fs._put_varint(out, 3)
            out += footer[at:at + 3]
        return True, -1

    def on_meta(fid: int, kind: int, s: int, d: int, out: bytearray) -> tuple[bool, int]:
        if stats and fid == 12 and kind == fs._STRUCT:
            return True, fs._struct(footer, s, out, on_stats)
        if not stats and fid == 3 and kind == fs._LIST:
            out += bytes([0x18, 1, 0xFF])  # a list of one binary: b"\xff"
        return True, -1

    def on_chunk(index: int) -> fs.OnField:
        def on(fid: int, kind: int, s: int, d: int, out: bytearray) -> tuple[bool, int]:
            if fid == 3 and kind == fs._STRUCT and index == column:
                return True, fs._struct(footer, s, out, on_meta)
            return True, -1
        return on

    def each_list(s: int, out: bytearray, each: fs.Each) -> int:
        size, _, at = fs._list_head(footer, s)
        out += footer[s:at]
        for i in range(size):
            at = each(i, at, out)
        return at

    def on_group(fid: int, kind: int, s: int, d: int, out: bytearray) -> tuple[bool, int]:
        if fid == 1 and kind == fs._LIST:
            return True, each_list(s, out, lambda i, at, o: fs._struct(footer, at, o, on_chunk(i)))
        return True, -1

    def on_file(fid: int, kind: int, s: int, d: int, out: bytearray) -> tuple[bool, int]:
        if fid == 4 and kind == fs._LIST:
            return True, each_list(s, out, lambda i, at, o: fs._struct(footer, at, o, on_group))
        return True, -1

    out = bytearray()
    fs._struct(footer, 0, out, on_file)
    return bytes(out)


def test_a_data_directory_is_mended_once_and_damaged_files_never_stop_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kinds = ["damaged page", "older", "garbage", "short stats", "bad path", "arrow schema",
             "older", "now"]
    catalog, files, recs = data_dir(tmp_path, kinds)
    try:
        # In this process: no abort, no stop at the first damaged file. The
        # "bad path" and "arrow schema" files are ones DuckDB reads (and
        # pyarrow does not): their NaN rows were hidden, so they are mended.
        assert nanstats.mend_data_dir(catalog, files) == 4
        assert "is left as it is for now" in caplog.text
        now = {f.path: f for f in catalog.scan(DataFile)}
        assert len(now) == len(kinds)
        mended = {"older", "bad path", "arrow schema"}
        for rec, kind in zip(recs, kinds, strict=True):
            assert (rec.path in now) == (kind not in mended), kind  # damaged ones left
        assert all(files.abs(p).exists() for p in now)
        assert not any(files.abs(r.path).exists() for r, k in zip(recs, kinds, strict=True)
                       if k in mended)
        for p in set(now) - {r.path for r in recs}:  # as DuckDB filters them now
            got = duckdb.sql(f"SELECT count(*) FROM read_parquet('{files.abs(p)}') "
                             "WHERE isnan(#2) OR #2 > 1e9").fetchall()
            assert got == [(1,)], p
        assert catalog.get(Meta, nanstats.MARK) is not None
        _, rel, path = files.place(UID)
        older_file(path, rows=10)
        catalog.put(DataFile(table_uid=UID, file_id="f-x", path=rel, rows=10, bytes=1,
                             sha256="0" * 64, schema_version=1))
        assert nanstats.mend_data_dir(catalog, files) == 0  # marked: not again
    finally:
        catalog.close()


def test_a_full_disk_ends_the_pass_unmarked_and_the_next_start_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark came even when files could not be written (ENOSPC, EFBIG):
    their NaN rows stayed hidden for good. And every file was written before
    any old one went, so a directory over half full of them always failed."""
    monkeypatch.setattr(nanstats, "CHUNK_FILES", 2)
    catalog, files, recs = data_dir(tmp_path, ["older"] * 7)
    real, calls = nanstats.write_copy, []

    def full_disk(dest: Path, src: Path, length: int, tail: bytes) -> tuple[int, str]:
        calls.append(dest)
        if len(calls) in (3, 6, 7):  # a chunk swapped makes room for the 3rd; not the 5th
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(dest, src, length, tail)

    try:
        with monkeypatch.context() as m:
            m.setattr(nanstats, "write_copy", full_disk)
            assert nanstats.mend_data_dir(catalog, files) == 6  # the 5th failed twice
        assert catalog.get(Meta, nanstats.MARK) is None
        now = catalog.scan(DataFile)
        assert len(now) == 7 and all(files.abs(f.path).exists() for f in now)
        assert sum(nanstats.hides_nan(files.abs(f.path)) for f in now) == 1
        assert not list(files.tmp_dir.iterdir())
        assert nanstats.mend_data_dir(catalog, files) == 1  # the next start
        assert catalog.get(Meta, nanstats.MARK) is not None
        now = catalog.scan(DataFile)
        assert len(now) == 7 and not any(nanstats.hides_nan(files.abs(f.path)) for f in now)
        on_disk = {str(p.relative_to(files.data_dir)) for p in files.files_dir.rglob("*.parquet")}
        assert on_disk == {f.path for f in now}
    finally:
        catalog.close()


def test_a_reader_process_that_dies_on_a_file_fails_that_file_only(tmp_path: Path) -> None:
    """A reader that ends its process on a damaged file (pyarrow does on some
    statistics) must not take the server with it: DuckDB reads in a child,
    and a child that dies fails the file it was reading; the next file gets
    a new child."""
    older_file(tmp_path / "a.parquet", rows=2000)
    with NanReader() as reader:
        assert reader.holding_nan(tmp_path / "a.parquet", [1, 2]) == {1}
        child = reader._proc
        assert child is not None
        child.kill()  # as if DuckDB had ended it on this file
        child.wait()
        reader._start = lambda: child  # type: ignore[method-assign]  # asked of the dead one
        with pytest.raises(Unreadable, match="reader process ended") as ended:
            reader.holding_nan(tmp_path / "a.parquet", [1])
        del reader._start
        assert ended.value.passing  # nothing sure of the file: read again at the next start
        assert reader.holding_nan(tmp_path / "a.parquet", [1]) == {1}  # a new child
        assert reader._proc is not None and reader._proc.pid != child.pid
        with pytest.raises(Unreadable, match="IOException|No files found|not exist"):
            reader.holding_nan(tmp_path / "missing.parquet", [1])
    assert child.poll() is not None and reader._proc is None


def test_a_reader_killed_mid_pass_leaves_the_pass_unmarked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its file was taken for damage and the directory marked done: killed by
    an operator or the out-of-memory killer, 299 of 300 files mended, the
    300th's NaN rows hidden for good."""
    catalog, files, recs = data_dir(tmp_path, ["older"] * 4)
    real_start, calls = NanReader._start, []

    def start(self: NanReader) -> subprocess.Popen[str]:
        proc = real_start(self)
        calls.append(proc)
        if len(calls) == 2:  # the child dies as the second file is asked of it
            proc.kill()
            proc.wait()
        return proc

    try:
        with monkeypatch.context() as m:
            m.setattr(NanReader, "_start", start)
            assert nanstats.mend_data_dir(catalog, files) == 3  # the others go on
        assert catalog.get(Meta, nanstats.MARK) is None
        assert nanstats.mend_data_dir(catalog, files) == 1
        assert catalog.get(Meta, nanstats.MARK) is not None
    finally:
        catalog.close()


def test_a_file_two_records_name_is_left_for_both(tmp_path: Path) -> None:
    """The rewrite for the first record removed the file the second still
    named: a table that read before the start answered 500 for good."""
    catalog, files, recs = data_dir(tmp_path, ["older", "older"])
    twin = DataFile(table_uid="tbl-0000000000000000000c", file_id="f-twin", path=recs[0].path,
                    rows=3000, bytes=recs[0].bytes, sha256="0" * 64, schema_version=1)
    catalog.put(twin)
    try:
        assert nanstats.mend_data_dir(catalog, files) == 1
        now = {(f.table_uid, f.file_id): f for f in catalog.scan(DataFile)}
        assert now[(UID, recs[0].file_id)].path == recs[0].path == now[(twin.table_uid,
                                                                         "f-twin")].path
        assert files.abs(recs[0].path).exists()
        assert (UID, recs[1].file_id) not in now  # the other one mended
    finally:
        catalog.close()


def test_the_reader_imports_nothing_from_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    older_file(tmp_path / "a.parquet", rows=2000)
    (tmp_path / "json.py").write_text("raise ImportError('the working directory json.py')\n")
    monkeypatch.chdir(tmp_path)
    with NanReader() as reader:
        assert reader.holding_nan(tmp_path / "a.parquet", [1, 2]) == {1}


def test_a_file_read_past_the_bound_is_unreadable_and_its_reader_ended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server waited on the reader with no bound: a file DuckDB never
    finished reading would have stopped every start."""
    older_file(tmp_path / "a.parquet", rows=200_000)
    monkeypatch.setattr(nanreader, "READ_SECONDS", 0.0)
    with NanReader() as reader:
        with pytest.raises(Unreadable, match="not read within") as slow:
            reader.holding_nan(tmp_path / "a.parquet", [1, 2])
        assert not slow.value.passing and reader._proc is None


def test_a_row_group_too_wide_to_read_at_once_is_read_a_column_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Releases before 2026-12-01 wrote row groups of 1,000,000 rows whatever
    their width: 40 DOUBLE columns asked the reader for 300 MB at once, it
    ran out of memory, the file was taken for damage and the directory
    marked done. Here a 16 MB limit and a 24 MB row group, in this process
    (the child's function)."""
    rows, rng = 300_000, random.Random(3)
    columns = {f"c{i}": [rng.random() for _ in range(rows)] for i in range(10)}
    for values in columns.values():
        values[rows // 2] = math.nan
    pq.write_table(pa.table(columns), tmp_path / "wide.parquet", row_group_size=rows)
    monkeypatch.setitem(nanreader._CONFIG, "memory_limit", "16MB")
    together = ("SELECT " + ", ".join(f"bool_or(isnan(#{i + 1}))" for i in range(10))
                + f" FROM read_parquet('{tmp_path / 'wide.parquet'}')")
    with duckdb.connect(config=nanreader._CONFIG) as con:
        con.execute(f"SET disabled_optimizers = '{nanreader._NOT_BY_STATISTICS}'")
        with pytest.raises(duckdb.OutOfMemoryException):  # the premise: all at once, no
            con.execute(together).fetchall()
    assert nanreader.holding_nan(str(tmp_path / "wide.parquet"), list(range(10))) == \
        list(range(10))


def test_a_reader_out_of_memory_says_nothing_sure_of_the_file() -> None:
    """Its answer leaves the pass unmarked (read again at the next start);
    DuckDB's other errors are the file's own."""
    oom = nanreader.refusal({"error": "OutOfMemoryException: could not allocate block",
                             "kind": "OutOfMemoryException"})
    assert oom.passing and "could not allocate" in str(oom)
    assert not nanreader.refusal({"error": "IOException: corrupt", "kind": "IOException"}).passing
    assert not nanreader.refusal({"error": "an older reader's answer"}).passing
