"""A backup of a table as wide as Cairn takes restores; a footer no file of
its table could have is refused by VERIFY and RESTORE alike.

A footer was refused past 1 MiB whatever its table, while Cairn's own take
~190 bytes a column per row group: a table of 4,091 columns and one flushed
row backed up ("completed") and RESTORE refused it (BACKUP_INVALID, "a
Parquet footer of 1055769 bytes (at most 1048568 accepted)"). The bound is
now what a file of its entry's columns and rows can hold
(storage/backup/footers.py), and BACKUP refuses up front a file past what a
restore reads (docs/backup-format.md, "Footers"), and a flush of very many
rows of a very wide table writes several files, each one a restore reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from server.config import Config
from storage.backup import footers  # noqa
from storage.schema import MAX_COLUMNS
from tests.helpers import err, ok, replace_file, rows, target_files
from tests.parquet_footer import edit, put

from .test_backup_crypto_hostile import error_of
from .test_backup_restore import backup

WIDE = MAX_COLUMNS - 2  # with `_updated` and `_deleted`, the most a table takes


async def test_a_table_of_the_most_columns_backs_up_verifies_and_restores(
        client: Any, tmp_path: Path) -> None:
    cols = ", ".join(f"c{i} TEXT DEFAULT 'default-value-{i}'" for i in range(1, WIDE))
    await ok(client, f"CREATE NAMESPACE w; CREATE TABLE w.t (c0 INT PRIMARY KEY, {cols})")
    await ok(client, "INSERT INTO w.t (c0) VALUES (1); FLUSH TABLE w.t")
    await ok(client, "INSERT INTO w.t (c0, c7) VALUES (2, 'x'); FLUSH TABLE w.t")
    row = await backup(client, "BACKUP DATABASE w TO 'bk' WITH (compression = 'none')")
    assert row["status"] == "completed" and row["files"] == 2, row
    stored = [p.read_bytes() for p in (tmp_path / "backups" / "bk" / "objects").rglob("*")
              if p.is_file()]
    sizes = [int.from_bytes(d[-8:-4], "little") for d in stored if d.endswith(b"PAR1")]
    assert len(sizes) == 2 and min(sizes) > 1 << 20, sizes  # past the old bound
    checked = await backup(client, f"VERIFY BACKUP '{row['backup_id']}' IN 'bk'")
    assert checked["is_valid"] is True and checked["errors"] == [], checked
    await ok(client, "RESTORE DATABASE w FROM 'bk' AS w2")
    got = await rows(client, "SELECT c0, c7, c4092 FROM w2.t ORDER BY c0")
    assert got == [{"c0": 1, "c7": "default-value-7", "c4092": "default-value-4092"},
                   {"c0": 2, "c7": "x", "c4092": "default-value-4092"}]


def _padded(size: int, entries: int = 1) -> Any:
    """A footer edit: key-value metadata (FileMetaData field 5) of `entries`
    KeyValue structs, the first holding a value of `size` bytes."""
    def change(meta: list[Any]) -> None:
        first = [[1, 8, b"pad"], [2, 8, b"x" * size]]
        put(meta, 5, 9, (12, [first] + [[[1, 8, b""]] for _ in range(entries - 1)]))
    return change


async def test_a_footer_past_its_tables_bound_is_refused_by_verify_and_restore(
        client: Any, tmp_path: Path) -> None:
    """Under the old 1 MiB, but past what a file of 1 row of 6 columns holds
    (footers.bound), or of more Thrift values than such a footer has."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a'); FLUSH TABLE app.t")
    made = await backup(client, "BACKUP DATABASE app TO 'r' WITH (compression = 'none')")
    most = 64 * 1024 + 6 * (footers.COLUMN_BYTES + footers.CHUNK_BYTES)
    cases = {"big": (_padded(most), f"(at most {most} accepted for a file of 1 rows and 6 "
                                     "columns)"),
             "many": (_padded(10, 30_000), "holds more values than a footer of its columns")}
    for name, (change, words) in cases.items():
        target = tmp_path / "backups" / name
        shutil.copytree(tmp_path / "backups" / "r", target)
        replace_file(target, "t", lambda data, change=change: edit(data, change))
        checked = await backup(client, f"VERIFY BACKUP '{made['backup_id']}' IN '{name}'")
        assert checked["is_valid"] is False and words in json.dumps(checked["errors"]), checked
        wrong = await error_of(client, f"RESTORE DATABASE app FROM '{name}' AS copy")
        assert wrong["code"] == "BACKUP_INVALID" and words in wrong["message"], wrong
        assert "copy" not in [r["namespace"] for r in await rows(client, "SHOW NAMESPACES")]
    # A footer within its bound (padded as a writer may) is taken by both.
    target = tmp_path / "backups" / "fits"
    shutil.copytree(tmp_path / "backups" / "r", target)
    replace_file(target, "t", lambda data: edit(data, _padded(4096)))
    assert (await backup(client, f"VERIFY BACKUP '{made['backup_id']}' IN 'fits'"))["is_valid"]
    await ok(client, "RESTORE DATABASE app FROM 'fits' AS copy")


