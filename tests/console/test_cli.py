"""`cairn sql -c/-f` against a real `cairn serve`: what scripts see on stdout,
stderr and in the exit status."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.console.conftest import cairn_sql
from tests.helpers import ServerProcess, free_port


def test_c_prints_an_aligned_table_with_row_count_and_time(server: ServerProcess, ns: str) -> None:
    run = cairn_sql(server.url, "-c", f"SELECT id, body, score FROM {ns}.notes ORDER BY id")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["id", "body", "score"]
    assert lines[2].split() == ["1", "hello", "1.5"]
    assert lines[3].split() == ["2", "world", "NULL"]
    assert lines[4].startswith("(2 rows)  Time: ") and lines[4].endswith(" ms")
    assert run.stderr == ""


def test_namespace_flag_and_several_statements(server: ServerProcess, ns: str) -> None:
    run = cairn_sql(server.url, "-n", ns, "-c",
                    "INSERT INTO notes VALUES (3, 'x', 2); SELECT count(*) AS n FROM notes")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("1 row inserted")
    assert lines[1:4:2] == ["n", "3"]


def test_error_exits_non_zero_with_code_and_marked_position(server: ServerProcess) -> None:
    run = cairn_sql(server.url, "-c", "SELECT 1 AS a;\n  SELECT * FROM nosuch.t;\nSELECT 2 AS b")
    assert run.returncode == 1
    assert run.stdout.splitlines()[:3] == ["a", "─", "1"]  # the first statement ran
    assert " b\n" not in run.stdout  # the third did not
    assert run.stderr.splitlines() == [
        "ERROR NOT_FOUND: Namespace 'nosuch' does not exist",
        "LINE 2:   SELECT * FROM nosuch.t;",
        "          ^",
    ]


def test_parse_error_points_at_the_token_in_the_line_typed(server: ServerProcess) -> None:
    run = cairn_sql(server.url, "-c", "SELECT 1;  SELEC 2")
    assert run.returncode == 1
    err = run.stderr.splitlines()
    assert err[0].startswith("ERROR PARSE_ERROR: unexpected 'SELEC' at line 1, column 12")
    assert err[1:] == ["LINE 1: SELECT 1;  SELEC 2", "                   ^"]


def test_f_stops_at_the_first_error_and_names_the_file_line(
        server: ServerProcess, ns: str, tmp_path: Path) -> None:
    script = tmp_path / "load.sql"
    script.write_text(f"INSERT INTO {ns}.notes VALUES (10, 'a', 0);\n\n"
                      f"INSERT INTO {ns}.notes VALUES (10, 'dup', 0);\n"
                      f"INSERT INTO {ns}.notes VALUES (11, 'never', 0);\n")
    run = cairn_sql(server.url, "-f", str(script))
    assert run.returncode == 1
    assert run.stderr.splitlines()[0].startswith("ERROR ALREADY_EXISTS:")
    assert run.stderr.splitlines()[1] == f"at {script}:3:1"
    _, body = server.post(f"SELECT id FROM {ns}.notes WHERE id >= 10")
    assert body["results"][0]["rows"] == [{"id": 10}]


def test_json_format_is_the_api_result_per_line(server: ServerProcess, ns: str) -> None:
    run = cairn_sql(server.url, "--format", "json", "-c",
                    f"SELECT id, body FROM {ns}.notes ORDER BY id; SHOW TABLES IN {ns}")
    assert run.returncode == 0, run.stderr
    first, second = (json.loads(line) for line in run.stdout.splitlines())
    assert first["rows"] == [{"id": 1, "body": "hello"}, {"id": 2, "body": "world"}]
    assert first["schema"][0] == {"name": "id", "type": "BIGINT"}
    assert [r["table_name"] for r in second["rows"]] == ["notes"]


def _exact(text: str) -> Any:
    """JSON read with every key and every number's text kept, to compare exactly."""
    return json.loads(text, object_pairs_hook=list, parse_float=str, parse_int=str)


