"""A RESTORE never takes a namespace's schema history past its bound.

RESTORE TABLE ... AS installed a table with every schema version it had
without the check CREATE and ALTER make: three restores of a table of ~27 MB
of history made a namespace of 80 MB that no BACKUP DATABASE, BACKUP ALL or
START ARCHIVING took. Such a restore is now INVALID_ARGUMENT before a file is
fetched, leaving nothing; a table replacing one of its name is counted once.
A backup taken before the bound still restores as it was; only growth is
refused (a replay of archived DDL too)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.config import Config
from storage import schema
from tests.archive.test_archiving import wait_shipped
from tests.helpers import err, ok, rows

KIB64 = 65536  # a DEFAULT's bound, docs/sql.md
HISTORY = 32 << 20  # a namespace's schema history's


def stored(data: Path) -> set[str]:
    """The data directory's table files and folders."""
    return {str(p.relative_to(data)) for p in (data / "files").rglob("*")}


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


async def test_restore_table_as_past_the_bound_is_refused_before_a_file(
        client: Any, tmp_path: Path) -> None:
    # 52 columns of 64 KiB defaults and 4 ALTERs: ~17.7 MB of history, two of it do not fit.
    cols = ", ".join(f"c{i} TEXT DEFAULT '{chr(97 + i % 26) * KIB64}'" for i in range(52))
    await ok(client, f"CREATE NAMESPACE src; CREATE TABLE src.wide (k INT PRIMARY KEY, {cols})")
    for i in range(4):
        await ok(client, f"ALTER TABLE src.wide ADD COLUMN a{i} TEXT DEFAULT '{'x' * KIB64}'")
    await ok(client, "INSERT INTO src.wide (k) VALUES (1); FLUSH TABLE src.wide")
    await ok(client, "BACKUP DATABASE src TO 'bk'")
    await ok(client, "CREATE NAMESPACE dst")
    await ok(client, "RESTORE TABLE src.wide FROM 'bk' AS dst.w0")
    data = tmp_path / "data"
    before = stored(data)
    message = await err(client, "RESTORE TABLE src.wide FROM 'bk' AS dst.w1", "INVALID_ARGUMENT")
    assert "RESTORE TABLE dst.w1 would make namespace 'dst' keep" in message, message
    assert f"over the {HISTORY}" in message and "dst.w0 takes" in message, message
    assert "5 version(s)" in message, message
    # Nothing was made or fetched: no table, no file, no folder.
    assert [t["table_name"] for t in await rows(client, "SHOW TABLES IN dst")] == ["w0"]
    assert stored(data) == before
    failed = await rows(client, "SELECT files_done, bytes_done, error_message FROM system.jobs "
                                "WHERE status = 'failed' AND job_type = 'restore'")
    assert [(j["files_done"], j["bytes_done"]) for j in failed] == [(0, 0)], failed
    # A table replacing one of its name: the old one's history is not counted again.
    await ok(client, "RESTORE TABLE src.wide FROM 'bk' AS dst.w0 WITH (replace = true)")
    assert (await rows(client, "SELECT c1 FROM dst.w0"))[0]["c1"] == "b" * KIB64
    # The namespace goes on as any within its bound: it backs up.
    await ok(client, "CREATE TABLE dst.small (k INT PRIMARY KEY)")
    await ok(client, "BACKUP DATABASE dst TO 'bk2'")


async def test_a_history_from_before_the_bound_restores_but_no_restore_grows_it(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path, monkeypatch: Any) -> None:
    """A catalog from before the bound (here: no bound on DDL, then one of
    100,000 bytes) holds more history than the bound: its backup restores as
    it was, and a table of it replaces one no shorter; a RESTORE TABLE into
    a namespace, or a replay of its archived ALTERs, that grows it is refused."""
    from server.app import create_app

    cairn_config.jobs.job_process = "off"  # the bound below holds in the server's process
    client = await aiohttp_client(create_app(cairn_config))
    monkeypatch.setattr(schema, "MAX_SCHEMA_HISTORY", 1 << 40)
    await ok(client, f"CREATE NAMESPACE old; CREATE TABLE old.t (k INT PRIMARY KEY, v TEXT "
                     f"DEFAULT '{'x' * 60000}', w INT)")
    await ok(client, "INSERT INTO old.t (k) VALUES (1); FLUSH TABLE old.t")
    for i in range(2):  # three versions of ~60 KB
        await ok(client, "ALTER TABLE old.t DROP COLUMN w" if i % 2 == 0 else
                         "ALTER TABLE old.t ADD COLUMN w INT")
    await ok(client, "BACKUP DATABASE old TO 'bk'")
    await ok(client, "START ARCHIVING DATABASE old TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO old.t (k) VALUES (2)")
    await wait_shipped(client, "old")
    base_only = iso_now()
    await ok(client, "ALTER TABLE old.t ADD COLUMN z INT")
    await wait_shipped(client, "old")
    altered = iso_now()
    # STOP cuts at the millisecond begun: one begun after `altered`, so the
    # window reaches it (a cut in altered's own ms ends before it, rightly).
    await asyncio.sleep(0.002)
    await ok(client, "STOP ARCHIVING DATABASE old")
    monkeypatch.setattr(schema, "MAX_SCHEMA_HISTORY", 100_000)

    await ok(client, "RESTORE DATABASE old FROM 'bk' AS r1")
    assert len(await rows(client, "DESCRIBE TABLE r1.t HISTORY")) == 3
    await ok(client, "CREATE NAMESPACE e; RESTORE TABLE old.t FROM 'bk' AS e.t")
    message = await err(client, "RESTORE TABLE old.t FROM 'bk' AS e.t2", "INVALID_ARGUMENT")
    assert "RESTORE TABLE e.t2 would make namespace 'e' keep" in message, message
    assert "over the 100000" in message and "3 version(s)" in message, message
    await ok(client, "RESTORE TABLE old.t FROM 'bk' AS r1.t WITH (replace = true)")
    await ok(client, "RESTORE TABLE old.t FROM 'bk' AS e.t WITH (replace = true)")
    assert [t["table_name"] for t in await rows(client, "SHOW TABLES IN e")] == ["t"]

    data = tmp_path / "data"
    before = stored(data)
    message = await err(client, f"RESTORE DATABASE old FROM 'arch' AS r2 WITH (as_of = "
                                f"'{altered}')", "INVALID_ARGUMENT")
    assert "RESTORE DATABASE r2 would make namespace 'r2' keep" in message, message
    assert "old.t" not in message and "r2.t takes" in message and "4 version(s)" in message
    assert "r2" not in [n["namespace"] for n in await rows(client, "SHOW NAMESPACES")]
    assert stored(data) == before
    # Replayed over the base as it was (rows, no DDL), it restores.
    await ok(client, f"RESTORE DATABASE old FROM 'arch' AS r2 WITH (as_of = '{base_only}')")
    assert [r["k"] for r in await rows(client, "SELECT k FROM r2.t ORDER BY k")] == [1, 2]
