"""Rows replayed from archived segments must be what a backed-up file of them
would have to be: a RESTORE as_of writes them into the restored table's files,
which a BACKUP of it copies. Someone who can write the target rewrote one
block of rows and sealed the segment again (format 2, every checksum valid):
two first versions (`_ow` false) of one key, a NULL `_ow`, an `_updated` past
the year 9999, two rows of one `_seq`. Before, VERIFY ARCHIVE called each
archive valid and the RESTORE as_of completed (with two rows of one PRIMARY
KEY, for the first), while a BACKUP of the restored namespace then completed
and no VERIFY or RESTORE took it ("holds 2 first versions (_ow false) of one
key"). The same across segments: a key's first version, or a `_seq`, in two
of them. Now VERIFY and RESTORE refuse each alike (422 BACKUP_INVALID naming
the segment and what is wrong) and nothing is restored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from server.config import Config
from storage.archive import segment
from storage.archive.blocks import Rows
from tests.helpers import ok, rows

from .test_archiving import FAST, segment_files, wait_shipped
from .test_crafted_changes import as_changes, set_column, verify_and_restore

Edit = Callable[[pa.Table], pa.Table]


def blocks_of(root: Path, table: str) -> list[tuple[Path, Rows]]:
    """The segments holding rows of `table`, in order, with the first block of them."""
    out = []
    for path in segment_files(root):
        name = segment.parse_name(path.name)
        assert name is not None
        _, entries = segment.decode(path.read_bytes(), "app", path.parent.name, name)
        found = [e for e in entries if isinstance(e, Rows) and e.table == table]
        if found:
            out.append((path, found[0]))
    return out


def rewrite_rows(root: Path, table: str, which: int, edit: Edit) -> str:
    """The rows of `table` in the `which`-th segment holding some (0: the
    first) passed through `edit`, and the segment written again (format 2,
    checksums valid); its file name."""
    path = blocks_of(root, table)[which][0]
    name = segment.parse_name(path.name)
    assert name is not None
    header, entries = segment.decode(path.read_bytes(), "app", path.parent.name, name)
    i = next(i for i, e in enumerate(entries) if isinstance(e, Rows) and e.table == table)
    e = entries[i]
    assert isinstance(e, Rows)
    entries[i] = Rows(e.table, e.version, e.user, e.lsns, e.at_us, e.offsets, edit(e.rows))
    path.write_bytes(segment.encode("app", path.parent.name, name, as_changes(entries),
                                    header.codec.startswith("zstd"), None))
    return path.name


def values(name: str, edit: Callable[[list[Any]], list[Any]]) -> Edit:
    """An edit of column `name`'s values (a TIMESTAMP's as microseconds)."""
    def apply(r: pa.Table) -> pa.Table:
        column = r.column(name)
        raw = column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column
        new = pa.array(edit(raw.to_pylist()), raw.type)
        return set_column(r, name, new.view(column.type) if new.type != column.type else new)
    return apply


def first_row_as_second(vals: list[Any]) -> list[Any]:
    return [vals[0], vals[0], *vals[2:]]


# (table, which segment, edit, what the refusal says)
WITHIN: dict[str, tuple[str, int, Edit, str]] = {
    # key 2 made 1: both first versions (was restored: two rows of id 1)
    "dupkey": ("t", 0, values("id", first_row_as_second),
               "holds 2 first versions (_ow false) of one key (id = 1)"),
    # a NULL _ow (a replayed NULL _ow was taken for a first version)
    "ownull": ("t", 0, values("_ow", lambda v: [None, *v[1:]]), "holds NULL _ow values"),
    # an _updated of int64 max (year 294247: the backup "cannot be read (OverflowError)")
    "tsmax": ("t", 0, values("_updated", lambda v: [2**63 - 1, *v[1:]]),
              "holds a value of column '_updated' outside the years 1-9999"),
    # two rows of one _seq (two newest versions of one key)
    "dupseq": ("t", 0, values("_seq", first_row_as_second),
               "holds two rows of one row version (_seq "),
}


async def archived(client: Any, root: Path) -> str:
    """Namespace app archived to 'arch' in two segments holding rows: app.t
    (BIGINT key) 1, 2 then 3; app.s (TEXT key) 'x', 'y' then 'z'. The end of
    its window."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "CREATE TABLE app.s (k TEXT PRIMARY KEY, n INT)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b');"
                     "INSERT INTO app.s VALUES ('x', 1), ('y', 2)")
    await wait_shipped(client)
    await ok(client, "INSERT INTO app.t VALUES (3, 'c'); INSERT INTO app.s VALUES ('z', 3)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    for table in ("t", "s"):  # the edits below rely on it
        assert len(blocks_of(root, table)) == 2
    end: str = point["end_time"]
    return end


async def refused_alike(client: Any, end: str, fragments: list[str]) -> None:
    report, status, body = await verify_and_restore(client, end, "copy")
    assert report["is_valid"] is False, report
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    message = body["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message
    assert any(message in e for e in report["errors"]), (report, body)  # VERIFY says it too
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'copy'")


@pytest.mark.parametrize("case", sorted(WITHIN))
async def test_a_forged_block_is_refused_as_a_backed_up_file_of_it_is(
        client: Any, cairn_config: Config, case: str) -> None:
    root = Path(cairn_config.backup_roots[0])
    end = await archived(client, root)
    table, which, edit, says = WITHIN[case]
    file = rewrite_rows(root, table, which, edit)
    await refused_alike(client, end, [f"segment {file}", f"(rows {table}) are corrupt", says])


async def test_a_first_version_replayed_in_two_segments_is_refused(
        client: Any, cairn_config: Config) -> None:
    root = Path(cairn_config.backup_roots[0])
    end = await archived(client, root)
    earlier = blocks_of(root, "t")[0][0].name
    file = rewrite_rows(root, "t", 1, values("id", lambda v: [1] * len(v)))  # 3 made 1
    await refused_alike(client, end, [f"segments {earlier} and {file} are corrupt",
                                      "table 't' as replayed from them holds 2 first versions "
                                      "(_ow false) of one key (id = 1)"])


async def test_a_text_key_replayed_first_in_two_segments_is_refused(
        client: Any, cairn_config: Config) -> None:
    """A key that is not one integer column: told by its hash, then exactly."""
    root = Path(cairn_config.backup_roots[0])
    end = await archived(client, root)
    file = rewrite_rows(root, "s", 1, values("k", lambda v: ["x"] * len(v)))
    await refused_alike(client, end, [f"and {file} are corrupt", "table 's' as replayed",
                                      "of one key (k = 'x')"])


async def test_a_seq_replayed_in_two_segments_is_refused(
        client: Any, cairn_config: Config) -> None:
    root = Path(cairn_config.backup_roots[0])
    end = await archived(client, root)
    seq = blocks_of(root, "t")[0][1].rows.column("_seq")[0].as_py()
    file = rewrite_rows(root, "t", 1, values("_seq", lambda v: [seq] * len(v)))
    await refused_alike(client, end, [f"and {file} are corrupt",
                                      f"holds two rows of one row version (_seq {seq})"])


async def test_updates_deletes_and_reinserts_of_one_key_across_segments_restore_exactly(
        client: Any) -> None:
    """The checks refuse none of what Cairn writes: a key inserted, updated,
    deleted and inserted again (its later versions marked _ow), in segments
    of their own, restores as it was at each time, and a BACKUP of the
    restored namespace verifies and restores."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "CREATE TABLE app.s (k TEXT PRIMARY KEY, n INT);"
                     "INSERT INTO app.t VALUES (1, 'base'); INSERT INTO app.s VALUES ('b', 0)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    steps = ["INSERT INTO app.t VALUES (5, 'a'); INSERT INTO app.s VALUES ('p', 1)",
             "UPDATE app.t SET v = 'b' WHERE id IN (1, 5); UPDATE app.s SET n = 2",
             "DELETE FROM app.t WHERE id = 5; DELETE FROM app.s WHERE k = 'p'",
             "INSERT INTO app.t VALUES (5, 'c'); INSERT INTO app.s VALUES ('p', 3)",
             "UPDATE app.t SET v = 'd' WHERE id = 5; DELETE FROM app.t WHERE id = 1"]
    states = []
    for step in steps:
        await ok(client, step)
        await wait_shipped(client)
        states.append((await rows(client, "SELECT id, v FROM app.t ORDER BY id"),
                       await rows(client, "SELECT k, n FROM app.s ORDER BY k"),
                       (await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
                        )[0]["end_time"]))
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    for i in (2, 4):  # deleted; inserted again and updated
        t, s, at = states[i]
        await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r{i} WITH (as_of = '{at}')")
        assert await rows(client, f"SELECT id, v FROM r{i}.t ORDER BY id") == t
        assert await rows(client, f"SELECT k, n FROM r{i}.s ORDER BY k") == s
    assert states[4][0] == [{"id": 5, "v": "d"}]
    backup = (await rows(client, "BACKUP DATABASE r4 TO 'again'"))[0]["backup_id"]
    checked = (await rows(client, f"VERIFY BACKUP '{backup}' IN 'again'"))[0]
    assert checked["is_valid"] is True, checked
    await ok(client, "RESTORE DATABASE r4 FROM 'again' AS r5")
    assert await rows(client, "SELECT id, v FROM r5.t ORDER BY id") == states[4][0]
