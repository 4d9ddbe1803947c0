"""Server logs: `[log] format = "text" | "json"` and `level`, and the event lines
operators read (one per job start and end, one per slow request).

An event is a name and fields. In text format it is one line
`<time> <LEVEL> <logger>: <event> key=value ...`; in JSON format one object per
line with `ts`, `level`, `logger`, `message`, `event` and the fields as keys.
Fields are chosen by the callers here, never raw statements or request bodies:
a job line carries ids, counters and the error message, a slow-request line the
statement kind and its text with every string literal replaced by `'?'`, so
passphrases and tokens never reach a log."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from catalog import Job
from catalog.diskerrors import from_oserror, read_shortage
from catalog.errors import CairnError
from sqlgrammar.secrets import hide_secrets

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FIELDS = "cairn_fields"
_EVENT = "cairn_event"
# A comment (group 1: dropped from the shape; an apostrophe in `-- don't`
# opened a string that ended at a passphrase's first quote, which was logged),
# an E-string (backslash escapes), a string literal ('' inside, unclosed at
# the end) or a dollar-quoted one ($tag$ ... $tag$, or to the end when not
# closed), as linear patterns: the old `'(?:[^']|'')*'` took a second for a 9
# MB literal, on the event loop. The first that starts leftmost wins, as in
# the splitter; a nested block comment ends at its first `*/` here, so the
# secrets are hidden first (below), whatever this reads as a string.
_STRING = re.compile(r"(--[^\n\r]*|/\*.*?(?:\*/|\Z))"
                     r"|(?<![A-Za-z0-9_$\u0080-\U0010ffff])[eE]'[^'\\]*"
                     r"(?:(?:\\.|'')[^'\\]*)*'?|'[^']*(?:''[^']*)*'?"
                     r"|\$([A-Za-z0-9_\u0080-\U0010ffff]*)\$.*?(?:\$\2\$|\Z)", re.DOTALL)
SHAPE_LIMIT = 300
SHAPE_INPUT = 65_536  # characters of a statement shaped (the rest is never logged)


# Line breaks and other control characters (C0 but tab, DEL, C1, the Unicode
# line and paragraph separators) in a text log line's message.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, with every control character of the message written as an
    escape (`\\n`, `\\x1b`): a message may quote what a client sent (a
    target's name, a DuckDB error naming a column) and must not start a line
    of its own that reads like the server's. A traceback stays as it is."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return _CONTROL.sub(_escape, super().formatMessage(record))


def _escape(m: re.Match[str]) -> str:
    return {"\n": "\\n", "\r": "\\r"}.get(m.group(), m.group().encode("unicode_escape").decode())


_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029]")


def _json_escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; event fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, _EVENT, None)
        if event is not None:
            out["event"] = event
            for key, value in getattr(record, _FIELDS, {}).items():
                if key not in out:
                    out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # json.dumps escapes C0 controls only: C1 controls (a terminal's CSI,
        # OSC) and U+2028/U+2029 (where splitlines() and shippers cut a line)
        # become \u escapes too, as the text format escapes them.
        return _JSON_RAW.sub(_json_escape, json.dumps(out, default=str, ensure_ascii=False))


def setup(fmt: str = "text", level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to `stream` (stderr) in the chosen format; replaces
    handlers set up before (so `cairn serve` can apply the config file's choice)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server.filters):
        server.addFilter(MalformedRequests())
    return handler


class MalformedRequests(logging.Filter):
    """aiohttp logs every malformed request (a line or header too long, bad
    chunking, a body that does not decompress; the last also as an "Unhandled
    exception" once the handler has answered 400) as an ERROR with a traceback, and
    its message quotes the client's bytes, which may be a token's. Any client
    can send them, so each becomes one WARNING naming the error's kind."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "malformed HTTP request from %s: %s (%s)", (
                peer, type(exc).__name__, getattr(exc, "code", 400))
            record.exc_info = record.exc_text = None
        return True


def printable(text: str) -> str:
    """`text` as valid UTF-8: a lone surrogate (JSON lets a client send one) is
    written as its `\\udXXX` escape, so no log line fails to encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _text(value: Any) -> str:
    s = str(value)
    if not s or any(c.isspace() or c in "\"=" for c in s):
        return json.dumps(s, ensure_ascii=False)
    return s


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log event `name` with `fields` (None values left out)."""
    if not logger.isEnabledFor(level):
        return
    shown = {k: printable(v) if isinstance(v, str) else v
             for k, v in fields.items() if v is not None}
    text = " ".join([name, *(f"{k}={_text(v)}" for k, v in shown.items())])
    logger.log(level, "%s", text, extra={_EVENT: name, _FIELDS: shown})


def statement_shape(sql: str) -> str:
    """The SQL with string literals replaced by '?' (they may hold passphrases;
    one still open where the text ends is hidden to the end), comments
    dropped, and the value of `encryption_passphrase` however it is written, whitespace
    collapsed and cut to SHAPE_LIMIT characters. Only the first SHAPE_INPUT
    characters are read."""
    # secrets first, so no comment or string before one can hide where it starts
    hidden = hide_secrets(printable(sql[:SHAPE_INPUT]), "'?'")
    shaped = _STRING.sub(lambda m: " " if m.group(1) is not None else "'?'", hidden)
    shaped = " ".join(shaped.split())
    return shaped if len(shaped) <= SHAPE_LIMIT else shaped[:SHAPE_LIMIT] + "…"


_job_log = logging.getLogger("cairn.jobs")


def job_started(job: Job) -> None:
    event(_job_log, "job_started", job_id=job.job_id, type=job.job_type,
          namespace=job.namespace, target=job.target, user=job.user_id)


def job_failure(job: Job, exc: Exception, data_dir: Path) -> CairnError:
    """Why a job whose work raised `exc` (not a CairnError) failed: the data
    directory's disk refusing a write (a target's errors are mapped where they
    are written), said by `job_ended`'s one line, or a bug, logged with its trace."""
    disk = from_oserror(data_dir, exc)
    if disk is not None:
        return disk
    if isinstance(exc, MemoryError):
        # An allocation refused (ulimit -d, vm.overcommit_memory = 2), in the
        # server or the job's job process: no bug, and no damage of what it
        # read (a VERIFY short of 2 MiB in its job process was 500 INTERNAL
        # "MemoryError" until 2026-12-08).
        short = read_shortage(exc, f"{job.job_type} job {job.job_id}")
        if short is not None:
            _job_log.warning("job %s (%s) ran out of memory", job.job_id, job.job_type)
            return short
    _job_log.error("job %s (%s) failed with a bug", job.job_id, job.job_type, exc_info=exc)
    return CairnError(f"internal error: {type(exc).__name__}: {exc}")


def job_ended(job: Job, seconds: float | None) -> None:
    """One line per finished job, successful ones too; failures at WARNING, and
    so a completed job whose error_message says what it found wrong (a VERIFY
    of a backup that is not valid)."""
    result = job.result if isinstance(job.result, dict) else {}
    size = result.get("bytes", result.get("bytes_checked", job.bytes_done))
    files = result.get("files", result.get("files_checked", job.files_done))
    fine = job.status == "cancelled" or (job.status == "completed" and not job.error_message)
    level = logging.INFO if fine else logging.WARNING
    event(_job_log, "job_ended", level, job_id=job.job_id, type=job.job_type,
          namespace=job.namespace, target=job.target, backup_id=job.backup_id,
          status=job.status, bytes=size, files=files, rows=result.get("rows", job.rows),
          duration_s=round(seconds, 3) if seconds is not None else None,
          error=job.error_message)