def test_json_values_print_as_the_api_sent_them(server: ServerProcess, ns: str) -> None:
    """The console read the answer with json.loads and wrote it again: a role
    user's `{"role":"admin","role":"user"}` (SQL reads role = 'admin') showed as
    {"role":"user"} in every format, 12345678901234567890.123456789 as
    1.2345678901234567e+19, -0 as 0."""
    status, body = server.post(
        f"CREATE TABLE {ns}.acl (id BIGINT PRIMARY KEY, j JSON); INSERT INTO {ns}.acl VALUES "
        """(1, '{"role":"admin","role":"user"}'), (2, '[12345678901234567890.123456789, -0]')""")
    assert status == 200, body
    sql = f"SELECT id, j, j->>'role' AS role, 1e20::DOUBLE AS d FROM {ns}.acl ORDER BY id"
    request = urllib.request.Request(server.url + "/api/sql", json.dumps({"sql": sql}).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        answer = resp.read().decode()
    assert '"j":{"role":"admin","role":"user"}' in answer  # the server's side holds
    table = cairn_sql(server.url, "-c", sql)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[2].split() == ["1", '{"role":"admin","role":"user"}', "admin", "1e20"]
    assert lines[3].split() == ["2", "[12345678901234567890.123456789,-0]", "NULL", "1e20"]
    as_json = cairn_sql(server.url, "--format", "json", "-c", sql)
    assert as_json.returncode == 0, as_json.stderr
    assert _exact(as_json.stdout) == dict(_exact(answer))["results"][0]  # exactly results[0]
    as_csv = cairn_sql(server.url, "--format", "csv", "-c", sql)
    assert as_csv.returncode == 0, as_csv.stderr
    assert list(csv.reader(io.StringIO(as_csv.stdout)))[1:] == [
        ["1", '{"role":"admin","role":"user"}', "admin", "1e20"],
        ["2", "[12345678901234567890.123456789,-0]", "", "1e20"]]


def test_csv_format_for_scripts(server: ServerProcess, ns: str) -> None:
    run = cairn_sql(server.url, "--format", "csv", "-c",
                    f"SELECT id, body, score FROM {ns}.notes ORDER BY id")
    assert run.returncode == 0, run.stderr
    assert list(csv.reader(io.StringIO(run.stdout))) == [
        ["id", "body", "score"], ["1", "hello", "1.5"], ["2", "world", ""]]


def test_a_csv_cut_at_the_servers_bound_says_so_and_fails(server: ServerProcess) -> None:
    """An answer past [server] max_result_rows (100,000) was written as its
    first rows with nothing on stderr and exit status 0: an export that looked
    whole."""
    run = cairn_sql(server.url, "--format", "csv", "-c",
                    "SELECT x FROM range(100005) t(x); SELECT 1 AS after")
    assert run.returncode != 0
    assert len(run.stdout.splitlines()) == 1 + 100_000 and "after" not in run.stdout
    assert "WARNING: answer truncated to its first 100000 rows" in run.stderr, run.stderr
    whole = cairn_sql(server.url, "--format", "csv", "-c", "SELECT x FROM range(10) t(x)")
    assert whole.returncode == 0 and whole.stderr == ""


def test_sql_piped_on_stdin_runs_like_a_file(server: ServerProcess) -> None:
    run = cairn_sql(server.url, stdin="SELECT 40 + 2 AS answer;\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[2].strip() == "42"


def test_console_commands_work_with_c(server: ServerProcess, ns: str) -> None:
    run = cairn_sql(server.url, "-c", f"\\dt {ns}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[2].split()[:3] == [ns, "notes", "shared"]
    bad = cairn_sql(server.url, "-c", "\\nope")
    assert bad.returncode == 1
    assert bad.stderr.startswith("ERROR INVALID_ARGUMENT: unknown command \\nope")


def test_unreachable_server_and_unreadable_file(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    down = cairn_sql(url, "-c", "SELECT 1")
    assert down.returncode == 1
    assert down.stderr.startswith(f"ERROR UNAVAILABLE: cannot reach {url}")
    missing = cairn_sql(url, "-f", str(tmp_path / "none.sql"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


def test_token_from_flag_or_environment(tmp_path: Path) -> None:
    config = tmp_path / "cairn.toml"
    config.write_text('[auth]\nmode = "token"\n\n[[auth.tokens]]\n'
                      'token = "s3cret"\nuser = "alice"\nrole = "admin"\n')
    proc = ServerProcess(tmp_path / "data", config=config).start()
    try:
        denied = cairn_sql(proc.url, "-c", "SELECT 1")
        assert denied.returncode == 1
        assert denied.stderr.startswith("ERROR UNAUTHENTICATED:")
        flag = cairn_sql(proc.url, "--token", "s3cret", "-c", "SELECT 1 AS one")
        env = cairn_sql(proc.url, "-c", "SELECT 1 AS one", env={"CAIRN_TOKEN": "s3cret"})
        for run in (flag, env):
            assert run.returncode == 0, run.stderr
            assert run.stdout.splitlines()[2].strip() == "1"
    finally:
        proc.kill()


def test_backup_verify_restore_run_to_completion(server: ServerProcess, ns: str) -> None:
    """Without a terminal there is no bar, but each job is still run detached,
    followed to its end, and printed as its result row (contract §5)."""
    run = cairn_sql(server.url, "--format", "json", "-c",
                    f"BACKUP DATABASE {ns} TO 'cli_{ns}'")
    assert run.returncode == 0, run.stderr
    backup = json.loads(run.stdout)["rows"][0]
    assert backup["status"] == "completed" and backup["namespace"] == ns
    assert backup["rows"] == 2 and backup["job_id"].startswith("job-")
    verify = cairn_sql(server.url, "--format", "json", "-c",
                       f"VERIFY BACKUP '{backup['backup_id']}' IN 'cli_{ns}'")
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["rows"][0]["is_valid"] is True
    restore = cairn_sql(server.url, "-c",
                        f"RESTORE DATABASE {ns} FROM 'cli_{ns}' AS {ns}_r; "
                        f"SELECT count(*) AS n FROM {ns}_r.notes")
    assert restore.returncode == 0, restore.stderr
    assert restore.stdout.splitlines()[-3:-1] == ["─", "2"]
    _, jobs = server.post(f"SELECT statement FROM system.jobs WHERE namespace = '{ns}' "
                          "AND job_type = 'backup'")
    assert "detached" in jobs["results"][0]["rows"][0]["statement"].lower()


def test_archives_command_shows_status_and_lag(server: ServerProcess, ns: str) -> None:
    status, body = server.post(f"START ARCHIVING DATABASE {ns} TO 'console-{ns}'")
    assert status == 200, body
    try:
        run = cairn_sql(server.url, "--format", "csv", "-c", "\\archives")
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert lines[0].split(",")[:5] == ["namespace", "target", "status", "archived_until",
                                           "lag_ms"]
        mine = [line for line in lines[1:] if line.startswith(ns + ",")]
        assert mine and mine[0].split(",")[2] == "running"
    finally:
        server.post(f"STOP ARCHIVING DATABASE {ns}")
