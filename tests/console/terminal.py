"""A pseudo-terminal driver for the console: pexpect spawns `cairn sql`, and
`Terminal.expect` matches on the output with escape sequences removed, since
prompt_toolkit and rich paint with cursor moves and colours between the words."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pexpect

ANSI = re.compile(
    r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erases
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: window titles
    r"|\x1b[()][0-9A-Za-z]|\x1b[=>78NOMc]")  # charsets, keypad modes
ROOT = Path(__file__).resolve().parents[2]


def plain(text: str) -> str:
    """Terminal output as the words a person reads: no escapes, carriage returns
    or blanks at the ends of lines."""
    return re.sub(r"[ \t]+\n", "\n", ANSI.sub("", text).replace("\r", ""))


def _ignore_sigint() -> None:
    """In the child before exec: SIGINT ignored and blocked, as a parent (nohup,
    a test runner's worker) may hand it down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


class Terminal:
    """`cairn sql` on a 160x40 pseudo-terminal."""

    def __init__(self, url: str, history: Path, *extra: str, width: int = 160,
                 sigint_ignored: bool = False) -> None:
        env = {**os.environ, "CAIRN_HISTORY": str(history), "PROMPT_TOOLKIT_NO_CPR": "1",
               "TERM": "xterm-256color", "COLUMNS": str(width), "LINES": "40"}
        env.pop("NO_COLOR", None)
        self.child = pexpect.spawn(
            sys.executable, ["-m", "server.cli", "sql", "--url", url, *extra], env=env,
            dimensions=(40, width), encoding="utf-8", cwd=str(ROOT), timeout=15,
            preexec_fn=_ignore_sigint if sigint_ignored else None)
        self.raw = ""
        self.seen = 0  # how much of plain(raw) earlier expects consumed

    @property
    def screen(self) -> str:
        return plain(self.raw)

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Wait until the new output matches `pattern` (a regex); consume up to the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        ended = False
        while True:
            match = regex.search(self.screen, self.seen)
            if match:
                self.seen = match.end()
                return match
            if ended or time.monotonic() > deadline:
                why = "console exited" if ended else "timed out"
                tail = self.screen[self.seen:][-3000:]
                raise AssertionError(f"{why}, no {pattern!r} in:\n{tail}")
            try:
                self.raw += self.child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                ended = True

    def prompt(self) -> None:
        self.expect(r"cairn(:\w+)?>")

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def line(self, text: str) -> None:
        """Type a line and press Enter."""
        self.child.send(text + "\r")

    def close(self) -> None:
        self.child.close(force=True)
