"""RESTORE … WITH (as_of) from archived changes: exact to the commit, for every
kind of change, and every error with its code."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from server import archiving
from server.config import Config
from storage.archive import segment
from storage.archive.store import parse_us
from tests.helpers import err, ok, rows

from .test_archiving import segment_files, wait_shipped


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


async def state(client: Any, ns: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in await rows(client, f"SHOW TABLES IN {ns}"):
        name = t["table_name"]
        got = await rows(client, f"SELECT * FROM {ns}.{name} WHERE _deleted IS NOT NULL ORDER BY 1")
        out[name] = [{k: v for k, v in r.items() if k != "_updated"} for r in got]
        out[name + ".versions"] = len(await rows(client, f"DESCRIBE TABLE {ns}.{name} HISTORY"))
    return out


@pytest.mark.parametrize("fmt", [2, 1])
async def test_restore_to_every_moment(client: Any, fmt: int, cairn_config: Config,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """After each statement the time is noted with the state; restoring to each
    noted time gives exactly that state (rows, deletes, updates, DDL, flushes),
    from segments of the format written now (2) and of the one before (1)."""
    monkeypatch.setattr(segment, "FORMAT_VERSION", fmt)  # what the archiver writes
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'base')")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    steps = [
        "INSERT INTO app.t VALUES (2, 'two'), (3, 'three')",
        "UPDATE app.t SET v = 'ONE' WHERE id = 1",
        "FLUSH TABLE app.t",
        "DELETE FROM app.t WHERE id = 2",
        "ALTER TABLE app.t ADD COLUMN w INT DEFAULT 7",
        "INSERT INTO app.t VALUES (4, 'four', 40)",
        "CREATE TABLE app.u (x INT PRIMARY KEY)",
        "INSERT INTO app.u VALUES (1), (2)",
        "ALTER TABLE app.t DROP COLUMN v",
        "DROP TABLE app.u",
        "CREATE TABLE app.u (y TEXT)",
        "INSERT INTO app.u VALUES ('new u')",
        "INSERT INTO app.t VALUES (2, 99)",
    ]
    moments = [(iso_now(), await state(client, "app"))]
    for step in steps:
        await ok(client, step)
        moments.append((iso_now(), await state(client, "app")))
    await wait_shipped(client)
    # Shipped, the window ends at the last cycle's mark, which may come between the
    # last step's commit and its noted moment (an idle archive marks the target
    # again only at its 10 s heartbeat): STOP ARCHIVING ends it at its own moment.
    await ok(client, "STOP ARCHIVING DATABASE app")
    written = {json.loads(p.read_bytes().split(b"\n", 1)[0])["format_version"]
               for p in segment_files(Path(cairn_config.backup_roots[0]))}
    assert written == {fmt}
    for i, (when, want) in enumerate(moments):
        await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r{i} WITH (as_of = '{when}')")
        assert await state(client, f"r{i}") == want, (i, steps[i - 1] if i else "base")
    # the restored namespace is an ordinary one: writable, flushable
    await ok(client, f"INSERT INTO r{len(steps)}.t VALUES (50, 5); FLUSH TABLE r{len(steps)}.t")


async def test_errors_and_bounds(client: Any, cairn_config: Config) -> None:
    before_any = iso_now()
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    until = (await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'"))[0]["end_time"]
    message = await err(client, "RESTORE DATABASE app FROM 'arch' AS late WITH "
                                "(as_of = '2999-01-01T00:00:00Z')", "INVALID_ARGUMENT")
    assert until in message
    await err(client, f"RESTORE DATABASE app FROM 'arch' AS early WITH (as_of = '{before_any}')",
              "NOT_FOUND")
    await err(client, "RESTORE DATABASE app FROM 'arch' AS bad WITH (as_of = 'yesterday')",
              "INVALID_ARGUMENT")
    # no zone means UTC: the window's end written without its Z restores the same
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS naive WITH (as_of = '{until[:-1]}')")
    assert await rows(client, "SELECT id FROM naive.t") == [{"id": 1}]
    # a damaged segment refuses the restore and installs nothing
    seg = max(segment_files(Path(cairn_config.backup_roots[0])), key=lambda p: p.stat().st_size)
    data = bytearray(seg.read_bytes())
    data[len(data) - 3] ^= 0x10
    seg.write_bytes(bytes(data))
    await err(client, f"RESTORE DATABASE app FROM 'arch' AS broken WITH (as_of = '{until}')",
              "BACKUP_INVALID")
    assert not [n for n in await rows(client, "SHOW NAMESPACES") if n["namespace"] == "broken"]


async def test_exactness_under_concurrent_writers(client: Any) -> None:
    """Writers note when each insert was sent and answered; restoring to random
    times holds every write answered before and none sent after."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, w INT)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '200ms')")
    log: list[tuple[int, float, float]] = []

    async def writer(w: int) -> None:
        for i in range(25):
            key = w * 1000 + i
            sent = time.time()
            await ok(client, f"INSERT INTO app.t VALUES ({key}, {w})")
            log.append((key, sent, time.time()))
            if i % 10 == 9:
                await ok(client, "FLUSH TABLE app.t")

    await asyncio.gather(*(writer(w) for w in range(4)))
    await wait_shipped(client)
    lo = min(s for _, s, _ in log)
    hi = max(a for _, _, a in log)
    rng = random.Random(13)
    for n in range(6):
        at = rng.uniform(lo, hi)
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        await ok(client, f"RESTORE DATABASE app FROM 'arch' AS x{n} WITH (as_of = '{when}')")
        got = {r["id"] for r in await rows(client, f"SELECT id FROM x{n}.t")}
        at_us = int(at * 1_000_000) / 1_000_000
        assert {k for k, _, a in log if a < at_us} <= got
        assert not {k for k, s, _ in log if s > at_us} & got


