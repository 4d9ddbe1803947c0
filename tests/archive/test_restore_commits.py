"""One commit, one time: every change of a commit that changes several tables
(DROP NAMESPACE … CASCADE) is archived with the commit's one time, so a
RESTORE … as_of any instant holds all of the commit or none of it.

Before, each table's drop read the clock: three drops at …825460, …825488 and
…825496 µs, and a restore to a time between them gave a namespace with one or
two of the tables gone, a state no reader ever saw (the catalog drops them in
one batch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from server.config import Config
from storage.archive import segment
from storage.archive.blocks import Rows
from storage.archive.changes import DROP, MAX_LSN, ROWS, Change, ChangeLog
from storage.archive.store import iso_exact
from tests.helpers import ok, rows

from .test_archiving import FAST, segment_files, wait_shipped
from .test_crafted_changes import rewrite


def archived_times(root: Path) -> dict[int, tuple[int, str, str]]:
    """{lsn: (at_us, kind, table)} of every change archived for namespace app."""
    out: dict[int, tuple[int, str, str]] = {}
    for path in segment_files(root):
        name = segment.parse_name(path.name)
        assert name is not None
        _, entries = segment.decode(path.read_bytes(), "app", path.parent.name, name)
        for e in entries:
            if isinstance(e, Rows):
                for lsn, at in zip(e.lsns, e.at_us, strict=True):
                    out[lsn] = (at, ROWS, e.table)
            else:
                out[e.lsn] = (e.at_us, e.kind, e.table)
    return out


async def tables_as_of(client: Any, at_us: int, dest: str) -> list[str]:
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS {dest} "
                     f"WITH (as_of = '{iso_exact(at_us)}')")
    return sorted(t["table_name"] for t in await rows(client, f"SHOW TABLES IN {dest}"))


async def drop_cascade_archived(client: Any, cfg: Config) -> Path:
    """Tables a, b, c of app archived, then DROP NAMESPACE app CASCADE shipped
    and archiving stopped; the target's folder."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.a (id INT PRIMARY KEY);"
                     "CREATE TABLE app.b (id INT PRIMARY KEY);"
                     "CREATE TABLE app.c (id INT PRIMARY KEY);"
                     "INSERT INTO app.a VALUES (1); INSERT INTO app.b VALUES (2)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.c VALUES (3)")
    await ok(client, "DROP NAMESPACE app CASCADE")  # one statement, one catalog batch
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    return Path(cfg.backup_roots[0]) / "arch"


@pytest.mark.parametrize("fmt", [2, 1])
async def test_drop_namespace_cascade_is_one_commit(client: Any, cairn_config: Config, fmt: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment, "FORMAT_VERSION", fmt)  # what the archiver writes
    target = await drop_cascade_archived(client, cairn_config)
    drops = [at for at, kind, _ in archived_times(target.parent).values() if kind == DROP]
    assert len(drops) == 3 and len(set(drops)) == 1, drops  # one commit: one time
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True and report["changes"] == 4, report
    at = drops[0]
    assert await tables_as_of(client, at - 1, "before") == ["a", "b", "c"]
    assert await rows(client, "SELECT id FROM before.c") == [{"id": 3}]
    assert await tables_as_of(client, at, "after") == []


async def test_old_archives_with_a_time_per_drop_still_restore(client: Any,
                                                                cairn_config: Config) -> None:
    """An archive written before (each drop of the cascade its own time, 1 µs
    or more apart) still verifies and restores, as it did: a restore between
    two of its drops shows what that archive says."""
    target = await drop_cascade_archived(client, cairn_config)

    def a_time_per_drop(cs: list[Change]) -> list[Change]:
        drops = [c for c in cs if c.kind == DROP]
        if not drops:
            return cs
        shift = {c.lsn: len(drops) - 1 - i for i, c in enumerate(drops)}  # ..., at-1, at
        return [Change(c.lsn, c.at_us - shift.get(c.lsn, 0), c.kind, c.table, c.data) for c in cs]

    rewrite(target, a_time_per_drop)
    times = sorted((at, table) for at, kind, table in archived_times(target.parent).values()
                   if kind == DROP)
    assert len({at for at, _ in times}) == 3
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    gone = {table for _, table in times[:1]}
    assert await tables_as_of(client, times[0][0], "first") == sorted({"a", "b", "c"} - gone)
    assert await tables_as_of(client, times[-1][0], "last") == []


def test_a_read_cut_by_size_never_splits_a_commit(tmp_path: Path) -> None:
    """A backlog ships in pieces of about 16 MiB; the piece ends with the last
    change of a commit, never between two changes of one commit (the next
    piece would start at the commit's time and hold changes of it)."""
    catalog = Catalog(tmp_path / "catalog")
    try:
        log = ChangeLog(catalog)
        log.activate("app")
        batch = catalog.batch()
        with log.committing("app") as rec:
            assert rec is not None
            rec.add(batch, ROWS, "a", b"x" * 100)
            batch.commit()
        batch = catalog.batch()
        with log.committing("app") as rec:
            assert rec is not None
            for table in ("a", "b", "c"):
                rec.add(batch, DROP, table, b"{}")
            batch.commit()
        cs = log.read("app", 0, MAX_LSN)
        assert [c.at_us for c in cs[1:]] == [cs[1].at_us] * 3 and cs[0].at_us < cs[1].at_us
        for fresh in (False, True):  # from the in-memory tail, and from RocksDB
            if fresh:
                log = ChangeLog(catalog)
                log.activate("app")
            first = log.read_raw("app", 0, MAX_LSN, 1)
            assert first is not None and first.last_lsn == cs[0].lsn  # the row change alone
            second = log.read_raw("app", cs[0].lsn, MAX_LSN, 1)
            assert second is not None and len(second.entries) == 3
            assert (second.last_lsn, second.last_us) == (cs[-1].lsn, cs[-1].at_us)
    finally:
        catalog.close()
