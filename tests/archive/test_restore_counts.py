"""RESTORE ... WITH (as_of) counts every file it installs: the base's its tables
still hold and the Parquet files written from replayed rows. Its result and
system.jobs said the base's only (files 0, bytes 0 from a base without
files, while system.tables showed the restored table's file)."""

from __future__ import annotations

from typing import Any

from tests.helpers import ok, rows

from .test_archiving import FAST, wait_shipped


async def installed(client: Any, ns: str) -> tuple[int, int]:
    """Files and bytes of namespace `ns` as system.tables counts them."""
    found = await rows(client, f"SELECT files, bytes FROM system.tables WHERE namespace = '{ns}'")
    return sum(r["files"] for r in found), sum(r["bytes"] for r in found)


async def counted(client: Any, statement: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A RESTORE's result row and its system.jobs row."""
    done = (await ok(client, statement))[0]["rows"][0]
    job = (await rows(client, "SELECT files_total, files_done, bytes_total, bytes_done "
                              f"FROM system.jobs WHERE job_id = '{done['job_id']}'"))[0]
    return done, job


def assert_counts(done: dict[str, Any], job: dict[str, Any], files: int, nbytes: int) -> None:
    assert (done["files"], done["bytes"]) == (files, nbytes), done
    assert job == {"files_total": files, "files_done": files,
                   "bytes_total": nbytes, "bytes_done": nbytes}, job


async def test_a_base_without_files(client: Any) -> None:
    """The attacker's case: nothing flushed before the base, three rows archived."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY, v TEXT)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    end = (await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'"))[0]["end_time"]
    done, job = await counted(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                      f"WITH (as_of = '{end}')")
    files, nbytes = await installed(client, "r")
    assert files == 1 and nbytes > 0
    assert_counts(done, job, files, nbytes)


async def test_base_files_replayed_files_and_a_dropped_table(client: Any) -> None:
    """Base files of t kept, base files of d left out (d dropped in the
    window), files written from rows of t, of a new table n and of a USER
    table: the result and the job count exactly what system.tables shows."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY, v TEXT);"
                     "CREATE TABLE app.d (k INT PRIMARY KEY);"
                     "CREATE USER TABLE app.u (k INT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a'); INSERT INTO app.d VALUES (1);"
                     "FLUSH TABLE app.t; FLUSH TABLE app.d")
    await ok(client, "INSERT INTO app.u VALUES (1, 'x')", user="alice")
    await ok(client, "FLUSH TABLE app.u")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2, 'b'); DROP TABLE app.d;"
                     "CREATE TABLE app.n (k INT PRIMARY KEY); INSERT INTO app.n VALUES (5), (6)")
    await ok(client, "INSERT INTO app.u VALUES (2, 'y')", user="alice")
    await ok(client, "INSERT INTO app.u VALUES (3, 'z')", user="bob")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    end = (await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'"))[0]["end_time"]
    done, job = await counted(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                      f"WITH (as_of = '{end}')")
    files, nbytes = await installed(client, "r")
    # t: 1 base + 1 replayed; u: 1 base (alice) + 2 replayed (alice, bob); n: 1
    assert files == 6, await rows(client, "SELECT * FROM system.tables WHERE namespace = 'r'")
    assert_counts(done, job, files, nbytes)
    # a plain RESTORE of a backup of it counts the same
    await ok(client, "BACKUP DATABASE r TO 'plain'")
    done, job = await counted(client, "RESTORE DATABASE r FROM 'plain' AS r2")
    assert await installed(client, "r2") == (files, nbytes)
    assert_counts(done, job, files, nbytes)
