"""How the console runs BACKUP/RESTORE/VERIFY (detached, then polled) and what
Ctrl-C does while it waits; plus completion. A scripted fake stands in for the
server so each job ending and each answer to the KILL question is exercised."""

from __future__ import annotations

import io
from typing import Any

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from rich.console import Console

from console.client import ApiError, Client, Names, Reply
from console.jobs import JobWatcher, as_detached
from console.jsontext import loads
from console.prompt import SqlCompleter


def test_backup_restore_verify_are_sent_detached() -> None:
    job = as_detached("backup database app to 'nightly' with (label = 'x')")
    assert job is not None
    assert job.sql == "BACKUP DATABASE app TO 'nightly' WITH (label = 'x', detached = TRUE)"
    assert job.label == "backup app → nightly"
    restore = as_detached("RESTORE DATABASE app FROM 'nightly' AS app2")
    assert restore is not None and restore.sql.endswith("AS app2 WITH (detached = TRUE)")
    verify = as_detached("VERIFY BACKUP 'b-1' IN 'nightly'")
    assert verify is not None and "detached = TRUE" in verify.sql
    tables = as_detached("BACKUP TABLE app.t, app.u TO 'nightly'")
    assert tables is not None and tables.label == "backup app.t, app.u → nightly"
    assert tables.sql == "BACKUP TABLE app.t, app.u TO 'nightly' WITH (detached = TRUE)"
    one = as_detached("RESTORE TABLE app.t FROM 'nightly' AS app.t2")
    assert one is not None and one.label == "restore app.t as app.t2 ← nightly"


@pytest.mark.parametrize("sql", [
    "BACKUP DATABASE app TO 'x' WITH (detached = true)",  # the user wants the job row
    "SELECT * FROM system.jobs",
    "SHOW BACKUPS",
    "BACKUP ALL TO 'x'",  # one row per namespace: shown as the server answers it
    "BACKUP DATABSE app TO 'x'",  # does not parse: the server reports it
])
def test_other_statements_are_sent_as_typed(sql: str) -> None:
    assert as_detached(sql) is None


def job_row(status: str, fraction: float, **extra: Any) -> dict[str, Any]:
    return {"status": status, "fraction_completed": fraction, "files_done": 1, "files_total": 4,
            "bytes_done": 1024, "bytes_total": 4096, "result": None, "error_message": None,
            **extra}


class FakeServer(Client):
    """Answers polls from a list of job rows; records every statement it is sent.
    `interrupt_at` raises KeyboardInterrupt on that poll, as Ctrl-C would."""

    def __init__(self, rows: list[dict[str, Any]], interrupt_at: int | None = None) -> None:
        super().__init__("http://fake")
        self.script = rows
        self.sent: list[str] = []
        self.polls = 0
        self.interrupt_at = interrupt_at
        self.killed = False

    def run(self, sql: str) -> Reply:
        self.sent.append(sql)
        if sql.startswith("KILL JOB"):
            self.killed = True
            return Reply(results=[{"columns": ["job_id", "status"], "rows": []}])
        self.polls += 1
        if self.polls == self.interrupt_at:
            raise KeyboardInterrupt
        if self.killed:
            row = job_row("cancelled", 0.5, error_message="job job-1 was cancelled")
        else:
            row = self.script[min(self.polls - 1, len(self.script) - 1)]
        return Reply(results=[{"columns": list(row), "rows": [row]}])


def watcher(server: FakeServer, answer: bool = True) -> tuple[JobWatcher, list[str], io.StringIO]:
    asked: list[str] = []

    def ask(question: str) -> bool:
        asked.append(question)
        return answer

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    return JobWatcher(server, console=console, ask=ask, interval=0), asked, screen


