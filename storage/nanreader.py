"""Which REAL/DOUBLE columns of an older data file hold NaN, read by DuckDB in
a child process (nanstats.py).

DuckDB is the reader whose filters the statistics mislead, so it says which
columns hold NaN. But a data file may be damaged, and a reader that ends the
process on a damaged file (pyarrow does on some statistics) would, in the
server, stop every start of it, where the release before only failed that
table's queries. So the files are read by `python -m storage.nanreader`,
one request a line on its stdin, one JSON answer a line on its stdout; a
child that dies on a file makes that file unreadable (`Unreadable`) and the
next file starts a new child. One child serves a whole pass (its start,
~0.3 s, is paid once), and it is started only for a file that needs it.

In the child: a private in-memory DuckDB, one thread, a small memory limit,
its folding by statistics off (it answered `bool_or(isnan(x))` false from
the very min and max that leave the NaN out); no user SQL reaches it."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "threads": 1, "memory_limit": "512MB", "preserve_insertion_order": False}
_NOT_BY_STATISTICS = "statistics_propagation,filter_pushdown,expression_rewriter"


READ_SECONDS = 600.0  # a file whose columns are not read within this is unreadable
# Errors of the reader that say nothing sure of the file: read again at the next start.
PASSING = frozenset({"OutOfMemoryException", "MemoryError"})


class Unreadable(Exception):
    """DuckDB could not read the file (`passing`: the reader process ended
    or could not start, which says nothing sure of the file: an operator or
    the out-of-memory killer may have ended it, so the file is read again at
    the next start)."""

    def __init__(self, message: str, passing: bool = False) -> None:
        super().__init__(message)
        self.passing = passing


def _connect() -> Any:
    import duckdb

    con = duckdb.connect(config=_CONFIG)
    con.execute(f"SET disabled_optimizers = '{_NOT_BY_STATISTICS}'")
    return con


def holding_nan(path: str, wanted: list[int], con: Any = None) -> list[int]:
    """Of the leaf columns `wanted` (flat: leaf i is column #i+1), those
    holding a NaN: read together, or, if DuckDB runs out of memory so (a row
    group of an older release held 1,000,000 rows whatever their width: 40
    DOUBLE columns asked for 300 MB at once), one column at a time. Runs in
    the child, on `con` (the child's one connection: a new one took 13 of a
    file's 18 ms), else on a connection of its own."""
    import duckdb

    if con is None:
        with _connect() as own:
            return holding_nan(path, wanted, own)

    def query(columns: list[int]) -> list[int]:
        found = con.execute(
            "SELECT " + ", ".join(f"bool_or(isnan(#{i + 1}))" for i in columns)
            + " FROM read_parquet(?)", [path]).fetchall()
        return [i for i, nan in zip(columns, found[0] if found else (), strict=True) if nan]

    try:
        return query(wanted)
    except duckdb.OutOfMemoryException:
        if len(wanted) == 1:
            raise
    return [i for c in wanted for i in query([c])]


def refusal(answer: dict[str, Any]) -> Unreadable:
    """The child's error answer as Unreadable: passing for what says nothing
    sure of the file (out of memory)."""
    return Unreadable(str(answer["error"]), passing=answer.get("kind") in PASSING)


class NanReader:
    """The parent's handle on one child (started on first use). Not
    thread-safe: one pass or one restore at a time holds it."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> NanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def holding_nan(self, path: Path, wanted: list[int]) -> set[int]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps({"path": str(path), "wanted": wanted}) + "\n")
            proc.stdin.flush()
            ready = select.select([proc.stdout], [], [], READ_SECONDS)[0]
            line = proc.stdout.readline() if ready else None
        except OSError:
            line = ""
        if line is None:  # a file DuckDB reads no end of: its queries would not end either
            self.close(kill=True)
            raise Unreadable(f"its columns were not read within {READ_SECONDS:g} s")
        if not line:
            self.close(kill=True)
            raise Unreadable(f"the file's reader process ended (exit {proc.returncode})",
                             passing=True)
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise refusal(answer)
        return {int(i) for i in answer["found"]}

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # `-P`: no module of the working directory is imported (a json.py
        # there made every file unreadable, and the pass marked them done).
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "storage.nanreader"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
            close_fds=True, process_group=0)
        return self._proc

    def close(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    con = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if con is None:
                con = _connect()
            answer: dict[str, Any] = {"found": holding_nan(request["path"], request["wanted"],
                                                           con)}
        except Exception as exc:  # noqa: BLE001 - the file's own problem, told to the parent
            if con is not None:  # a fresh connection for the next file, whatever this did
                con.close()
                con = None
            answer = {"error": f"{type(exc).__name__}: {exc}"[:1000], "kind": type(exc).__name__}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
