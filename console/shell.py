"""`cairn sql`: the terminal console (contract §1).

`-c SQL` and `-f FILE` (or SQL piped on stdin) run and exit, non-zero on the
first error; otherwise an interactive prompt. Statements are sent one by one
so each gets its own table and time, and so BACKUP/RESTORE/VERIFY can be run
detached and followed with a progress bar (jobs.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlgrammar import SqlSyntaxError
from sqlgrammar.splitter import Chunk, split_script

from .client import ApiError, Client, Names, quote
from .jobs import JobWatcher, as_detached
from .output import Printer, Source

EXIT_OK, EXIT_SQL_ERROR, EXIT_UNUSABLE = 0, 1, 2
_DDL = ("create", "drop", "alter", "restore")  # statements after which names change


@dataclass(frozen=True)
class Command:
    """A console command (`\\dt`, `\\q`, ...): its usage line, help and action."""

    usage: str
    help: str
    run: Callable[[Shell, str], bool]


def _sql(bare: str, with_arg: str | None = None) -> Callable[[Shell, str], bool]:
    """A command that runs SQL: `bare` alone, or `with_arg` when given an argument."""
    def run(shell: Shell, arg: str) -> bool:
        return shell.run_text(with_arg.format(arg=arg) if arg and with_arg else bare)
    return run


def _help(shell: Shell, arg: str) -> bool:
    width = max(len(c.usage) for c in COMMANDS.values())
    seen: set[str] = set()
    lines = []
    for cmd in COMMANDS.values():
        if cmd.usage not in seen:
            seen.add(cmd.usage)
            lines.append(f"  {cmd.usage.ljust(width)}  {cmd.help}")
    shell.printer.notice("Console commands (SQL statements end with ;):\n" + "\n".join(lines))
    return True


def _quit(shell: Shell, arg: str) -> bool:
    shell.quitting = True
    return True


def _use(shell: Shell, arg: str) -> bool:
    # A-Z folded only, as the server folds names: str.lower() made U+212A KELVIN SIGN 'k'
    shell.client.namespace = "".join(c.lower() if c.isascii() else c for c in arg) or None
    shell.printer.notice(f"default namespace: {shell.client.namespace or '(none)'}")
    return True


def _format(shell: Shell, arg: str) -> bool:
    if arg:
        try:
            shell.printer = Printer(arg, shell.printer.out, shell.printer.err,
                                    timing=shell.printer.timing)
        except ValueError as exc:
            shell.printer.error(ApiError("INVALID_ARGUMENT", str(exc)))
            return False
    shell.printer.notice(f"output format: {shell.printer.format}")
    return True


def _timing(shell: Shell, arg: str) -> bool:
    shell.printer.timing = {"on": True, "off": False}.get(arg.lower(), not shell.printer.timing)
    shell.printer.notice(f"timing is {'on' if shell.printer.timing else 'off'}")
    return True


def _include(shell: Shell, arg: str) -> bool:
    return shell.run_file(arg) == EXIT_OK


def _kill(shell: Shell, arg: str) -> bool:
    return shell.run_text(f"KILL JOB {quote(arg.strip(chr(39)))}")


def _conninfo(shell: Shell, arg: str) -> bool:
    c = shell.client
    who = "token" if c.token else (f"user {c.user}" if c.user else "no user")
    shell.printer.notice(f"{c.url} as {who}, namespace {c.namespace or '(none)'}")
    return True


_JOBS = ("SELECT job_id, job_type, status, namespace, target, "
         "round(fraction_completed * 100, 1) AS pct, error_message "
         "FROM system.jobs ORDER BY created_at DESC LIMIT 15")
_HELP = Command("\\?", "list these commands", _help)
COMMANDS: dict[str, Command] = {
    "\\?": _HELP,
    "\\help": _HELP,
    "\\q": Command("\\q", "quit (also Ctrl-D, exit)", _quit),
    "\\dn": Command("\\dn", "list namespaces", _sql("SHOW NAMESPACES")),
    "\\dt": Command("\\dt [ns]", "list tables (of one namespace)",
                    _sql("SHOW TABLES", "SHOW TABLES IN {arg}")),
    "\\d": Command("\\d ns.table", "describe a table", _sql("SHOW TABLES", "DESCRIBE TABLE {arg}")),
    "\\use": Command("\\use [ns]", "set (or clear) the default namespace", _use),
    "\\c": Command("\\c [ns]", "same as \\use", _use),
    "\\jobs": Command("\\jobs", "the 15 newest jobs", _sql(_JOBS)),
    "\\backups": Command("\\backups [ns]", "list backups (of one namespace)",
                         _sql("SHOW BACKUPS", "SHOW BACKUPS FOR DATABASE {arg}")),
    "\\archives": Command("\\archives", "continuous archiving: status and lag",
                           _sql("SHOW ARCHIVES")),
    "\\kill": Command("\\kill job_id", "KILL JOB", _kill),
    "\\i": Command("\\i file", "run the SQL in a file", _include),
    "\\format": Command("\\format [table|json|csv]", "show or set the output format", _format),
    "\\timing": Command("\\timing [on|off]", "show the time each statement took", _timing),
    "\\conninfo": Command("\\conninfo", "server, identity and namespace", _conninfo),
}


class Shell:
    """Runs input (SQL or \\commands) against one server and prints what comes back."""

    def __init__(self, client: Client, printer: Printer,
                 watcher: JobWatcher | None = None) -> None:
        self.client = client
        self.printer = printer
        self.watcher = watcher or JobWatcher(client)
        self.names = Names(client)
        self.quitting = False

    def run_input(self, text: str) -> bool:
        """One line or buffer from the user: a \\command, or SQL statements."""
        stripped = text.strip()
        if stripped.lower() in ("exit", "quit"):
            return _quit(self, "")
        if stripped.startswith("\\"):
            name, _, arg = stripped.partition(" ")
            command = COMMANDS.get(name.lower().rstrip(";"))
            if command is None:
                self.printer.error(ApiError("INVALID_ARGUMENT",
                                            f"unknown command {name}; \\? lists them"))
                return False
            return command.run(self, arg.strip().rstrip(";").strip())
        return self.run_text(text)

    def run_text(self, text: str, name: str | None = None) -> bool:
        """Run every statement in order; stop at the first that fails."""
        try:
            for chunk in split_script(text):
                if not self.run_statement(chunk, Source(text, name)):
                    return False
        except SqlSyntaxError as exc:  # an unterminated string or comment
            self.printer.error(ApiError("PARSE_ERROR", exc.message, exc.statement, exc.line,
                                        exc.column), Source(text, name=name))
            return False
        return True

    def run_file(self, path: str) -> int:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.printer.error(ApiError("INVALID_ARGUMENT", f"cannot read {path}: {exc}"))
            return EXIT_UNUSABLE
        return EXIT_OK if self.run_text(text, None if path == "-" else path) else EXIT_SQL_ERROR

    def run_statement(self, chunk: Chunk, source: Source) -> bool:
        """Send one statement; a BACKUP/RESTORE/VERIFY goes detached and is watched.

        The statement is sent after as many newlines and spaces as precede it in
        the input, so the server's line and column (and its message) point into
        what the user typed, not into the one statement."""
        job = as_detached(chunk.text)
        pad = "\n" * (chunk.line - 1) + " " * (chunk.column - 1)
        started = time.perf_counter()
        reply = self.client.run(pad + (job.sql if job else chunk.text))
        if reply.error is not None:
            error = reply.error
            if job and error.line is not None:  # a position in the rewritten text
                error = ApiError(error.code, error.message, error.statement, chunk.line,
                                 chunk.column)
            self.printer.error(error, source)
            return False
        if chunk.text.split(None, 1)[0].lower() in _DDL:
            self.names.invalidate()
        result = reply.results[-1] if reply.results else {"columns": [], "rows": []}
        rows = result.get("rows") or []
        if job and len(rows) == 1 and rows[0].get("job_id"):
            outcome = self.watcher.watch(str(rows[0]["job_id"]), job.label)
            if outcome.error is not None:
                self.printer.error(outcome.error)
                return False
            if outcome.result is None:  # left running in the background
                return True
            result = outcome.result
        self.printer.result(result, (time.perf_counter() - started) * 1000)
        # A CSV cut at the server's bounds is an incomplete export: a failure
        # for `-c`/`-f` (the warning is on stderr), not exit status 0.
        return not (result.get("truncated") and self.printer.format == "csv")

    def prompt(self) -> str:
        return f"cairn:{self.client.namespace}> " if self.client.namespace else "cairn> "

    def repl(self) -> int:
        """The interactive loop; Ctrl-C drops the current input, Ctrl-D quits."""
        from .prompt import SqlCompleter, make_session

        listen_for_ctrl_c()

        session = make_session(SqlCompleter(self.names, lambda: COMMANDS))
        self.printer.notice(f"Cairn console on {self.client.url}. End statements with ; "
                            "— \\? lists commands, \\q quits.")
        while not self.quitting:
            try:
                text = session.prompt(self.prompt())
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not text.strip():
                continue
            try:
                self.run_input(text)
            except KeyboardInterrupt:
                self.printer.notice("Cancelled (the server may still finish the statement).")
        return EXIT_OK


def listen_for_ctrl_c() -> None:
    """Ctrl-C raises KeyboardInterrupt even when the console was started with
    SIGINT ignored or blocked (inherited from a parent: `nohup`, a test runner's
    worker), since the console's answer to it (drop the input, offer KILL JOB
    during a backup) is how a person stops what they started."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run(args: argparse.Namespace) -> int:
    """Run `cairn sql` with the options `console.add_arguments` defined."""
    client = Client(args.url, token=args.token or os.environ.get("CAIRN_TOKEN"),
                    user=args.user, namespace=args.namespace, timeout=args.timeout or None)
    shell = Shell(client, Printer(args.format))
    try:
        if args.command_sql is not None:
            return EXIT_OK if shell.run_input(args.command_sql) else EXIT_SQL_ERROR
        if args.file:
            return shell.run_file(args.file)
        if not sys.stdin.isatty():
            return shell.run_file("-")
        return shell.repl()
    except KeyboardInterrupt:
        return 130