def test_completed_job_gives_its_result_row_and_a_full_bar() -> None:
    result = {"job_id": "job-1", "backup_id": "b-1", "rows": 2, "bytes": 4096}
    server = FakeServer([job_row("queued", 0.0), job_row("running", 0.4),
                         job_row("completed", 0.99, result=result)])
    w, asked, screen = watcher(server)
    outcome = w.watch("job-1", "backup app → nightly")
    assert outcome.result is not None and outcome.result["rows"] == [result]
    assert outcome.result["columns"] == ["job_id", "backup_id", "rows", "bytes"]
    assert server.polls == 3 and asked == []
    assert "job_id = 'job-1'" in server.sent[0]
    last = screen.getvalue().split("\r")[-1]
    assert "backup app → nightly" in last and "100%" in last and "4.0 KB" in last


def test_a_job_waiting_for_a_lock_says_what_it_waits_for() -> None:
    """A restore's install behind a busy table stands at 99%: the bar says why
    (`system.jobs.waiting_for`), and stops saying it once the wait is over."""
    server = FakeServer([job_row("running", 0.99, waiting_for="table app.t (held by an UPDATE)"),
                         job_row("completed", 1.0, result={"job_id": "job-1"})])
    w, _, screen = watcher(server)
    w.watch("job-1", "restore app ← nightly")
    assert "waiting_for" in server.sent[0]
    shown = screen.getvalue().split("\r")
    assert any("waiting for table app.t (held by an UPDATE)" in s for s in shown), shown
    assert "waiting for" not in shown[-1]


@pytest.mark.parametrize(("status", "code"), [("failed", "JOB_FAILED"),
                                              ("cancelled", "CANCELLED")])
def test_job_that_did_not_complete_is_an_error(status: str, code: str) -> None:
    server = FakeServer([job_row(status, 0.3, error_message="disk full")])
    outcome = watcher(server)[0].watch("job-1", "backup")
    assert outcome.error == ApiError(code, "disk full (job job-1)")


def test_ctrl_c_then_yes_kills_the_job_and_waits_for_it_to_stop() -> None:
    server = FakeServer([job_row("running", 0.2)] * 5, interrupt_at=2)
    w, asked, _ = watcher(server, answer=True)
    outcome = w.watch("job-1", "backup")
    assert asked == ["Kill job job-1? [y/N] (no: leave it running) "]
    assert "KILL JOB 'job-1'" in server.sent
    assert outcome.error is not None and outcome.error.code == "CANCELLED"


def test_ctrl_c_then_no_leaves_the_job_running() -> None:
    server = FakeServer([job_row("running", 0.2)] * 5, interrupt_at=2)
    w, asked, screen = watcher(server, answer=False)
    outcome = w.watch("job-1", "backup")
    assert outcome.detached and outcome.error is None and outcome.result is None
    assert not any(s.startswith("KILL") for s in server.sent)
    assert "keeps running" in screen.getvalue()


def test_poll_failure_is_reported() -> None:
    class Down(FakeServer):
        def run(self, sql: str) -> Reply:
            return Reply(error=ApiError("UNAVAILABLE", "cannot reach http://fake"))

    outcome = watcher(Down([]))[0].watch("job-1", "backup")
    assert outcome.error is not None and outcome.error.code == "UNAVAILABLE"


class FixedNames(Names):
    def __init__(self) -> None:
        super().__init__(Client("http://fake"))
        self.namespaces = ["app", "analytics"]
        self.tables = {"app": ["notes", "news"], "system": ["jobs", "backups"]}

    def refresh(self) -> None:
        pass


def complete(text: str) -> list[str]:
    completer = SqlCompleter(FixedNames(), lambda: ["\\dt", "\\dn", "\\q"])
    found = completer.get_completions(Document(text), CompleteEvent(completion_requested=True))
    return [c.text for c in found]


def test_completes_keywords_in_the_case_typed() -> None:
    assert "SELECT" in complete("SEL") and "BACKUP" in complete("BACK")
    assert "select" in complete("sel")


