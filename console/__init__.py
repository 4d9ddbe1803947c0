"""`cairn sql`: the terminal console, a client of the HTTP API (contract §1).

It talks to a running server over HTTP only and imports nothing of `server`,
`catalog` or `storage`; of Cairn it uses `sqlgrammar` alone (to split scripts,
complete keywords and send BACKUP/RESTORE/VERIFY detached). The `cairn`
command (server/cli.py) hands `cairn sql` here; this module stays light so that
`cairn serve` does not load the console's libraries.
"""

from __future__ import annotations

import argparse
import gc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cairn sql`."""
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--token")
    parser.add_argument("--user")
    parser.add_argument("--namespace", "-n")
    parser.add_argument("-c", dest="command_sql", help="run this SQL and exit")
    parser.add_argument("-f", dest="file", help="run the SQL in this file and exit")
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    parser.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help="give up on a request the server has not fully answered in this time "
             f"(default {DEFAULT_TIMEOUT:g}; 0 waits forever)")


DEFAULT_TIMEOUT = 300.0  # per request: a watched BACKUP is many short polls, not one request


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 1e6:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1000000 seconds: {text!r}")
    return value


def main(args: argparse.Namespace) -> int:
    """Run `cairn sql`: `-c`/`-f`/stdin run and exit, otherwise an interactive prompt."""
    # The collector's ~150 passes over what the imports leave (kept for the
    # process's life; ~700 objects of garbage, freed by a later pass) were
    # ~0.08 s of the ~0.6 s of CPU a `cairn sql -c` takes: off for the imports.
    collecting = gc.isenabled()
    gc.disable()
    try:
        from .shell import run
    finally:
        if collecting:
            gc.enable()
    return run(args)
