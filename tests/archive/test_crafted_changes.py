"""Archived changes crafted by someone who can write to the target: every
segment rewritten with valid checksums (so only what the changes say is
wrong). VERIFY ARCHIVE and a RESTORE to the end of the window agree: VERIFY
calls the archive invalid exactly when the RESTORE refuses it (422
BACKUP_INVALID, never a 500), and a refused RESTORE installs nothing.

Before, VERIFY ARCHIVE checked each segment's bytes and the changes' order but
never replayed them, so it called all of these archives valid; an ALTER with
an unknown column type failed the RESTORE with a 500, a DROP carrying another
change's document and rows of another user in a USER table's block were
restored."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from server.config import Config
from storage import buffer
from storage.archive import segment
from storage.archive.blocks import Rows
from storage.archive.changes import ALTER, CREATE, DROP, NAMESPACE, NAMESPACE_TABLE, ROWS, Change
from tests.helpers import ok, rows, sql

from .test_archiving import FAST, segment_files, wait_shipped

Craft = Callable[[list[Change]], list[Change]]


def as_changes(entries: list[Any]) -> list[Change]:
    """A segment's decoded entries as the changes they were (a block of rows
    split back into its statements), for a format_version 1 segment."""
    out: list[Change] = []
    for e in entries:
        if not isinstance(e, Rows):
            out.append(e)
            continue
        for i, lsn in enumerate(e.lsns):
            part = e.rows.slice(e.offsets[i], e.offsets[i + 1] - e.offsets[i])
            out.append(Change(lsn, e.at_us[i], ROWS, e.table,
                              buffer.encode(part, e.version, 0.0, e.user)))
    return sorted(out, key=lambda c: c.lsn)


def rewrite(target: Path, craft: Craft) -> None:
    """Every segment of namespace app decoded and written again (format 1,
    valid checksums) with `craft` applied to its changes."""
    for path in segment_files(target.parent, target.name):
        name = segment.parse_name(path.name)
        assert name is not None
        aid = path.parent.name
        header, entries = segment.decode(path.read_bytes(), "app", aid, name)
        changes = craft(as_changes(entries))
        path.write_bytes(segment.encode("app", aid, name, changes,
                                        header.codec.startswith("zstd"), None, version=1))


Edit = Callable[[list[Change], Callable[[Change], Change]], list[Change]]


def first(kind: str, table: str | None = None) -> Edit:
    """An edit of the first change of `kind` (of `table`)."""
    def apply(changes: list[Change], fn: Callable[[Change], Change]) -> list[Change]:
        for i, c in enumerate(changes):
            if c.kind == kind and (table is None or c.table == table):
                return [*changes[:i], fn(c), *changes[i + 1:]]
        return changes
    return apply


def rows_of(c: Change, fn: Callable[[pa.Table], pa.Table], user: str | None = None) -> Change:
    batch = buffer.decode(b"", c.data)
    return Change(c.lsn, c.at_us, c.kind, c.table,
                  buffer.encode(fn(batch.rows), batch.version, 0.0,
                                batch.user if user is None else user))


def set_column(rows: pa.Table, name: str, values: pa.Array) -> pa.Table:
    i = rows.column_names.index(name)
    return rows.set_column(i, pa.field(name, values.type), values)


CASES: dict[str, Craft] = {
    # a CREATE whose records name another table than the change
    "create_renamed": lambda cs: first(CREATE)(
        cs, lambda c: Change(c.lsn, c.at_us, c.kind, "nope", c.data)),
    # an ALTER adding a column of a type Cairn has not (was a 500 at RESTORE)
    "alter_unknown_type": lambda cs: first(ALTER)(
        cs, lambda c: Change(c.lsn, c.at_us, c.kind, c.table,
                             c.data.replace(b'"TEXT"', b'"BOGUS"'))),
    # an ALTER whose new column is NOT NULL with a NULL default
    "alter_null_default": lambda cs: first(ALTER)(
        cs, lambda c: Change(c.lsn, c.at_us, c.kind, c.table, json.dumps(
            {**json.loads(c.data), "schema": {**json.loads(c.data)["schema"], "columns": [
                {**col, "not_null": True, "has_default": True}
                if col["name"] == "z" else col
                for col in json.loads(c.data)["schema"]["columns"]]}}).encode())),
    # a DROP carrying another kind's document (was restored: the table dropped)
    "drop_other_document": lambda cs: first(DROP)(
        cs, lambda c: Change(c.lsn, c.at_us, c.kind, c.table,
                             b'{"schema":{"version":2},"table":{"name":"y"}}')),
    # a CREATE NAMESPACE (archived since 2026-12-07) while the namespace has
    # tables, and one whose created_at is no time
    "namespace_with_tables": lambda cs: first(DROP)(
        cs, lambda c: Change(c.lsn, c.at_us, NAMESPACE, NAMESPACE_TABLE,
                             b'{"created_at":"2026-12-07T00:00:00.000Z"}')),
    "namespace_bad_time": lambda cs: first(DROP)(
        cs, lambda c: Change(c.lsn, c.at_us, NAMESPACE, NAMESPACE_TABLE,
                             b'{"created_at":"yesterday"}')),
    # rows of the shared table with a NULL key
    "null_key": lambda cs: first(ROWS, "t")(
        cs, lambda c: rows_of(c, lambda r: set_column(
            r, "id", pa.array([None] * r.num_rows, pa.int64())))),
    # rows whose key column is text
    "key_as_text": lambda cs: first(ROWS, "t")(
        cs, lambda c: rows_of(c, lambda r: set_column(
            r, "id", pa.array(["abc"] * r.num_rows, pa.string())))),
    # row versions past what a manifest may hold: were restored, then refused
    # at the install as INVALID_ARGUMENT (400) while VERIFY called them valid
    "seq_out_of_range": lambda cs: first(ROWS, "t")(
        cs, lambda c: rows_of(c, lambda r: set_column(
            r, "_seq", pa.array([2**63 - 1 - i for i in range(r.num_rows)], pa.int64())))),
    # row versions at the top of what a manifest may hold (2^62), or just past
    # what a restore takes (2^60): VERIFY called them valid and the RESTORE
    # raised the server's sequence there, so every later write took a number
    # past 2^62 and BACKUP of any namespace written since refused its manifest
    "seq_at_the_format_top": lambda cs: first(ROWS, "t")(
        cs, lambda c: rows_of(c, lambda r: set_column(
            r, "_seq", pa.array([2**62 - i for i in range(r.num_rows)], pa.int64())))),
    "seq_past_the_restore_bound": lambda cs: first(ROWS, "t")(
        cs, lambda c: rows_of(c, lambda r: set_column(
            r, "_seq", pa.array([2**60 + 1 + i for i in range(r.num_rows)], pa.int64())))),
    # two first versions of one key (were restored: two rows of one PRIMARY KEY)
    "two_first_versions": lambda cs: first(ROWS, "t")(
        cs, lambda c: rows_of(c, lambda r: set_column(
            r, "id", pa.array([1] * r.num_rows, pa.int64())))),
    # a NULL _ow (was taken for a first version; a backup of it was refused)
    "null_ow": lambda cs: first(ROWS, "t")(
        cs, lambda c: rows_of(c, lambda r: set_column(
            r, "_ow", pa.array([None] * r.num_rows, pa.bool_())))),
    # alice's block of the USER table holding bob's rows (were restored into
    # alice's file, shown to alice)
    "other_users_rows": lambda cs: first(ROWS, "u")(
        cs, lambda c: rows_of(c, lambda r: set_column(
            r, "_user", pa.array(["bob"] * r.num_rows, pa.string())))),
}


async def archived(client: Any) -> str:
    """Namespace app archived to 'arch': shared and USER rows, CREATE, ALTER,
    rows, DROP; the end of its window."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, v TEXT)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')")
    await ok(client, "INSERT INTO app.u VALUES (1, 'x')", user="alice")
    await ok(client, "CREATE TABLE app.x (id BIGINT PRIMARY KEY, w INT);"
                     "INSERT INTO app.x VALUES (1, 5);"
                     "ALTER TABLE app.x ADD COLUMN z TEXT;"
                     "CREATE TABLE app.y (id BIGINT PRIMARY KEY);"
                     "DROP TABLE app.y;"
                     "INSERT INTO app.t VALUES (3, 'c')")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert len(points) == 1
    end: str = points[0]["end_time"]
    return end


