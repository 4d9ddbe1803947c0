"""The interactive console on a pseudo-terminal, typed at the way a person does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.terminal import Terminal
from tests.helpers import ServerProcess


@pytest.fixture
def term(server: ServerProcess, tmp_path: Path) -> Iterator[Terminal]:
    t = Terminal(server.url, tmp_path / "history")
    yield t
    t.close()


def job_status(server: ServerProcess, job_id: str) -> str:
    _, body = server.post(f"SELECT status FROM system.jobs WHERE job_id = '{job_id}'")
    return str(body["results"][0]["rows"][0]["status"])


def test_typed_query_prints_an_aligned_table(term: Terminal, ns: str) -> None:
    term.prompt()
    term.line(f"SELECT id, body FROM {ns}.notes ORDER BY id;")
    term.expect(r"id\s+body\n─+\n\s*1\s+hello\s*\n\s*2\s+world\s*\n\(2 rows\)  Time: [\d.]+ ms")
    term.prompt()
    term.line("SELECT count(*) AS n")  # no `;` yet: Enter continues the statement
    term.expect(r"\.\.\.>")
    term.line(f"  FROM {ns}.notes;")
    term.expect(r"n\n─+\n2\s*\n\(1 row\)")


def test_tab_completion_and_history_across_sessions(
        server: ServerProcess, ns: str, tmp_path: Path) -> None:
    history = tmp_path / "history"
    first = Terminal(server.url, history)
    try:
        first.prompt()
        first.send(f"SELECT body FROM {ns}.no")
        first.send("\t")  # the only table there starting "no": completed in place
        first.expect("notes")  # seen before typing on, as a person does (painted over "no")
        first.line(" WHERE id = 2;")
        first.expect(r"body\n─+\nworld\s*\n\(1 row\)")
        first.prompt()
        first.send("\x04")  # Ctrl-D
        first.child.expect_exact(["\r\n", "\n"], timeout=5)
    finally:
        first.close()
    assert f"+SELECT body FROM {ns}.notes WHERE id = 2;" in history.read_text()
    second = Terminal(server.url, history)
    try:
        second.prompt()
        second.send("\x1b[A")  # Up: the statement from the last session
        second.expect(rf"SELECT body FROM {ns}\.notes WHERE id = 2;")
        second.send("\r")
        second.expect(r"world\s*\n\(1 row\)")
    finally:
        second.close()


def test_errors_are_marked_and_commands_listed(term: Terminal, ns: str) -> None:
    term.prompt()
    term.line("SELECT 1 AS one;  SELECT * FROM nope.t;")
    term.expect(r"ERROR NOT_FOUND: Namespace 'nope' does not exist\n"
                r"LINE 1: SELECT 1 AS one;  SELECT \* FROM nope.t;\n {26}\^")
    term.prompt()
    term.line("\\?")
    term.expect(r"\\dt \[ns\]\s+list tables")
    term.expect(r"\\q\s+quit|\\format")
    term.prompt()
    term.line(f"\\use {ns}")
    term.expect(rf"cairn:{ns}>")
    term.line("SELECT count(*) AS n FROM notes;")
    term.expect(r"n\n─+\n2\s*\n\(1 row\)")


def test_backup_shows_a_progress_bar_that_reaches_100(
        slow_server: ServerProcess, tmp_path: Path) -> None:
    term = Terminal(slow_server.url, tmp_path / "history")
    try:
        term.prompt()
        started = time.monotonic()
        term.line("BACKUP DATABASE big TO 'bar';")
        term.expect(r"backup big → bar ━+\s+\d+%")  # drawn while it runs
        term.expect(r"backup big → bar ━+\s+100% 1/1 files")
        term.expect(r"job_id\s+backup_id\s+namespace\s+target\s+status.*\n─+\n"
                    r"job-\w+\s+bk-\w+\s+big\s+\S+\s+completed\s+1\s+20000")
        term.expect(r"\(1 row\)  Time: [\d.]+ ms")
        assert time.monotonic() - started > 1.0  # the throttle held it: the bar had time
    finally:
        term.close()
    _, body = slow_server.post("SELECT statement FROM system.jobs WHERE target LIKE '%bar'")
    assert "detached = TRUE" in body["results"][0]["rows"][0]["statement"]


@pytest.mark.parametrize(("answer", "inherited"), [("y", False), ("n", False), ("y", True)])
def test_ctrl_c_during_backup_asks_whether_to_kill(
        slow_server: ServerProcess, tmp_path: Path, answer: str, inherited: bool) -> None:
    """`inherited`: the console started with SIGINT ignored and blocked (a full
    test run once handed that down to it, and Ctrl-C went unheard)."""
    term = Terminal(slow_server.url, tmp_path / "history", sigint_ignored=inherited)
    try:
        term.prompt()
        term.line(f"BACKUP DATABASE big TO 'ctrl_c_{answer}{int(inherited)}';")
        term.expect(r"backup big → ctrl_c_\w+ ━+")
        term.send("\x03")  # Ctrl-C
        job_id = term.expect(r"Kill job (job-\w+)\? \[y/N\]").group(1)
        term.line(answer)
        if answer == "y":
            term.expect(rf"ERROR CANCELLED: .*\(job {job_id}\)")
            assert job_status(slow_server, job_id) == "cancelled"
        else:
            term.expect(rf"Job {job_id} keeps running")
            term.prompt()
            assert job_status(slow_server, job_id) in ("queued", "running")
            deadline = time.monotonic() + 20
            while job_status(slow_server, job_id) != "completed":
                assert time.monotonic() < deadline, "the job left running never finished"
                time.sleep(0.2)
    finally:
        term.close()
