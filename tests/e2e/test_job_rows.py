"""`system.jobs.rows` says what the statement's answer says: of a backup or
restore the live rows (what `SELECT count(*)` of its tables sees: the newest
version of each key, deleted ones left out), never the row versions stored
(every UPDATE and DELETE adds one). Until 2026-12-07 a backup's and a
restore's job counted row versions: a table of 4 rows after UPDATEs and
DELETEs read 9 in system.jobs and 4 in the answer."""

from __future__ import annotations

import asyncio
from typing import Any

from catalog.errors import Unavailable
from server import faults
from tests.helpers import job_row, ok, rows, sql

CHURN = (
    "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
    "CREATE TABLE app.u (id BIGINT PRIMARY KEY, v TEXT);"
    "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e');"
    "INSERT INTO app.u VALUES (1, 'x'), (2, 'y');"
    "FLUSH ALL TABLES IN app;"
    "UPDATE app.t SET v = 'B' WHERE id = 2; DELETE FROM app.t WHERE id = 3;"
    "DELETE FROM app.u WHERE id = 1;"
    "FLUSH TABLE app.t;"
    "UPDATE app.t SET v = 'BB' WHERE id = 2; DELETE FROM app.t WHERE id = 4;"
    "INSERT INTO app.t VALUES (6, 'f')"  # left buffered: the snapshot exports it
)
LIVE = {"t": 4, "u": 1}  # t: 1, 2, 5, 6; u: 2


async def count(client: Any, ns: str, table: str) -> int:
    return int((await rows(client, f"SELECT count(*) AS n FROM {ns}.{table}"))[0]["n"])


async def churned(client: Any) -> None:
    await ok(client, CHURN)
    assert {t: await count(client, "app", t) for t in LIVE} == LIVE


async def test_a_backup_and_its_restore_count_live_rows_in_the_job_too(client: Any) -> None:
    await churned(client)
    backup = (await rows(client, "BACKUP DATABASE app TO 'b'"))[0]
    assert backup["rows"] == 5 and backup["row_versions"] > 5, backup
    assert (await job_row(client, backup["job_id"]))["rows"] == 5

    restore = (await rows(client, "RESTORE DATABASE app FROM 'b' AS copy"))[0]
    assert {t: await count(client, "copy", t) for t in LIVE} == LIVE
    assert restore["rows"] == 5, restore
    assert (await job_row(client, restore["job_id"]))["rows"] == 5


async def test_table_backups_and_restores_count_live_rows_in_the_job_too(client: Any) -> None:
    await churned(client)
    backup = (await rows(client, "BACKUP TABLE app.t TO 'b'"))[0]
    assert backup["rows"] == 4, backup
    assert (await job_row(client, backup["job_id"]))["rows"] == 4

    restore = (await rows(client, "RESTORE TABLE app.t FROM 'b' AS app.t2"))[0]
    assert await count(client, "app", "t2") == 4
    assert restore["rows"] == 4, restore
    assert (await job_row(client, restore["job_id"]))["rows"] == 4


async def test_backup_sets_and_their_restores_count_live_rows_in_the_job_too(
        client: Any) -> None:
    await churned(client)
    await ok(client, "CREATE NAMESPACE other; CREATE TABLE other.o (id BIGINT PRIMARY KEY);"
                     "INSERT INTO other.o VALUES (1), (2); FLUSH TABLE other.o;"
                     "DELETE FROM other.o WHERE id = 1")
    members = await rows(client, "BACKUP ALL TO 'b'")
    assert sorted(m["rows"] for m in members) == [1, 5], members
    assert (await job_row(client, members[0]["job_id"]))["rows"] == 6

    await ok(client, "DROP NAMESPACE app CASCADE; DROP NAMESPACE other CASCADE")
    restored = await rows(client, "RESTORE ALL FROM 'b'")
    assert sorted(m["rows"] for m in restored) == [1, 5], restored
    assert {t: await count(client, "app", t) for t in LIVE} == LIVE
    assert await count(client, "other", "o") == 1
    assert (await job_row(client, restored[0]["job_id"]))["rows"] == 6


