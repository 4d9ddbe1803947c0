"""Columns of a backed-up file that only the values can tell are wrong: the
key checks read the key columns and the footer, and the other columns were
never decoded. A TEXT value that is no UTF-8, a DECIMAL(5,2) holding
83886.07, a TEXT(5) of 100 characters, a footer whose `_ow` statistics hid a
key's later versions (SELECT showed the old row beside the new one), a NULL
in a NOT NULL column under a footer counting none, a chunk stored in another
file: each verified valid and was restored (then every query of the table
failed, or answered wrong). Found by trying, as whoever can write a target;
now VERIFY and RESTORE both refuse them, and nothing is restored."""

from __future__ import annotations

import decimal
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.files import data_file_bytes
from tests.helpers import ok, replace_file, reseal, rows
from tests.parquet_footer import chunk_meta, edit, get, put

from .test_backup_crypto_hostile import error_of
from .test_backup_restore import backup


def _rewrite(change: Callable[[pa.Table], pa.Table]) -> Callable[[bytes], bytes]:
    def rewrite(data: bytes) -> bytes:
        table = pq.read_table(io.BytesIO(data))
        return data_file_bytes(change(table), {})[0]
    return rewrite


def _column(name: str, values: pa.Array) -> Callable[[pa.Table], pa.Table]:
    def change(table: pa.Table) -> pa.Table:
        at = table.schema.get_field_index(name)
        return table.set_column(at, table.schema.field(at), values)
    return change


def _not_utf8(table: pa.Table) -> pa.Table:
    values = pa.array([b"\xff\xfe"] * table.num_rows, pa.binary()).view(pa.string())
    return _column("name", values)(table)


def _too_precise(table: pa.Table) -> pa.Table:
    wide = pa.array([decimal.Decimal("83886.07")] * table.num_rows, pa.decimal128(7, 2))
    return _column("d", wide.view(pa.decimal128(5, 2)))(table)


def _too_long(table: pa.Table) -> pa.Table:
    return _column("v", pa.array(["x" * 100] * table.num_rows))(table)


def _ow_said_false(meta: list[Any]) -> None:
    stats = get(chunk_meta(meta, 0, 1), 12)  # `_ow`: a key has later versions
    put(stats, 1, 8, b"\x00")
    put(stats, 5, 8, b"\x00")


def _nulls_unsaid(meta: list[Any]) -> None:
    stats = get(chunk_meta(meta, 0, 4), 12)  # `v`, which holds a NULL
    put(stats, 3, 6, 0)


def _other_file(meta: list[Any]) -> None:
    put(get(get(meta, 4)[1][0], 1)[1][3], 1, 8, b"/etc/passwd")


CASES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "not_utf8": (_rewrite(_not_utf8), "that are not TEXT"),
    "too_precise": (_rewrite(_too_precise), "that are not DECIMAL"),
    "too_long": (_rewrite(_too_long), "of 100 characters in column 'v', TEXT(5)"),
    "ow_said_false": (lambda d: edit(d, _ow_said_false), "column '_ow' of row group 0"),
    "nulls_unsaid": (lambda d: edit(d, _nulls_unsaid), "counting 0 NULL values in column 'v'"),
    "other_file": (lambda d: edit(d, _other_file), "in another file"),
}


@pytest.fixture
async def source(client: Any) -> dict[str, Any]:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, "
                     "name TEXT NOT NULL, v TEXT(5), d DECIMAL(5,2));"
                     "INSERT INTO app.t VALUES (1, 'a', 'x', 1.5), (2, 'b', NULL, 2.5), "
                     "(3, 'c', 'z', 3.5); UPDATE app.t SET name = 'a2' WHERE id = 1;"
                     "FLUSH TABLE app.t")
    return await backup(client, "BACKUP DATABASE app TO 'r' WITH (compression = 'none')")


