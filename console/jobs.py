"""BACKUP, RESTORE and VERIFY in the console: run detached, watched with a progress bar.

A waiting HTTP request says nothing until the job ends, so the console sends the
statement with `detached = true` and polls `system.jobs` for the fraction done,
the same way any other client watches a job (contract §4). Ctrl-C while it
runs asks whether to KILL the job or leave it running in the background."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from sqlgrammar import SqlInvalid, SqlSyntaxError, ast, parse_one, to_sql

from . import jsontext
from .client import ApiError, Client, quote
from .output import one_line

WATCHED = (ast.BackupDatabase, ast.RestoreDatabase, ast.VerifyBackup, ast.BackupTables,
           ast.RestoreTable)
TERMINAL = ("completed", "failed", "cancelled")
_NUMBER = (int, float, jsontext.JsonNumber)
POLL = ("SELECT status, fraction_completed, files_done, files_total, bytes_done, "
        "bytes_total, rows, result, error_message, waiting_for FROM system.jobs "
        "WHERE job_id = {}")


@dataclass(frozen=True)
class JobStatement:
    """A statement the console runs detached: what to send and how to label the bar."""

    sql: str
    label: str


@dataclass
class JobState:
    """The job's row in system.jobs as last polled."""

    status: str = "queued"
    fraction: float = 0.0
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class JobOutcome:
    """How watching ended: a result row, an error, or left running (`detached`)."""

    result: dict[str, Any] | None = None
    error: ApiError | None = None
    detached: bool = False


def as_detached(sql: str) -> JobStatement | None:
    """The statement rewritten with `detached = true`, if it is one the console watches.

    None for anything else, for text that does not parse (the server then gives
    the real error with its position) and when the user asked for detached
    themselves (they get the `{job_id, status}` row they asked for)."""
    try:
        stmt = parse_one(sql)
    except (SqlSyntaxError, SqlInvalid):
        return None
    if not isinstance(stmt, WATCHED):
        return None
    if any(name.lower() == "detached" for name, _ in stmt.options):
        return None
    detached = replace(stmt, options=(*stmt.options, ("detached", True)))
    return JobStatement(to_sql(detached), _label(stmt))


def _label(stmt: ast.Statement) -> str:
    if isinstance(stmt, ast.BackupDatabase):
        return f"backup {stmt.namespace} → {stmt.target}"
    if isinstance(stmt, ast.RestoreDatabase):
        into = f" as {stmt.as_name}" if stmt.as_name else ""
        return f"restore {stmt.namespace}{into} ← {stmt.target}"
    if isinstance(stmt, ast.VerifyBackup):
        return f"verify {stmt.backup_id}"
    if isinstance(stmt, ast.BackupTables):
        return f"backup {', '.join(_ref(t) for t in stmt.tables)} → {stmt.target}"
    if isinstance(stmt, ast.RestoreTable):
        into = f" as {_ref(stmt.as_table)}" if stmt.as_table else ""
        return f"restore {_ref(stmt.table)}{into} ← {stmt.target}"
    return type(stmt).__name__


def _ref(t: ast.TableRef) -> str:
    return f"{t.namespace}.{t.name}" if t.namespace else t.name


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _detail(row: dict[str, Any]) -> str:
    """Files and bytes done, as the server's poll says them, and what the job
    waits for (a restore's install behind a busy table: why it stands still
    at 99%), escaped by the caller."""
    parts = []
    if row.get("files_total"):
        parts.append(f"{row.get('files_done') or 0}/{row['files_total']} files")
    if row.get("bytes_total"):
        parts.append(f"{_bytes(row.get('bytes_done') or 0)}/{_bytes(row['bytes_total'])}")
    if row.get("waiting_for"):
        parts.append(f"waiting for {row['waiting_for']}")
    return "  ".join(parts)


def _bytes(value: Any) -> str:
    """A byte count the server gave: in KB, MB, ... when it is a number."""
    if isinstance(value, (int, float, jsontext.JsonNumber)) and not isinstance(value, bool):
        return human_bytes(float(value))
    return str(value)


def ask_on_terminal(question: str) -> bool:
    """Ask y/N on the terminal; with no terminal to ask, the interrupt means stop: kill."""
    if not sys.stdin.isatty():
        return True
    try:
        return input(question).strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):
        print()
        return False