async def test_a_restore_to_a_time_and_its_base_count_live_rows_in_the_job_too(
        client: Any) -> None:
    await churned(client)
    base = (await rows(client, "START ARCHIVING DATABASE app TO 'arch' "
                               "WITH (interval = '100ms')"))[0]
    assert (await job_row(client, base["job_id"]))["rows"] == 5  # the base backup's live rows
    # Replayed changes that overwrite and delete rows: counted in the files.
    await ok(client, "UPDATE app.t SET v = 'z' WHERE id = 1; DELETE FROM app.t WHERE id = 5;"
                     "INSERT INTO app.u VALUES (9, 'n')")
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        found = await rows(client, "SELECT * FROM system.archives WHERE namespace = 'app'")
        if found and found[0]["lag_ms"] == 0 and found[0]["segments"] > 0:
            break
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)
    until = found[0]["archived_until"]
    restore = (await rows(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                  f"WITH (as_of = '{until}')"))[0]
    assert {t: await count(client, "r", t) for t in LIVE} == {"t": 3, "u": 2}
    assert restore["rows"] == 5 and restore["row_versions"] > 5, restore
    assert (await job_row(client, restore["job_id"]))["rows"] == 5

    # VERIFY ARCHIVE reads the segments and the base's objects: its job's
    # bytes count both, and end at their total (it stayed 0 under them).
    await ok(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'")
    job = (await rows(client, "SELECT * FROM system.jobs WHERE job_type = 'verify'"))[0]
    assert job["result"]["is_valid"] is True, job
    assert job["files_done"] == job["files_total"] > job["result"]["segments_checked"], job
    assert job["bytes_done"] == job["bytes_total"] > job["result"]["bytes_checked"], job
    assert job["rows"] == 0, job


async def test_a_flush_counts_the_row_versions_it_wrote_in_the_answer_and_the_job(
        client: Any) -> None:
    """A FLUSH moves buffered row versions, a DELETE's too: its answer and its
    job count those (not the table's live rows)."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t;"
                     "UPDATE app.t SET v = 'c' WHERE id = 1; DELETE FROM app.t WHERE id = 2")
    flushed = (await rows(client, "FLUSH TABLE app.t"))[0]
    assert flushed["rows"] == 2, flushed
    assert (await job_row(client, flushed["job_id"]))["rows"] == 2
    every = (await rows(client, "INSERT INTO app.t VALUES (3, 'd'); FLUSH ALL TABLES IN app"))[0]
    assert every["rows"] == 1, every
    assert (await job_row(client, every["job_id"]))["rows"] == 1


async def test_every_job_ends_with_its_done_counts_its_totals_and_its_answers(
        client: Any) -> None:
    """files_done/files_total and bytes_done/bytes_total end equal, at the
    answer's files and bytes (a FLUSH's totals stayed 0: "1 of 0 files")."""
    await churned(client)
    await ok(client, "INSERT INTO app.u VALUES (7, 'q')")
    answers = [(await rows(client, "FLUSH ALL TABLES IN app"))[0]]
    answers.append((await rows(client, "BACKUP DATABASE app TO 'b'"))[0])
    answers.append((await rows(client, "RESTORE DATABASE app FROM 'b' AS c"))[0])
    answers.append((await rows(client, "RESTORE TABLE app.t FROM 'b' AS app.t2"))[0])
    for answer in answers:
        job = await job_row(client, answer["job_id"])
        done = (job["rows"], job["files_done"], job["files_total"], job["bytes_done"],
                job["bytes_total"])
        assert done == (answer["rows"], answer["files"], answer["files"], answer["bytes"],
                        answer["bytes"]), (job, answer)
    assert answers[0]["files"] == 2, answers[0]  # app.t and app.u


async def test_a_restore_that_installs_nothing_counts_no_rows(client: Any) -> None:
    """Nothing restored, nothing counted (its job said 9, the backup's row versions)."""
    await churned(client)
    await ok(client, "BACKUP DATABASE app TO 'b'")

    def refuse(info: dict[str, Any]) -> None:
        raise Unavailable("the test refuses the install")

    faults.register("restore.before_install", refuse)
    status, body = await sql(client, "RESTORE DATABASE app FROM 'b' AS copy")
    assert body["error"]["code"] == "UNAVAILABLE", body
    job = (await rows(client, "SELECT * FROM system.jobs WHERE job_type = 'restore'"))[0]
    assert (job["status"], job["rows"]) == ("failed", 0), job
    assert await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'copy'") == []


async def test_verify_and_drop_count_no_rows(client: Any) -> None:
    """They copy no rows: 0, and their answers have no `rows`."""
    await churned(client)
    backup_id = (await rows(client, "BACKUP DATABASE app TO 'b'"))[0]["backup_id"]
    await ok(client, f"VERIFY BACKUP '{backup_id}' IN 'b'")
    await ok(client, f"DROP BACKUP '{backup_id}' IN 'b'")
    verify = (await rows(client, "SELECT * FROM system.jobs WHERE job_type = 'verify'"))[0]
    assert (verify["files_done"], verify["files_total"], verify["bytes_done"],
            verify["bytes_total"]) == (verify["result"]["files_checked"],) * 2 + (
            verify["result"]["bytes_checked"],) * 2, verify
    jobs = {j["job_type"]: j["rows"] for j in
            await rows(client, "SELECT job_type, rows FROM system.jobs "
                               "WHERE job_type IN ('verify', 'drop_backup')")}
    assert jobs == {"verify": 0, "drop_backup": 0}, jobs


async def test_a_backup_whose_keep_last_failed_counts_the_rows_it_backed_up(
        client: Any) -> None:
    """Its backup landed (listed, restorable) and its `result` says so: its
    `rows` are that result's live rows, as a completed job's."""
    await churned(client)
    await ok(client, "BACKUP DATABASE app TO 'b'")

    def refuse(info: dict[str, Any]) -> None:
        raise Unavailable("the test refuses the prune")

    faults.register("prune.before_delete", refuse)
    status, body = await sql(client, "BACKUP DATABASE app TO 'b' WITH (keep_last = 1)")
    assert body["error"]["code"] == "UNAVAILABLE", body
    job = (await rows(client, "SELECT * FROM system.jobs WHERE job_type = 'backup' "
                              "ORDER BY created_at DESC LIMIT 1"))[0]
    assert job["status"] == "failed" and job["result"]["rows"] == 5, job
    assert job["rows"] == 5, job