async def verify_and_restore(client: Any, end: str,
                             dest: str) -> tuple[dict[str, Any], int, dict[str, Any]]:
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS {dest} "
                                     f"WITH (as_of = '{end}')")
    return report, status, body


async def test_untouched_rewrite_still_restores(client: Any, cairn_config: Config) -> None:
    """The crafting itself changes nothing: segments rewritten as they were
    verify and restore whole (so each case below fails for its change)."""
    end = await archived(client)
    rewrite(Path(cairn_config.backup_roots[0]) / "arch", lambda cs: cs)
    report, status, body = await verify_and_restore(client, end, "copy")
    assert report["is_valid"] is True, report
    assert status == 200, body
    assert await rows(client, "SELECT id, v FROM copy.t ORDER BY id") == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    assert await rows(client, "SELECT id, v FROM copy.u", user="alice") == [{"id": 1, "v": "x"}]
    assert await rows(client, "SELECT id, w, z FROM copy.x") == [{"id": 1, "w": 5, "z": None}]
    tables = {r["table_name"] for r in await rows(client, "SHOW TABLES IN copy")}
    assert tables == {"t", "u", "x"}  # y created and dropped


@pytest.mark.parametrize("case", sorted(CASES))
async def test_verify_and_restore_agree(client: Any, cairn_config: Config, case: str) -> None:
    end = await archived(client)
    rewrite(Path(cairn_config.backup_roots[0]) / "arch", CASES[case])
    report, status, body = await verify_and_restore(client, end, "copy")
    assert report["is_valid"] is False, report
    assert report["errors"] and all("corrupt" in e or "does not exist" in e
                                    for e in report["errors"]), report["errors"]
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    # VERIFY names what RESTORE refused
    assert any(body["error"]["message"] in e for e in report["errors"]), (report, body)
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'copy'")