class JobWatcher:
    """Follows one job in system.jobs until it ends, drawing its progress."""

    def __init__(self, client: Client, *, console: Console | None = None,
                 ask: Callable[[str], bool] = ask_on_terminal, interval: float = 0.2,
                 show_progress: bool | None = None) -> None:
        self.client = client
        self.console = console or Console(stderr=True)
        self.ask = ask
        self.interval = interval
        self.show_progress = self.console.is_terminal if show_progress is None else show_progress

    def watch(self, job_id: str, label: str) -> JobOutcome:
        """Poll until the job ends; Ctrl-C offers KILL JOB or leaving it running.

        The label (a target as typed) and what the server's polls say are text,
        never rich markup ('[/]' raised a MarkupError and left the job running
        unwatched), with control characters escaped; a bar that cannot be
        drawn stops drawing, and the polls go on to the job's end."""
        columns = (TextColumn("{task.description}", markup=False), BarColumn(),
                   TaskProgressColumn(), TextColumn("{task.fields[detail]}", markup=False),
                   TimeElapsedColumn())
        bar = _Bar(Progress(*columns, console=self.console, disable=not self.show_progress,
                            auto_refresh=False))
        task = bar.progress.add_task(one_line(label), total=1.0, detail="")
        shown = one_line(job_id)
        killed = False
        while True:
            bar.draw(bar.progress.start)
            try:
                state = self._follow(job_id, bar, task)
            except KeyboardInterrupt:
                bar.draw(bar.progress.stop)
                if killed:
                    continue  # already killed: keep waiting for it to stop
                if not self.ask(f"Kill job {shown}? [y/N] (no: leave it running) "):
                    self.console.print(Text(f"Job {shown} keeps running; \\jobs shows it."),
                                       highlight=False)
                    return JobOutcome(detached=True)
                killed = True
                reply = self.client.run(f"KILL JOB {quote(job_id)}")
                if reply.error is not None and reply.error.code != "INVALID_ARGUMENT":
                    return JobOutcome(error=reply.error)  # INVALID_ARGUMENT: it just ended
                continue
            bar.draw(bar.progress.stop)
            if isinstance(state, ApiError):
                return JobOutcome(error=state)
            return outcome(job_id, state)

    def _follow(self, job_id: str, bar: _Bar, task: TaskID) -> JobState | ApiError:
        while True:
            state = self.poll(job_id)
            if isinstance(state, ApiError):
                return state
            done = 1.0 if state.status == "completed" else state.fraction
            detail = one_line(_detail(state.row) or state.status)
            bar.draw(partial(bar.progress.update, task, completed=done, detail=detail))
            bar.draw(bar.progress.refresh)
            if state.done:
                return state
            time.sleep(self.interval)

    def poll(self, job_id: str) -> JobState | ApiError:
        reply = self.client.run(POLL.format(quote(job_id)))
        if reply.error is not None:
            return reply.error
        rows = reply.results[-1].get("rows") if reply.results else None
        if not rows:
            return ApiError("NOT_FOUND", f"job {job_id} is not in system.jobs")
        row = rows[0]
        fraction = row.get("fraction_completed")
        return JobState(str(row.get("status") or "queued"),
                        float(fraction) if isinstance(fraction, _NUMBER) else 0.0, row)


class _Bar:
    """The progress bar, drawn until drawing fails once (a broken terminal, a
    rich error): from then on it is left alone and only the polls go on."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.broken = False

    def draw(self, step: Callable[[], object]) -> None:
        if self.broken:
            return
        try:
            step()
        except Exception:  # the job is watched to its end regardless
            self.broken = True
            try:
                self.progress.live.transient = True
                self.progress.stop()
            except Exception:  # already failing: nothing more to draw
                pass


def outcome(job_id: str, state: JobState) -> JobOutcome:
    """The ended job as the console reports it: its result row, or an error."""
    row = state.row
    if state.status == "completed":
        return JobOutcome(result=result_of(row.get("result"), job_id))
    message = str(row.get("error_message") or f"job {job_id} {state.status}")
    code = "CANCELLED" if state.status == "cancelled" else "JOB_FAILED"
    return JobOutcome(error=ApiError(code, f"{message} (job {job_id})"))


def result_of(value: Any, job_id: str) -> dict[str, Any]:
    """The job's result row (system.jobs.result) shaped like an /api/sql result."""
    if isinstance(value, str):
        try:
            value = jsontext.loads(value)
        except ValueError:
            value = {"result": value}
    if not isinstance(value, dict) or not value:
        value = {"job_id": job_id, "status": "completed"}
    schema = [{"name": k, "type": _type_of(v)} for k, v in value.items()]
    return {"columns": list(value), "schema": schema, "rows": [value], "row_count": 1,
            "message": None}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, (float, jsontext.JsonNumber)):
        return "DOUBLE"
    return "JSON" if isinstance(value, (dict, list)) else "TEXT"