def test_completes_namespaces_tables_and_commands() -> None:
    assert complete("SELECT * FROM ana") == ["analytics"]
    assert complete("SELECT * FROM a") == ["add", "all", "alter", "and", "archive", "archives",
                                            "archiving", "as", "asc", "attach", "avg", "app",
                                            "analytics"]
    assert complete("SELECT * FROM app.n") == ["notes", "news"]
    assert complete("SELECT * FROM system.j") == ["jobs"]
    assert complete("\\d") == ["\\dt", "\\dn"]
    assert complete("SELECT * FROM nope.") == []


def test_label_and_polled_status_are_text_never_markup_or_escapes() -> None:
    """A target typed as 'n[/]' was read as rich markup: a MarkupError
    traceback, and the BACKUP ran on unwatched; '[link=…]' made a hyperlink.
    A server's status `running<ESC>]0;TITLE<ESC>\\` set the terminal's title."""
    job = as_detached("BACKUP DATABASE app TO 'n[/]b[link=http://evil.example/]x'")
    assert job is not None
    hostile = "running\x1b]0;OWNED-TITLE\x1b\\[/]"
    result = {"job_id": "job-1", "status": "completed"}
    server = FakeServer([job_row(hostile, 0.5, files_total=None, bytes_total=None),
                         job_row(hostile, 0.7, files_total="[/]\x1b[2J", bytes_total=None),
                         job_row("completed", 1.0, result=result)])
    w, _, screen = watcher(server)
    outcome = w.watch("job-1", job.label)
    assert outcome.result is not None and outcome.result["rows"] == [result]
    drawn = screen.getvalue()
    assert "backup app → n[/]b[link=http://evil.example/]x" in drawn
    assert "running\\x1b]0;OWNED-TITLE\\x1b\\[/]" in drawn and "[/]\\x1b[2J" in drawn
    assert "\x1b]" not in drawn and "\x1b[2J" not in drawn  # no OSC (title, link), no clear
    # a job id the server made up is shown escaped in the question and the notice
    server = FakeServer([job_row("running", 0.2)] * 5, interrupt_at=2)
    w, asked, screen = watcher(server, answer=False)
    assert w.watch("job\x1b[2J[/]", "backup").detached
    assert asked == ["Kill job job\\x1b[2J[/]? [y/N] (no: leave it running) "]
    assert "Job job\\x1b[2J[/] keeps running" in screen.getvalue()


def test_a_bar_that_cannot_be_drawn_does_not_stop_the_watch() -> None:
    """Drawing fails (stderr gone, a rich error): the bar stops, the polls go on
    until the job ends and its result row is returned."""
    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(5, "Input/output error")

    result = {"job_id": "job-1", "backup_id": "b-1"}
    server = FakeServer([job_row("running", 0.2), job_row("running", 0.6),
                         job_row("completed", 1.0, result=result)])
    console = Console(file=Gone(), force_terminal=True, width=100, color_system=None)
    outcome = JobWatcher(server, console=console, ask=lambda q: False, interval=0).watch(
        "job-1", "backup app → nightly")
    assert outcome.result is not None and outcome.result["rows"] == [result]
    assert server.polls == 3


def test_a_poll_read_with_numbers_kept_as_written_still_draws() -> None:
    """The answer is read keeping each number's text (console/jsontext.py):
    `5E-1` and `4.096E3` are not Python floats, the bar still counts them."""
    polled = loads('{"status":"running","fraction_completed":5E-1,"files_done":1,'
                   '"files_total":4,"bytes_done":-0,"bytes_total":4.096E3,"result":null}')
    done = {**polled, "status": "completed", "result": loads('{"job_id":"job-1","rows":1E2}')}
    server = FakeServer([polled, done])
    w, _, screen = watcher(server)
    assert w.poll("job-1").fraction == 0.5  # type: ignore[union-attr]
    outcome = w.watch("job-1", "backup")
    assert outcome.result is not None and str(outcome.result["rows"][0]["rows"]) == "1E2"
    assert "0 B/4.0 KB" in screen.getvalue()
