"""BACKUP TABLE and RESTORE TABLE end to end over HTTP: the named tables at one
instant, restored whole (under another name, or replacing one atomically),
and every refusal with the contract's code."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_kill import config_file, died, post_ok
from tests.helpers import ok, sql

SETUP = (
    "CREATE NAMESPACE app; "
    "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
    "CREATE TABLE app.u (id BIGINT PRIMARY KEY, w TEXT); "
    "CREATE TABLE app.other (id BIGINT PRIMARY KEY); "
    "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t; "
    "INSERT INTO app.t VALUES (3, 'c'); UPDATE app.t SET v = 'B' WHERE id = 2; "
    "INSERT INTO app.u VALUES (10, 'x'); INSERT INTO app.other VALUES (5)"
)


async def rows(client: Any, text: str, **kw: Any) -> list[dict[str, Any]]:
    return (await ok(client, text, **kw))[0]["rows"]


async def expect(client: Any, text: str, code: str) -> dict[str, Any]:
    _, body = await sql(client, text)
    assert body["status"] == "error" and body["error"]["code"] == code, body
    return body["error"]


async def test_backup_tables_holds_only_them_and_restores_as_another_name(client: Any) -> None:
    await ok(client, SETUP)
    (b,) = await rows(client, "BACKUP TABLE app.t, app.u TO 'nightly'")
    assert (b["namespace"], b["tables"], b["rows"], b["row_versions"]) == ("app", 2, 4, 5)
    listed = await rows(client, "SHOW BACKUPS IN 'nightly'")
    assert [(r["backup_id"], r["scope"]) for r in listed] == [(b["backup_id"], "tables: t, u")]
    assert (await rows(client, "SELECT scope FROM system.backups")) == [{"scope": "tables: t, u"}]
    per_table = await rows(client, f"SHOW BACKUP '{b['backup_id']}'")
    assert sorted(r["table_name"] for r in per_table) == ["t", "u"]
    verify = await rows(client, f"VERIFY BACKUP '{b['backup_id']}'")
    assert verify[0]["is_valid"] is True

    await ok(client, "INSERT INTO app.t VALUES (4, 'after')")
    (r,) = await rows(client, "RESTORE TABLE app.t FROM 'nightly' AS app.t_then")
    assert (r["namespace"], r["table_name"], r["rows"], r["row_versions"]) == (
        "app", "t_then", 3, 4)
    assert await rows(client, "SELECT id, v FROM app.t_then ORDER BY id") == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
    assert await rows(client, "SELECT count(*) AS n FROM app.t") == [{"n": 4}]
    jobs = await rows(client, "SELECT job_type, status, namespace, statement FROM system.jobs "
                              "ORDER BY created_at")
    assert [(j["job_type"], j["status"]) for j in jobs][1:] == [
        ("backup", "completed"), ("verify", "completed"), ("restore", "completed")]
    assert jobs[-1]["statement"] == "RESTORE TABLE app.t FROM 'nightly' AS app.t_then"


async def test_restore_table_replace_is_one_step_and_needs_replace(client: Any) -> None:
    await ok(client, SETUP)
    await ok(client, "BACKUP TABLE app.t TO 'nightly'")
    await ok(client, "DELETE FROM app.t WHERE id = 1; INSERT INTO app.t VALUES (9, 'new')")
    err = await expect(client, "RESTORE TABLE app.t FROM 'nightly'", "ALREADY_EXISTS")
    assert "replace" in err["message"]
    await expect(client, "RESTORE TABLE app.t FROM 'nightly' AS app.u", "ALREADY_EXISTS")
    assert await rows(client, "SELECT id FROM app.t ORDER BY id") == [
        {"id": 2}, {"id": 3}, {"id": 9}]
    await ok(client, "RESTORE TABLE app.t FROM 'nightly' WITH (replace = true)")
    assert await rows(client, "SELECT id FROM app.t ORDER BY id") == [
        {"id": 1}, {"id": 2}, {"id": 3}]
    assert await rows(client, "SELECT count(*) AS n FROM app.u") == [{"n": 1}]
    # The restored table takes writes like any other.
    await ok(client, "INSERT INTO app.t VALUES (4, 'd')")
    assert await rows(client, "SELECT count(*) AS n FROM app.t") == [{"n": 4}]


async def test_restore_table_from_a_namespace_backup_and_into_another_namespace(
    client: Any
) -> None:
    await ok(client, SETUP)
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    await ok(client, "CREATE NAMESPACE copy")
    await ok(client, "RESTORE TABLE app.u FROM 'nightly' AS copy.u2")
    assert await rows(client, "SELECT id, w FROM copy.u2") == [{"id": 10, "w": "x"}]
    # A table backup newer than the namespace's one serves only its own tables.
    await ok(client, "BACKUP TABLE app.other TO 'nightly'")
    await ok(client, "RESTORE TABLE app.t FROM 'nightly' AS copy.t")
    assert await rows(client, "SELECT count(*) AS n FROM copy.t") == [{"n": 3}]


async def test_restore_database_never_takes_a_table_backup(client: Any) -> None:
    await ok(client, SETUP)
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    (tb,) = await rows(client, "BACKUP TABLE app.t TO 'nightly'")
    # The newest backup of app is a table backup: RESTORE DATABASE takes the whole one.
    (r,) = await rows(client, "RESTORE DATABASE app FROM 'nightly' AS whole")
    assert r["tables"] == 3
    err = await expect(client, f"RESTORE DATABASE app FROM 'nightly' AS part "
                               f"WITH (backup_id = '{tb['backup_id']}')", "INVALID_ARGUMENT")
    assert "RESTORE TABLE" in err["message"]
    await expect(client, "SHOW TABLES IN part", "NOT_FOUND")


async def test_errors(client: Any) -> None:
    await ok(client, SETUP)
    await expect(client, "BACKUP TABLE app.nope TO 'nightly'", "NOT_FOUND")
    await expect(client, "BACKUP TABLE nons.t TO 'nightly'", "NOT_FOUND")
    await expect(client, "BACKUP TABLE app.t, app.t TO 'nightly'", "INVALID_ARGUMENT")
    await ok(client, "CREATE NAMESPACE b; CREATE TABLE b.x (id BIGINT PRIMARY KEY)")
    await expect(client, "BACKUP TABLE app.t, b.x TO 'nightly'", "INVALID_ARGUMENT")
    await expect(client, "BACKUP TABLE app.t TO 'nightly' WITH (keep_last = 2)",
                 "INVALID_ARGUMENT")
    await expect(client, "BACKUP TABLE app.t TO '/etc'", "PERMISSION_DENIED")
    await ok(client, "BACKUP TABLE app.t TO 'nightly'")
    err = await expect(client, "RESTORE TABLE app.u FROM 'nightly' AS app.u9", "NOT_FOUND")
    assert "u" in err["message"]
    await expect(client, "RESTORE TABLE app.t FROM 'nightly' AS nowhere.t", "NOT_FOUND")
    await expect(client, "RESTORE TABLE app.t FROM 'empty_target' AS app.t9", "NOT_FOUND")
    await expect(client, "RESTORE TABLE app.t FROM 'nightly' AS app.t9 WITH (bogus = 1)",
                 "INVALID_ARGUMENT")
    await expect(client, "SELECT * FROM app.t9", "NOT_FOUND")
    # A user's detached backup is a job like any other.
    (j,) = await rows(client, "BACKUP TABLE app.t TO 'nightly' WITH (detached = true)")
    assert set(j) == {"job_id", "status"}


async def test_restore_table_of_a_dropped_table_takes_the_newest_backup_holding_it(
        client: Any) -> None:
    """Its main use: a table dropped, then the nightly backup ran. The newest
    backup of the namespace was taken whatever it held, and the restore was
    NOT_FOUND ("has no table"); now it is the newest one that holds the table."""
    await ok(client, SETUP)
    (first,) = await rows(client, "BACKUP DATABASE app TO 'n'")
    await ok(client, "DROP TABLE app.t")
    await rows(client, "BACKUP DATABASE app TO 'n'")
    (done,) = await rows(client, "RESTORE TABLE app.t FROM 'n'")
    assert done["backup_id"] == first["backup_id"]
    got = await rows(client, "SELECT count(*) AS n FROM app.t")
    assert got == [{"n": done["rows"]}] and done["rows"] > 0
    await ok(client, "DROP TABLE app.t")
    (again,) = await rows(client, "RESTORE TABLE app.t FROM 'n' WITH "
                                  "(as_of = '9999-01-01T00:00:00Z')")
    assert again["backup_id"] == first["backup_id"]


@pytest.mark.parametrize(("statement", "restored"), [
    ("RESTORE TABLE app.t FROM 'tg' AS other.t2", "table 'other.t2'"),
    ("RESTORE DATABASE app FROM 'tg' AS copy", "namespace 'copy'"),
])
def test_a_restore_killed_after_its_install_says_what_it_restored(
        tmp_path: Path, server_process: Any, statement: str, restored: str) -> None:
    """kill -9 between the install and the job's end, then a restart: the
    job said a RESTORE TABLE had restored the whole namespace it went into."""
    config = config_file(tmp_path)
    srv = server_process(config=config)
    post_ok(srv, SETUP)
    backup_id = post_ok(srv, "BACKUP DATABASE app TO 'tg'")["rows"][0]["backup_id"]
    post_ok(srv, "CREATE NAMESPACE other; CREATE TABLE other.mine (id BIGINT PRIMARY KEY)")
    srv.stop()
    srv = server_process(config=config, env={"CAIRN_FAULTS": "restore.after_install:kill"})
    with contextlib.suppress(OSError):
        srv.post(statement)  # the server dies before it answers
    died(srv)

    again = server_process(config=config)
    (job,) = post_ok(again, "SELECT status, error_message FROM system.jobs "
                            "WHERE job_type = 'restore'")["rows"]
    assert job == {"status": "failed", "error_message": (
        f"interrupted by server restart after {restored} was restored from backup "
        f"'{backup_id}'; the restore is complete")}
    tables = post_ok(again, "SELECT namespace, table_name FROM system.tables "
                            "WHERE namespace = 'other' ORDER BY 2")["rows"]
    assert [t["table_name"] for t in tables] == (["mine", "t2"] if "TABLE" in statement
                                                 else ["mine"])
