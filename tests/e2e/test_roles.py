"""Roles: every statement class, run with a role-user token and with an admin
token, against a table of expected outcomes.

Adding a statement class to `sqlgrammar.ast`? Add a line to CASES (the test
`test_every_statement_class_has_a_case` fails until you do). Each case is the
SQL, then the outcome for a role-user, then the outcome for an admin: an HTTP
status (200 = success, 403 = PERMISSION_DENIED) or (status, error code). The
user's statement runs first, on a fresh server, then the admin's. `{backup_id}`
in the SQL is the id of a backup the fixture made of namespace `app`, `{job_id}`
the id of that backup's job (an admin's).

Whatever a role-user is answered must never show a server path (the test's
data and backup directories)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from catalog import Schedule
from catalog.diskerrors import from_rocksdb
from server.app import create_app
from server.config import Config
from server.executor import ROUTES
from server.schedules import _wait_for_room
from sqlgrammar import ast
from sqlgrammar.parser import parse_one
from tests.helpers import ok, rows, sql, state
from tests.server.test_metrics import scrape, value

Outcome = int | tuple[int, str]


@dataclass(frozen=True)
class Case:
    sql: str
    user: Outcome
    admin: Outcome = 200


CASES: dict[type[ast.Statement], list[Case]] = {
    # namespaces
    ast.CreateNamespace: [Case("CREATE NAMESPACE other", 403)],
    ast.DropNamespace: [Case("DROP NAMESPACE app CASCADE", 403)],
    ast.ShowNamespaces: [Case("SHOW NAMESPACES", 200)],
    # tables: DDL is admin-only; reading the catalog and FLUSH are for everyone
    ast.CreateTable: [Case("CREATE TABLE app.t2 (id BIGINT)", 403),
                      Case("CREATE USER TABLE app.u2 (id BIGINT)", 403)],
    ast.DropTable: [Case("DROP TABLE app.u", 403), Case("DROP TABLE IF EXISTS app.nope", 403)],
    ast.AlterTableAddColumn: [Case("ALTER TABLE app.t ADD COLUMN w TEXT", 403)],
    ast.AlterTableDropColumn: [Case("ALTER TABLE app.t DROP COLUMN v", 403)],
    ast.ShowTables: [Case("SHOW TABLES IN app", 200)],
    ast.DescribeTable: [Case("DESCRIBE TABLE app.t", 200),
                        Case("DESCRIBE TABLE app.t HISTORY", 200)],
    ast.FlushTable: [Case("FLUSH TABLE app.t", 200)],
    ast.FlushAllTables: [Case("FLUSH ALL TABLES IN app", 200)],
    # backups: everything that reads or writes a target is admin-only
    ast.BackupDatabase: [Case("BACKUP DATABASE app TO 'nightly'", 403)],
    ast.RestoreDatabase: [Case("RESTORE DATABASE app FROM 'nightly' AS app2", 403)],
    ast.BackupDatabases: [Case("BACKUP ALL TO 'nightly'", 403),
                           Case("BACKUP DATABASE app, nope TO 'nightly'", 403, (404, "NOT_FOUND"))],
    ast.RestoreAll: [Case("RESTORE ALL FROM 'nightly'", 403, (404, "NOT_FOUND"))],
    ast.BackupTables: [Case("BACKUP TABLE app.t, app.u TO 'nightly'", 403)],
    ast.RestoreTable: [Case("RESTORE TABLE app.t FROM 'nightly' AS app.t2", 403)],
    ast.ShowBackups: [Case("SHOW BACKUPS", 200), Case("SHOW BACKUPS FOR DATABASE app", 200),
                      Case("SHOW BACKUPS IN 'nightly'", 403)],
    ast.ShowBackup: [Case("SHOW BACKUP '{backup_id}'", 403)],
    ast.VerifyBackup: [Case("VERIFY BACKUP '{backup_id}'", 403)],
    ast.DropBackup: [Case("DROP BACKUP '{backup_id}'", 403)],
    ast.AttachBackups: [Case("ATTACH BACKUPS FROM 'nightly'", 403)],
    # jobs (a role-user sees only their own) and schedules
    ast.ShowJobs: [Case("SHOW JOBS", 200)],
    ast.ShowJob: [Case("SHOW JOB '{job_id}'", (404, "NOT_FOUND"))],  # root's backup job
    ast.KillJob: [Case("KILL JOB 'job-none'", 403, (404, "NOT_FOUND")),
                  Case("CANCEL JOB 'job-none'", 403, (404, "NOT_FOUND"))],
    ast.PauseJob: [Case("PAUSE JOB 'job-none'", 403, (404, "NOT_FOUND"))],
    ast.ResumeJob: [Case("RESUME JOB 'job-none'", 403, (404, "NOT_FOUND"))],
    ast.CreateSchedule: [
        Case("CREATE SCHEDULE s2 FOR BACKUP DATABASE app TO 'nightly' EVERY '1d'", 403)],
    ast.ShowSchedules: [Case("SHOW SCHEDULES", 200)],
    ast.DropSchedule: [Case("DROP SCHEDULE s1", 403)],
    # continuous archiving: admin only
    ast.StartArchiving: [Case("START ARCHIVING DATABASE nope TO 'arch'", 403, (404, "NOT_FOUND"))],
    ast.StopArchiving: [Case("STOP ARCHIVING DATABASE app", 403, (404, "NOT_FOUND"))],
    ast.ShowArchives: [Case("SHOW ARCHIVES", 403)],
    ast.ShowRestorePoints: [Case("SHOW RESTORE POINTS FOR DATABASE app IN 'nightly'", 403)],
    ast.VerifyArchive: [Case("VERIFY ARCHIVE FOR DATABASE app IN 'nightly'", 403)],
    # ordinary SQL: rows are for everyone; nothing reaches files or settings
    ast.Query: [
        Case("SELECT * FROM app.t", 200),
        Case("SELECT * FROM app.u", 200),
        Case("INSERT INTO app.t SELECT max(id) + 1, 'b' FROM app.t", 200),
        Case("INSERT INTO app.u VALUES (2, 'b')", 200),
        Case("UPDATE app.t SET v = 'c'", 200),
        Case("DELETE FROM app.t WHERE id = 1", 200),
        Case("SELECT * FROM system.jobs", 200),
        Case("SELECT * FROM system.backups", 200),
        Case("SELECT * FROM system.schedules", 200),
        Case("COPY app.t TO 'x.csv'", 403, 403),
        Case("SUMMARIZE app.u", 200),
        Case("DESCRIBE SELECT * FROM app.t", 200),
        Case("PIVOT app.t ON v USING count(*)", 200),
        Case("SUMMARIZE SELECT * FROM system.jobs", 200),
    ],
    ast.Explain: [
        Case("EXPLAIN SELECT * FROM app.u", 200),
        Case("EXPLAIN ANALYZE SELECT * FROM system.jobs", 200),
        Case("EXPLAIN COPY app.t TO 'x.csv'", 403, 403),
        Case("EXPLAIN DELETE FROM app.t", (400, "INVALID_ARGUMENT"), (400, "INVALID_ARGUMENT")),
    ],
}


def statement_classes() -> list[type[ast.Statement]]:
    return sorted(
        (c for c in vars(ast).values()
         if isinstance(c, type) and issubclass(c, ast.Statement) and c is not ast.Statement),
        key=lambda c: c.__name__,
    )


def test_every_statement_class_has_a_case() -> None:
    missing = [c.__name__ for c in statement_classes() if not CASES.get(c)]
    assert not missing, f"add role cases to tests/e2e/test_roles.py for: {missing}"


def test_every_statement_class_has_a_handler_with_a_role() -> None:
    missing = [c.__name__ for c in statement_classes() if c not in ROUTES]
    assert not missing, f"statement classes without a handler: {missing}"


@pytest.mark.parametrize("cls,case", [
    (cls, case) for cls, cases in CASES.items() for case in cases
], ids=lambda v: v.__name__ if isinstance(v, type) else v.sql[:40])
def test_case_is_of_its_class(cls: type, case: Case) -> None:
    assert type(parse_one(case.sql.format(backup_id="bk-x", job_id="job-x"))) is cls


@pytest.fixture
async def role_client(aiohttp_client: Any, cairn_config: Config) -> Any:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [
        {"token": "root-secret", "user": "root", "role": "admin"},
        {"token": "alice-secret", "user": "alice", "role": "user"},
    ]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
                     "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')", token="root-secret")
    await ok(client, "INSERT INTO app.u VALUES (1, 'a')", token="alice-secret")
    backup = await ok(client, "BACKUP DATABASE app TO 'nightly'", token="root-secret")
    await ok(client, "CREATE SCHEDULE s1 FOR BACKUP DATABASE app TO 'nightly' EVERY '1d'",
             token="root-secret")
    client.backup_id = backup[0]["rows"][0]["backup_id"]
    client.job_id = backup[0]["rows"][0]["job_id"]
    return client


def expect(outcome: Outcome, status: int, body: dict[str, Any], who: str, text: str) -> None:
    want, code = outcome if isinstance(outcome, tuple) else (outcome, None)
    if want == 403:
        code = code or "PERMISSION_DENIED"
    assert status == want, f"{who}: {text} -> {status} {body}"
    if want == 200:
        assert body["status"] == "success", body
    else:
        assert body["error"]["code"] == code, f"{who}: {text} -> {body}"


def leaks(body: dict[str, Any], paths: list[str]) -> list[str]:
    text = json.dumps(body)
    return [p for p in paths if p in text]


@pytest.mark.parametrize("cls,case", [
    (cls, case) for cls, cases in CASES.items() for case in cases
], ids=lambda v: v.__name__ if isinstance(v, type) else v.sql[:40])
async def test_role_outcomes(role_client: Any, cairn_config: Config, tmp_path: Path,
                             cls: type, case: Case) -> None:
    text = case.sql.format(backup_id=role_client.backup_id, job_id=role_client.job_id)
    paths = sorted({str(tmp_path), str(tmp_path.resolve())})
    status, body = await sql(role_client, text, token="alice-secret")
    expect(case.user, status, body, "role user", text)
    assert not leaks(body, paths), f"a server path reached a role-user: {body}"
    status, body = await sql(role_client, text, token="root-secret")
    expect(case.admin, status, body, "admin", text)


# --- what a role-user sees ---------------------------------------------------------


@pytest.fixture
async def two_faced(aiohttp_client: Any, cairn_config: Config) -> Any:
    """alice holds an admin token and a user token; bob a user token."""
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [
        {"token": "root-secret", "user": "root", "role": "admin"},
        {"token": "alice-admin", "user": "alice", "role": "admin"},
        {"token": "alice-user", "user": "alice", "role": "user"},
        {"token": "bob-user", "user": "bob", "role": "user"},
    ]
    client = await aiohttp_client(create_app(cairn_config))
    # flush_rows 10: alice's FLUSH below writes its one row (a tenth of it)
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY) "
                     "WITH (flush_rows = 10); INSERT INTO app.t VALUES (1)", token="root-secret")
    await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (label = 'root''s')",
             token="root-secret")
    await ok(client, "FLUSH TABLE app.t", token="alice-user")
    await ok(client, "BACKUP DATABASE app TO 'nightly'", token="alice-admin")
    return client


async def test_a_role_user_sees_only_their_own_jobs(two_faced: Any, tmp_path: Path) -> None:
    everything = await ok(two_faced, "SELECT job_type, user_id FROM system.jobs ORDER BY job_id",
                          token="root-secret")
    assert [r["user_id"] for r in everything[0]["rows"]] == ["root", "alice", "alice"]
    for text in ("SELECT * FROM system.jobs", "SHOW JOBS",
                 "SELECT user_id, target, statement FROM system.jobs",
                 "SELECT count(*) AS n FROM system.jobs j WHERE j.user_id <> 'alice'"):
        mine = await ok(two_faced, text, token="alice-user")
        rows = mine[0]["rows"]
        if "count" in text:
            assert rows == [{"n": 0}]
            continue
        assert len(rows) == 2 and {r["user_id"] for r in rows} == {"alice"}
        assert str(tmp_path) not in json.dumps(mine)
        backup = [r for r in rows if r["target"]][0]
        assert backup["target"] == "<backup root>/nightly"
    bob = await ok(two_faced, "SELECT * FROM system.jobs", token="bob-user")
    assert bob[0]["rows"] == []


async def test_a_role_users_writes_see_the_system_tables_as_their_reads_do(
        two_faced: Any, tmp_path: Path) -> None:
    """INSERT … SELECT, an UPDATE's subquery and a VALUES subquery ran without
    the caller's view of the system tables: a role-user copied every user's
    jobs, statements and server paths into a table and read them back. Found
    by trying."""
    await ok(two_faced, "CREATE TABLE app.loot (id BIGINT PRIMARY KEY, who TEXT, what TEXT)",
             token="root-secret")
    for text in [
        "INSERT INTO app.loot SELECT row_number() OVER (), user_id, "
        "statement || ' | ' || coalesce(target, '') FROM system.jobs",
        "INSERT INTO app.loot VALUES (100, 'v', (SELECT string_agg(user_id || '=' || "
        "coalesce(target, ''), ';') FROM system.jobs))",
        "INSERT INTO app.loot SELECT 200 + row_number() OVER (), namespace, target "
        "FROM system.backups",
        "UPDATE app.loot SET what = (SELECT string_agg(user_id || ':' || coalesce(target, ''), "
        "',') FROM system.jobs WHERE user_id <> 'alice') WHERE id = 1",
    ]:
        await ok(two_faced, text, token="alice-user")
    loot = await rows(two_faced, "SELECT * FROM app.loot ORDER BY id", token="alice-user")
    assert loot and str(tmp_path) not in json.dumps(loot), loot
    assert "root" not in {r["who"] for r in loot} and "nightly" in json.dumps(loot)
    assert loot[0]["what"] is None  # no job of anyone but alice
    assert "BACKUP DATABASE app TO 'nightly' WITH" not in json.dumps(loot)  # root's label


async def test_backup_and_schedule_lists_show_no_server_paths(two_faced: Any,
                                                              tmp_path: Path) -> None:
    await ok(two_faced, "CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'nightly' EVERY '1h'",
             token="root-secret")
    for text in ("SHOW BACKUPS", "SELECT * FROM system.backups", "SHOW SCHEDULES",
                 "SELECT target FROM system.schedules"):
        admin = await ok(two_faced, text, token="root-secret")
        user = await ok(two_faced, text, token="bob-user")
        assert str(tmp_path) in json.dumps(admin)  # admins see where backups are
        assert str(tmp_path) not in json.dumps(user), user
        assert {r["target"] for r in user[0]["rows"]} == {"<backup root>/nightly"}
        assert len(user[0]["rows"]) == len(admin[0]["rows"])


async def test_archives_show_no_server_paths(two_faced: Any, tmp_path: Path) -> None:
    """system.archives showed a role-user the target's server path, and in
    `last_error` ("cannot write to backup target '/srv/...'") too."""
    await ok(two_faced, "START ARCHIVING DATABASE app TO 'arch'", token="root-secret")
    target = tmp_path / "backups" / "arch"
    if (target / "archives").exists():
        (target / "archives").rename(target / "archives.moved")
    (target / "archives").write_text("not a folder")  # the next shipment fails
    await ok(two_faced, "INSERT INTO app.t VALUES (2)", token="root-secret")
    text = "SELECT target, last_error FROM system.archives"
    for _ in range(100):
        admin = (await ok(two_faced, text, token="root-secret"))[0]["rows"]
        if admin[0]["last_error"]:
            break
        await asyncio.sleep(0.1)
    assert str(tmp_path) in admin[0]["last_error"], admin
    for query in (text, "SELECT * FROM system.archives"):
        user = (await ok(two_faced, query, token="bob-user"))[0]["rows"]
        assert str(tmp_path) not in json.dumps(user), user
        assert user[0]["target"] == "<backup root>/arch"
        assert "<backup root>/arch" in user[0]["last_error"]


async def test_archives_show_a_role_user_no_figures_of_everyones_writes(
        two_faced: Any) -> None:
    """system.archives' segments and bytes grew with every user's writes to the
    namespace (alice's rows in her USER table showed in bob's bytes: 0 -> 1,107
    -> 4,774), and lag_ms and archived_until move with them. As system.backups'
    counts, they are NULL for a role-user; an admin sees them."""
    root = "root-secret"
    await ok(two_faced, "CREATE USER TABLE app.u (id INT PRIMARY KEY, v TEXT)", token=root)
    await ok(two_faced, "START ARCHIVING DATABASE app TO 'arch'", token=root)
    await ok(two_faced, "INSERT INTO app.u VALUES (1, 'alice')", token="alice-user")
    figures = "SELECT segments, bytes, lag_ms, archived_until FROM system.archives"
    for _ in range(100):
        admin = (await ok(two_faced, figures, token=root))[0]["rows"]
        if admin[0]["segments"]:
            break
        await asyncio.sleep(0.1)
    assert admin[0]["segments"] > 0 and admin[0]["bytes"] > 0, admin
    for query in (figures, "SELECT * FROM system.archives"):
        (row,) = (await ok(two_faced, query, token="bob-user"))[0]["rows"]
        assert {k: row[k] for k in ("segments", "bytes", "lag_ms", "archived_until")} == {
            "segments": None, "bytes": None, "lag_ms": None, "archived_until": None}, row
    (row,) = (await ok(two_faced, "SELECT status, target FROM system.archives",
                       token="bob-user"))[0]["rows"]
    assert row == {"status": "running", "target": "<backup root>/arch"}


async def test_a_role_user_counts_only_their_own_rows(two_faced: Any) -> None:
    """system.tables counted every user's rows of a USER table for a
    role-user (alice saw bob's 5 rows as buffered_rows 6), so did her own
    FLUSH's result and job (rows 6, files 2), and SHOW BACKUPS the
    namespace's rows. Now a role-user's counts of a USER table are their own,
    and backups (of every user's rows) show them no rows, files or bytes."""
    root, alice, bob = "root-secret", "alice-user", "bob-user"
    # flush_rows 10: alice's FLUSH writes her one buffered row (a tenth of it)
    await ok(two_faced, "CREATE USER TABLE app.u (id INT PRIMARY KEY, v TEXT) "
                        "WITH (flush_rows = 10)", token=root)
    await ok(two_faced, "INSERT INTO app.u VALUES (1, 'alice')", token=alice)
    await ok(two_faced, "INSERT INTO app.u VALUES (1, 'b'), (2, 'b'), (3, 'b'), (4, 'b'), "
                        "(5, 'b')", token=bob)
    stats = ("SELECT table_name, buffered_rows, flushed_rows, files, bytes > 0 AS b "
             "FROM system.tables WHERE namespace = 'app' ORDER BY table_name")

    async def seen(token: str, text: str = stats) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (await ok(two_faced, text, token=token))[0]["rows"]
        return rows

    shared = {"table_name": "t", "buffered_rows": 0, "flushed_rows": 1, "files": 1, "b": True}
    assert await seen(alice) == [shared, {"table_name": "u", "buffered_rows": 1,
                                          "flushed_rows": 0, "files": 0, "b": False}]
    assert (await seen(root))[1]["buffered_rows"] == 6
    metric = "cairn_flushed_rows_total"
    before = value(await scrape(two_faced, Authorization=f"Bearer {root}"), metric)
    flushed = (await ok(two_faced, "FLUSH TABLE app.u", token=alice))[0]
    after = value(await scrape(two_faced, Authorization=f"Bearer {root}"), metric)
    assert after - before == 1  # her FLUSH writes her rows only: bob's stay buffered
    assert {k: flushed["rows"][0][k] for k in ("tables", "rows", "files")} == {
        "tables": 1, "rows": 1, "files": 1}
    assert flushed["message"] == "Flushed table 'app.u': 1 rows to 1 file(s)"
    assert await seen(alice) == [shared, {"table_name": "u", "buffered_rows": 0,
                                          "flushed_rows": 1, "files": 1, "b": True}]
    assert (await seen(bob))[1] == {"table_name": "u", "buffered_rows": 5, "flushed_rows": 0,
                                    "files": 0, "b": False}
    assert (await seen(root))[1] == {"table_name": "u", "buffered_rows": 5, "flushed_rows": 1,
                                     "files": 1, "b": True}
    whole = await seen(alice, "SELECT * FROM system.tables")  # the table itself, no DuckDB
    assert [r["flushed_rows"] for r in whole if r["table_name"] == "u"] == [1]
    job = "SELECT rows, files_done, result FROM system.jobs WHERE statement LIKE '%app.u%'"
    mine = await seen(alice, job)
    assert mine == [{"rows": 1, "files_done": 1, "result": {
        "tables": 1, "rows": 1, "files": 1, "bytes": flushed["rows"][0]["bytes"]}}]
    shown = [r for r in await seen(alice, "SHOW JOBS") if "app.u" in r["statement"]]
    assert [r["result"] for r in shown] == [mine[0]["result"]]
    assert (await seen(root, job))[0]["result"] == mine[0]["result"]  # no one else's rows
    for text in ("SHOW BACKUPS", "SELECT * FROM system.backups"):
        assert all(r["rows"] is not None and r["bytes"] for r in await seen(root, text))
        users = await seen(alice, text)
        assert users and all(r[c] is None for r in users
                             for c in ("rows", "files", "bytes", "bytes_written"))


async def test_a_role_users_flush_of_a_few_rows_writes_no_file(two_faced: Any) -> None:
    """Each role-user FLUSH TABLE wrote one Parquet file of whatever was buffered,
    and nothing merges files: 600 x (a one-row INSERT, FLUSH) made 601 files and
    count(*) ten times slower. A role-user's FLUSH writes a file once the buffer
    holds a tenth of flush_rows (or a row a tenth of flush_interval_seconds old);
    an admin's FLUSH is as before."""
    root, bob = "root-secret", "bob-user"
    await ok(two_faced, "CREATE TABLE app.f (id BIGINT PRIMARY KEY) WITH (flush_rows = 100)",
             token=root)
    files = "SELECT files FROM system.tables WHERE namespace = 'app' AND table_name = 'f'"
    for i in range(1, 10):
        await ok(two_faced, f"INSERT INTO app.f VALUES ({i})", token=bob)
        (res,) = await ok(two_faced, "FLUSH TABLE app.f", token=bob)
        assert res["rows"][0]["files"] == 0 and res["rows"][0]["tables"] == 0, res
        assert res["message"].startswith("Nothing flushed: table 'app.f' has too few"), res
    assert await rows(two_faced, files, token=root) == [{"files": 0}]
    assert await rows(two_faced, "SELECT count(*) AS n FROM app.f", token=bob) == [{"n": 9}]
    # The job says what it did: completed, nothing written, the table left buffered.
    job = await rows(two_faced, "SELECT status, files_done, result FROM system.jobs WHERE "
                                "job_type = 'flush' AND user_id = 'bob' ORDER BY job_id DESC "
                                "LIMIT 1", token=bob)
    assert job[0]["status"] == "completed" and job[0]["files_done"] == 0, job
    assert job[0]["result"] == {"tables": 0, "rows": 0, "files": 0, "bytes": 0,
                                            "left_buffered": ["app.f"]}, job
    # FLUSH ALL TABLES names what it left
    (res,) = await ok(two_faced, "FLUSH ALL TABLES IN app", token=bob)
    assert "left buffered: app.f" in res["message"], res
    # A tenth of flush_rows buffered: written, one file of all ten rows.
    await ok(two_faced, "INSERT INTO app.f VALUES (10)", token=bob)
    (res,) = await ok(two_faced, "FLUSH TABLE app.f", token=bob)
    assert res["rows"][0]["rows"] == 10 and res["rows"][0]["files"] == 1, res
    # An admin's FLUSH writes even one row.
    await ok(two_faced, "INSERT INTO app.f VALUES (11)", token=bob)
    (res,) = await ok(two_faced, "FLUSH TABLE app.f", token=root)
    assert res["rows"][0]["files"] == 1, res
    assert await rows(two_faced, files, token=root) == [{"files": 2}]
    # A row a tenth of flush_interval_seconds old: written.
    await ok(two_faced, "CREATE TABLE app.g (id BIGINT PRIMARY KEY) "
                        "WITH (flush_interval_seconds = 20)", token=root)
    await ok(two_faced, "INSERT INTO app.g VALUES (1)", token=bob)
    (res,) = await ok(two_faced, "FLUSH TABLE app.g", token=bob)
    assert res["rows"][0]["files"] == 0, res
    await asyncio.sleep(2.2)
    (res,) = await ok(two_faced, "FLUSH TABLE app.g", token=bob)
    assert res["rows"][0]["files"] == 1, res


async def test_a_role_users_flush_tells_nothing_of_other_users_rows(two_faced: Any) -> None:
    """A role-user's FLUSH of a USER table weighed every user's buffered rows:
    alice, with none of her own, read "Flushed ... 0 rows" while others had
    none, "Nothing flushed" while they had 1-999, a flush (of their rows) at
    1,000 or more. Found by trying. Now her own rows alone decide, and her
    FLUSH writes only them; the job records what it wrote."""
    root, alice, bob = "root-secret", "alice-user", "bob-user"
    await ok(two_faced, "CREATE USER TABLE app.u (id INT PRIMARY KEY) WITH (flush_rows = 60)",
             token=root)
    stats = ("SELECT buffered_rows, flushed_rows, files FROM system.tables "
             "WHERE namespace = 'app' AND table_name = 'u'")
    empty = "Flushed table 'app.u': 0 rows to 0 file(s)"
    had = 0
    for others in (0, 5, 60):  # bob's rows: none, under a tenth, flush_rows
        if others > had:
            await ok(two_faced, "INSERT INTO app.u VALUES " + ", ".join(
                f"({1000 + i})" for i in range(had, others)), token=bob)
            had = others
        (res,) = await ok(two_faced, "FLUSH TABLE app.u", token=alice)
        assert res["message"] == empty, (others, res)
        assert {k: res["rows"][0][k] for k in ("tables", "rows", "files", "bytes")} == {
            "tables": 1, "rows": 0, "files": 0, "bytes": 0}, res
        assert await rows(two_faced, stats, token=root) == [
            {"buffered_rows": others, "flushed_rows": 0, "files": 0}]
    # One row of hers (a tenth of flush_rows is 6): held, whatever bob has buffered.
    await ok(two_faced, "INSERT INTO app.u VALUES (1)", token=alice)
    (res,) = await ok(two_faced, "FLUSH TABLE app.u", token=alice)
    assert res["message"].startswith("Nothing flushed: table 'app.u' has too few"), res
    # Six of hers: written, hers alone; bob's 60 stay buffered, his to flush.
    await ok(two_faced, "INSERT INTO app.u VALUES (2), (3), (4), (5), (6)", token=alice)
    (res,) = await ok(two_faced, "FLUSH TABLE app.u", token=alice)
    assert res["message"] == "Flushed table 'app.u': 6 rows to 1 file(s)", res
    assert await rows(two_faced, stats, token=root) == [
        {"buffered_rows": 60, "flushed_rows": 6, "files": 1}]
    job = ("SELECT status, rows, files_done, result FROM system.jobs WHERE job_type = 'flush' "
           "AND user_id = 'alice' ORDER BY job_id DESC LIMIT 1")
    (mine,) = await rows(two_faced, job, token=root)  # the admin's view: nothing more
    assert mine == {"status": "completed", "rows": 6, "files_done": 1, "result": {
        "tables": 1, "rows": 6, "files": 1, "bytes": res["rows"][0]["bytes"]}}, mine
    assert await rows(two_faced, "SELECT count(*) AS n FROM app.u", token=alice) == [{"n": 6}]
    assert await rows(two_faced, "SELECT count(*) AS n FROM app.u", token=bob) == [{"n": 60}]


async def test_a_schedule_waiting_for_room_names_no_server_path_to_a_role_user(
        role_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A run that falls due while the data directory refuses writes leaves
    the schedule's last_status saying why, naming the data directory
    (schedules._wait_for_room, with RocksDB's own words): a role-user read the
    server's path in SHOW SCHEDULES and system.schedules."""
    cairn = state(role_client)
    data = cairn_config.data_dir
    refused = from_rocksdb(data, Exception(
        f"IO error: No space left on device: While appending to file: "
        f"{data}/catalog/000004.log: No space left on device"))
    assert refused is not None
    schedule = cairn.catalog.get(Schedule, "s1")
    assert schedule is not None
    _wait_for_room(cairn, schedule, refused)
    paths = sorted({str(tmp_path), str(tmp_path.resolve())})
    for text in ("SHOW SCHEDULES", "SELECT last_status FROM system.schedules"):
        (row,) = await rows(role_client, text, token="alice-secret")
        assert row["last_status"].startswith("waiting: the run due at "), row
        assert "'<data dir>' (RocksDB: While appending to file: <data dir>/catalog/" in \
            row["last_status"], row
        assert not leaks({"row": row}, paths), row
        (row,) = await rows(role_client, text, token="root-secret")
        assert str(data) in row["last_status"], row  # an admin sees it as stored