@pytest.mark.parametrize("case", CASES)
async def test_a_column_only_its_values_show_wrong_is_refused(
        client: Any, source: dict[str, Any], tmp_path: Path, case: str) -> None:
    change, words = CASES[case]
    target = tmp_path / "backups" / case
    shutil.copytree(tmp_path / "backups" / "r", target)
    replace_file(target, "t", change)
    row = await backup(client, f"VERIFY BACKUP '{source['backup_id']}' IN '{case}'")
    assert row["is_valid"] is False and words in json.dumps(row["errors"]), row
    err = await error_of(client, f"RESTORE DATABASE app FROM '{case}' AS copy")
    assert err["code"] == "BACKUP_INVALID" and words in err["message"], err
    assert "copy" not in [r["namespace"] for r in await rows(client, "SHOW NAMESPACES")]


async def test_the_same_backup_untouched_verifies_and_restores(
        client: Any, source: dict[str, Any]) -> None:
    assert (await backup(client, f"VERIFY BACKUP '{source['backup_id']}' IN 'r'"))["is_valid"]
    await ok(client, "RESTORE DATABASE app FROM 'r' AS copy")
    assert await rows(client, "SELECT id, name, v, d FROM copy.t ORDER BY id") == [
        {"id": 1, "name": "a2", "v": "x", "d": "1.50"}, {"id": 2, "name": "b", "v": None,
                                                          "d": "2.50"},
        {"id": 3, "name": "c", "v": "z", "d": "3.50"}]


def _key(values: list[Any]) -> Callable[[bytes], bytes]:
    return _rewrite(_column("k", pa.array(values, pa.float64())))