async def test_keep_last_prunes_archived_changes(client: Any, cairn_config: Config) -> None:
    """Dropping old base backups (keep_last, DROP BACKUP) drops the archived
    changes only they needed; what the kept base needs stays restorable."""
    root = Path(cairn_config.backup_roots[0])
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    for i in range(3):
        await ok(client, f"INSERT INTO app.t VALUES ({i})")
        await wait_shipped(client)
    early = iso_now()
    before = len(segment_files(root))
    await ok(client, "BACKUP DATABASE app TO 'arch' WITH (keep_last = 1)")
    kept_from = iso_now()
    await ok(client, "INSERT INTO app.t VALUES (10)")
    await wait_shipped(client)
    snap = (await rows(client, "SHOW BACKUPS FOR DATABASE app IN 'arch'"))[0]["snapshot_at"]
    snap_us = parse_us(snap)
    names = [segment.parse_name(p.name) for p in segment_files(root)]
    # of the segments before the kept base only the newest is left (archiving resumes there)
    assert before >= 3 and len([n for n in names if n and n.through_us <= snap_us]) == 1
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert len(points) == 1 and points[0]["start_time"] <= kept_from
    await err(client, f"RESTORE DATABASE app FROM 'arch' AS old WITH (as_of = '{early}')",
              "NOT_FOUND")
    await ok(client, "STOP ARCHIVING DATABASE app")
    until = (await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'"))[0]["end_time"]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS now WITH (as_of = '{until}')")
    assert {r["id"] for r in await rows(client, "SELECT id FROM now.t")} == {0, 1, 2, 10}
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"], report["errors"]


async def test_user_and_stream_tables(client: Any) -> None:
    """USER rows come back per user (each user sees only their own); STREAM
    tables come back defined and empty, as backups hold them."""
    await ok(client, "CREATE NAMESPACE app;"
                     "CREATE USER TABLE app.notes (id INT PRIMARY KEY, b TEXT);"
                     "CREATE STREAM TABLE app.ev (k TEXT) WITH (ttl_seconds = 60)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.notes VALUES (1, 'alice one')", user="alice")
    await ok(client, "INSERT INTO app.notes VALUES (1, 'bob one'), (2, 'bob two')", user="bob")
    await ok(client, "INSERT INTO app.ev VALUES ('click')")
    await ok(client, "DELETE FROM app.notes WHERE id = 2", user="bob")
    when = iso_now()
    await ok(client, "UPDATE app.notes SET b = 'later' WHERE id = 1", user="alice")
    await wait_shipped(client)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{when}')")
    assert await rows(client, "SELECT id, b FROM r.notes ORDER BY id", user="alice") == [
        {"id": 1, "b": "alice one"}]
    assert await rows(client, "SELECT id, b FROM r.notes ORDER BY id", user="bob") == [
        {"id": 1, "b": "bob one"}]
    assert await rows(client, "SELECT id FROM r.notes WHERE _deleted", user="bob") == [{"id": 2}]
    assert await rows(client, "SELECT * FROM r.ev") == []


async def test_encrypted_restore_to_time(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'sealed' WITH (interval = '100ms', "
                     "encryption_passphrase = 'pw', compression = 'none')")
    await ok(client, "INSERT INTO app.t VALUES (1), (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    until = (await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'sealed'"))[0]["end_time"]
    await err(client, f"RESTORE DATABASE app FROM 'sealed' AS r WITH (as_of = '{until}')",
              "BACKUP_INVALID")
    await err(client, f"RESTORE DATABASE app FROM 'sealed' AS r WITH (as_of = '{until}', "
                      "encryption_passphrase = 'nope')", "BACKUP_INVALID")
    await ok(client, f"RESTORE DATABASE app FROM 'sealed' AS r WITH (as_of = '{until}', "
                     "encryption_passphrase = 'pw')")
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}, {"id": 2}]


async def test_a_time_before_the_first_segment_is_no_plain_restore(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before an archive's first segment (an idle namespace, a long interval)
    its folder does not exist, and a RESTORE to a time took the bare base as a
    plain backup: a row acknowledged after START ARCHIVING was missing, a
    namespace dropped came back. Its base makes the target an archive's: a
    time past what was shipped is refused, as VERIFY ARCHIVE says."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a')")
    # The archiver's loop ships a first segment at its first cycle, right
    # after START's base, and the test's RESTOREs must come before it. They
    # did while the loop's start (its helper process) was slower than they
    # were; once, on CI's machine, it was not. The loop waits for the test.
    gate = asyncio.Event()
    run = archiving.Archiver.run

    async def held(self: archiving.Archiver) -> None:
        await gate.wait()
        await run(self)

    monkeypatch.setattr(archiving.Archiver, "run", held)
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '60m')")
    await ok(client, "INSERT INTO app.t VALUES (2, 'acknowledged')")
    assert (await rows(client, "SHOW ARCHIVES"))[0]["segments"] == 0
    later = iso_now()
    message = await err(client, f"RESTORE DATABASE app FROM 'arch' AS x WITH (as_of = '{later}')",
                        "INVALID_ARGUMENT")
    assert "restorable" in message, message
    assert "x" not in [r["namespace"] for r in await rows(client, "SHOW NAMESPACES")]
    await ok(client, "DROP NAMESPACE app CASCADE")
    await err(client, f"RESTORE DATABASE app FROM 'arch' AS y WITH (as_of = '{iso_now()}')",
              "INVALID_ARGUMENT")
    gate.set()  # the loop goes on, and ends: its namespace is gone