async def test_backup_refuses_up_front_a_file_a_restore_would_refuse(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path, monkeypatch: Any) -> None:
    """What a restore reads is bounded (footers.MAX_BYTES); a file past it
    (here: the bound made small after the flush, as for a file an older
    Cairn flushed in one piece) is never stored in a backup that RESTORE
    would then refuse."""
    from server.app import create_app

    cairn_config.jobs.job_process = "off"  # the bound below holds in the server's process
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE n; CREATE TABLE n.t (k INT PRIMARY KEY, v TEXT);"
                     "CREATE TABLE n.small (k INT PRIMARY KEY)")
    await ok(client, f"INSERT INTO n.t VALUES (1, '{'a' * 4000}'); FLUSH TABLE n.t; "
                     "INSERT INTO n.small VALUES (1)")  # t's footer holds v's min and max
    monkeypatch.setattr(footers, "MAX_BYTES", 4000)
    for text in ("BACKUP DATABASE n TO 'bk'", "BACKUP DATABASE n, other TO 'set'",
                 "START ARCHIVING DATABASE n TO 'arch'"):
        if "other" in text:
            await ok(client, "CREATE NAMESPACE IF NOT EXISTS other")
        message = await err(client, text, "INVALID_ARGUMENT")
        assert "a file of table 't' (1 rows, 6 columns) has a Parquet footer of" in message
        assert "over the 4000 a restore reads" in message, message
        assert "CREATE TABLE, then INSERT INTO ... SELECT" in message, message
    for name in ("bk", "set", "arch"):
        held = target_files(tmp_path / "backups" / name)
        assert not held["objects"] and not held["manifests"], (name, held)
    await ok(client, "BACKUP TABLE n.small TO 'bk'")


async def test_a_flush_and_a_buffers_export_write_files_a_restore_reads(
        aiohttp_client: Any, cairn_config: Config, monkeypatch: Any) -> None:
    """Very many rows of a very wide table (here: MAX_CHUNKS made 2 row groups
    of the table's 6 Parquet columns) go to several files, each within what
    a restore reads, so the table backs up, verifies and restores."""
    from server.app import create_app

    cairn_config.jobs.job_process = "off"  # the bound below holds in the server's process
    client = await aiohttp_client(create_app(cairn_config))
    monkeypatch.setattr(footers, "MAX_CHUNKS", 12)
    await ok(client, "CREATE NAMESPACE p; CREATE TABLE p.t (k BIGINT PRIMARY KEY, v TEXT) "
                     "WITH (flush_rows = 100000)")
    values = ", ".join(f"({i}, 'v{i}')" for i in range(5000))
    await ok(client, f"INSERT INTO p.t VALUES {values}; FLUSH TABLE p.t")
    [table] = await rows(client, "SELECT files, flushed_rows FROM system.tables "
                                 "WHERE namespace = 'p'")
    assert table == {"files": 3, "flushed_rows": 5000}  # 2,048 + 2,048 + 904
    values = ", ".join(f"({i}, 'w{i}')" for i in range(5000, 8000))
    await ok(client, f"INSERT INTO p.t VALUES {values}")  # exported: 2,048 + 952
    made = await backup(client, "BACKUP DATABASE p TO 'bk'")
    assert made["files"] == 5 and made["rows"] == 8000, made
    assert (await backup(client, f"VERIFY BACKUP '{made['backup_id']}' IN 'bk'"))["is_valid"]
    await ok(client, "RESTORE DATABASE p FROM 'bk' AS p2")
    got = await rows(client, "SELECT count(*) AS n, count(DISTINCT k) AS keys, min(v) AS lo, "
                             "max(k) AS hi FROM p2.t")
    assert got == [{"n": 8000, "keys": 8000, "lo": "v0", "hi": 7999}]
    assert await rows(client, "SELECT v FROM p2.t WHERE k = 4999") == [{"v": "v4999"}]