@pytest.mark.parametrize(("values", "words"), [
    ([0.0, -0.0], "first versions (_ow false) of one key"),  # DuckDB's one key, pyarrow's two
    # every NaN is DuckDB's one key (a NaN key alone an older Cairn stored: taken)
    ([float("nan"), -float("nan")], "first versions (_ow false) of one key (k = nan)"),
])
async def test_float_keys_as_duckdb_compares_them(
        client: Any, tmp_path: Path, values: list[Any], words: str) -> None:
    """A DOUBLE key 0.0 beside -0.0 (or NaN beside -NaN) restored as two rows
    of one key; an UPDATE of both then lost one."""
    await ok(client, "CREATE NAMESPACE f; CREATE TABLE f.t (k DOUBLE PRIMARY KEY, v INT);"
                     "INSERT INTO f.t VALUES (0.0, 1), (1.0, 2); FLUSH TABLE f.t")
    done = await backup(client, "BACKUP DATABASE f TO 'fk' WITH (compression = 'none')")
    target = tmp_path / "backups" / "fk"
    replace_file(target, "t", _key(values))
    row = await backup(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'fk'")
    assert row["is_valid"] is False and words in json.dumps(row["errors"]), row
    err = await error_of(client, "RESTORE DATABASE f FROM 'fk' AS copy")
    assert err["code"] == "BACKUP_INVALID" and words in err["message"], err


async def test_a_generated_id_above_its_rows_seq_is_refused(client: Any, tmp_path: Path) -> None:
    """`_id` is a row's first `_seq`; a file re-sealed with `_id = 100` (its
    entry's key range widened to match) was restored, and the table's
    sequence handed 100 out again: two rows of one key, one lost to UPDATE."""
    await ok(client, "CREATE NAMESPACE g; CREATE TABLE g.t (v INT);"
                     "INSERT INTO g.t VALUES (1), (2), (3); FLUSH TABLE g.t")
    done = await backup(client, "BACKUP DATABASE g TO 'gk' WITH (compression = 'none')")
    target = tmp_path / "backups" / "gk"

    def far(table: pa.Table) -> pa.Table:
        ids = table.column("_id").to_pylist()
        return _column("_id", pa.array(ids[:-1] + [100], pa.int64()))(table)

    replace_file(target, "t", _rewrite(far))

    def widen(doc: dict[str, Any]) -> None:
        doc["tables"][0]["files"][0]["key_range"]["_id"][1] = 100

    reseal(next((target / "manifests").glob("*.json")), widen)
    row = await backup(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'gk'")
    assert row["is_valid"] is False and "_id above its row's _seq" in json.dumps(row["errors"])
    err = await error_of(client, "RESTORE DATABASE g FROM 'gk' AS copy")
    assert err["code"] == "BACKUP_INVALID" and "_id above" in err["message"], err


@pytest.mark.parametrize(("value", "words"), [
    ("[-NaN]", "is not valid JSON"),  # (NaN and 1e999 an older write took: test_legacy_json)
    ("not json", "is not valid JSON"),
    ("[01]", "is not valid JSON"),
    ('{"k":"\\ud800"', "is not valid JSON"),
    ("[" * 5000 + "]" * 5000, "5000 deep, more than 4096"),
])
async def test_json_a_write_refuses_is_refused(
        client: Any, tmp_path: Path, value: str, words: str) -> None:
    """A JSON column holding text no write ever took (DuckDB's JSON functions
    fail on it, or an HTTP answer, which splices the stored text in, would be
    no JSON) verified valid and was restored."""
    await ok(client, "CREATE NAMESPACE js; CREATE TABLE js.t (id INT PRIMARY KEY, j JSON);"
                     "INSERT INTO js.t VALUES (1, '[1]'), (2, NULL); FLUSH TABLE js.t")
    done = await backup(client, "BACKUP DATABASE js TO 'jv' WITH (compression = 'none')")
    target = tmp_path / "backups" / "jv"
    replace_file(target, "t", _rewrite(_column("j", pa.array([value, None]))))
    row = await backup(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'jv'")
    assert row["is_valid"] is False and words in json.dumps(row["errors"]), row
    assert "JSON column 'j'" in json.dumps(row["errors"]), row
    err = await error_of(client, "RESTORE DATABASE js FROM 'jv' AS copy")
    assert err["code"] == "BACKUP_INVALID" and words in err["message"], err


async def test_json_an_older_release_stored_is_backed_up_verified_and_restored(
        client: Any, tmp_path: Path) -> None:
    """Until 2026-12-05 a write took what json.loads took: a lone surrogate
    escape, nesting past 512. A data directory or backup holding such values
    is this server's to back up; its own VERIFY called that backup invalid and
    RESTORE refused it, though BACKUP had completed. Such a value is kept as
    it was; an answer splices it in where a write would take it, else gives
    its text (docs/http.md)."""
    deep = "[" * 600 + "]" * 600
    await ok(client, "CREATE NAMESPACE js; CREATE TABLE js.t (id INT PRIMARY KEY, j JSON);"
                     "INSERT INTO js.t VALUES (1, '[1]'), (2, '[2]'), (3, '{\"ok\": 1}');"
                     "FLUSH TABLE js.t")
    done = await backup(client, "BACKUP DATABASE js TO 'jv' WITH (compression = 'none')")
    target = tmp_path / "backups" / "jv"
    replace_file(target, "t", _rewrite(_column("j", pa.array(['{"k":"\\ud800"}', deep,
                                                               '{"ok": 1}']))))
    row = await backup(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'jv'")
    assert row["is_valid"] is True, row
    await ok(client, "RESTORE DATABASE js FROM 'jv' AS old")
    got = await rows(client, "SELECT id, j FROM old.t ORDER BY id")
    assert got[0] == {"id": 1, "j": '{"k":"\\ud800"}'}  # no JSON to a reader: its text
    # Past 512 deep a write would not take it either: its text, as a string.
    assert got[1]["j"] == deep and got[2]["j"] == {"ok": 1}
    # This server's BACKUP of them is one its VERIFY and RESTORE take.
    again = await backup(client, "BACKUP DATABASE old TO 'again'")
    row = await backup(client, f"VERIFY BACKUP '{again['backup_id']}' IN 'again'")
    assert row["is_valid"] is True, row
    await ok(client, "RESTORE DATABASE old FROM 'again' AS copy")
    assert len(await rows(client, "SELECT * FROM copy.t")) == 3