async def test_rows_at_the_restore_bound_restore_and_backups_go_on(
        client: Any, cairn_config: Config) -> None:
    """Archived rows at 2^60, the most a restore takes: restored, and the
    server, whose sequence is now past 2^60, still backs up and restores what
    it writes afterwards (storage/backup/seqs.py)."""
    end = await archived(client)
    top = itertools.count()  # one number per row, over every segment rewritten

    def at_bound(r: pa.Table) -> pa.Table:
        return set_column(r, "_seq", pa.array([2**60 - next(top) for _ in range(r.num_rows)],
                                              pa.int64()))

    rewrite(Path(cairn_config.backup_roots[0]) / "arch",
            lambda cs: first(ROWS, "t")(cs, lambda c: rows_of(c, at_bound)))
    report, status, body = await verify_and_restore(client, end, "copy")
    assert report["is_valid"] is True and status == 200, (report, body)
    await ok(client, "CREATE NAMESPACE other; CREATE TABLE other.t (id BIGINT PRIMARY KEY);"
                     "INSERT INTO other.t VALUES (1); INSERT INTO copy.t VALUES (9, 'z')")
    done = (await ok(client, "BACKUP DATABASE other TO 'later'"))[0]["rows"][0]
    assert (await rows(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'later'"))[0]["is_valid"]
    await ok(client, "RESTORE DATABASE other FROM 'later' AS other_copy")
    assert await rows(client, "SELECT id FROM other_copy.t") == [{"id": 1}]
    await ok(client, "BACKUP DATABASE copy TO 'later'; RESTORE DATABASE copy FROM 'later' AS copy2")
    assert [r["id"] for r in await rows(client, "SELECT id FROM copy2.t ORDER BY id")] == [
        1, 2, 3, 9]
