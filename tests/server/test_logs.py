"""Server logs of a real `cairn serve`: `[log] format` text and json, one line per
job start and end (successful backups too), slow requests, and never a secret."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from server import logs
from tests.helpers import ServerProcess

PASSPHRASE = "pass-phrase-never-logged-9f3a"
ADMIN_TOKEN = "admin-token-never-logged-c41d"
USER_TOKEN = "user-token-never-logged-77be"


def run_server(tmp_path: Path, fmt: str) -> str:
    """A server run that uses a passphrase and two tokens; returns its stderr."""
    config = tmp_path / "cairn.toml"
    config.write_text(f"""
[log]
format = "{fmt}"
level = "INFO"
slow_request_seconds = 0.000001

[auth]
mode = "token"
[[auth.tokens]]
token = "{ADMIN_TOKEN}"
user = "root"
role = "admin"
[[auth.tokens]]
token = "{USER_TOKEN}"
user = "alice"
role = "user"
""")
    proc = ServerProcess(tmp_path / "data", config=config).start()
    try:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for text in (
            "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
            "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t",
            f"BACKUP DATABASE app TO 'nightly' WITH (encryption_passphrase = '{PASSPHRASE}')",
            f"RESTORE DATABASE app FROM 'nightly' AS app2 WITH (encryption_passphrase = "
            f"'{PASSPHRASE}')",
        ):
            status, body = proc.post(text, **admin)
            assert status == 200, body
        status, body = proc.post("RESTORE DATABASE app FROM 'nightly' AS app3 WITH "
                                 "(encryption_passphrase = 'wrong-one')", **admin)
        assert status == 422, body
        status, body = proc.post("SELECT 1", Authorization=f"Bearer {USER_TOKEN}")
        assert status == 200, body
        status, body = proc.post(f"BACKUP DATABASE app TO 'x' WITH (encryption_passphrase = "
                                 f"'{PASSPHRASE}')", Authorization=f"Bearer {USER_TOKEN}")
        assert status == 403, body
    finally:
        assert proc.stop() == 0
    return proc.log()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_job_and_slow_request_lines_and_no_secrets(tmp_path: Path, fmt: str) -> None:
    out = run_server(tmp_path, fmt)
    for secret in (PASSPHRASE, ADMIN_TOKEN, USER_TOKEN, "wrong-one"):
        assert secret not in out, f"{secret} leaked into the {fmt} log"
    lines = [line for line in out.splitlines() if line.strip()]
    if fmt == "json":
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
        events = [r for r in records if "event" in r]
    else:
        events = [_text_event(line) for line in lines if " job_" in line or " slow_req" in line]
    ends = [e for e in events if e["event"] == "job_ended"]
    starts = [e for e in events if e["event"] == "job_started"]
    backup = next(e for e in ends if e["type"] == "backup")
    assert backup["status"] == "completed" and backup["namespace"] == "app"
    assert str(backup["target"]).endswith("nightly")
    assert int(backup["bytes"]) > 0 and int(backup["files"]) >= 1
    assert float(backup["duration_s"]) >= 0 and "error" not in backup
    assert any(s["job_id"] == backup["job_id"] for s in starts)
    failed = next(e for e in ends if e["type"] == "restore" and e["status"] == "failed")
    assert failed["error"] and "passphrase" in failed["error"]
    assert {e["type"] for e in ends} >= {"flush", "backup", "restore"}
    slow = [e for e in events if e["event"] == "slow_request"]
    kinds = {e["kind"] for e in slow}
    assert {"create", "backup", "restore", "select"} <= kinds
    backup_req = next(e for e in slow if e["kind"] == "backup" and e["status"] == "ok")
    assert "encryption_passphrase = '?'" in backup_req["statement"]
    assert any(e["status"] == "PERMISSION_DENIED" and e["user"] == "alice" for e in slow)


def _text_event(line: str) -> dict[str, Any]:
    """`... cairn.jobs: job_ended job_id=... type=backup ...` -> dict (values
    with spaces are JSON-quoted by the logger)."""
    _, _, rest = line.partition(": ")
    name, _, tail = rest.partition(" ")
    fields: dict[str, Any] = {"event": name}
    decoder = json.JSONDecoder()
    i = 0
    while i < len(tail):
        eq = tail.index("=", i)
        key = tail[i:eq].strip()
        if tail[eq + 1: eq + 2] == '"':
            val, end = decoder.raw_decode(tail, eq + 1)
        else:
            end = tail.find(" ", eq + 1)
            end = len(tail) if end < 0 else end
            val = tail[eq + 1:end]
        fields[key] = val
        i = end + 1
    return fields


def test_json_formatter_keeps_fields_and_traces() -> None:
    stream = io.StringIO()
    handler = logs.setup("json", "DEBUG", stream)
    try:
        log = logging.getLogger("cairn.test")
        logs.event(log, "thing", count=3, note="two words", missing=None)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "thing" and first["count"] == 3 and first["note"] == "two words"
    assert "missing" not in first and first["message"] == 'thing count=3 note="two words"'
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


def test_lone_surrogates_are_escaped_not_written() -> None:
    """A client may send a lone surrogate in JSON ("\\ud800"): it must not make
    a log line unencodable (xdist and stderr both refuse such text)."""
    stream = io.StringIO()
    handler = logs.setup("json", "INFO", stream)
    try:
        logs.event(logging.getLogger("cairn.test"), "slow_request",
                   statement=logs.statement_shape("SELECT \ud800 FROM x"), error="bad \udfff")
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    out.encode("utf-8")  # would raise on a surrogate
    record = json.loads(out)
    assert record["statement"] == "SELECT \\ud800 FROM x" and record["error"] == "bad \\udfff"


def test_statement_shape_hides_every_string() -> None:
    shape = logs.statement_shape("BACKUP DATABASE a TO 's3://b/p' WITH (encryption_passphrase"
                                 " = 'it''s secret', label = $$x$$)")
    assert shape == "BACKUP DATABASE a TO '?' WITH (encryption_passphrase = '?', label = '?')"
    assert "secret" not in logs.statement_shape("SELECT 'unterminated secret")
    assert len(logs.statement_shape("SELECT " + "1 + " * 1000 + "1")) <= logs.SHAPE_LIMIT + 1
    # a dollar-quoted string never closed was logged as written; tags must match
    assert logs.statement_shape("SELECT $$secret") == "SELECT '?'"
    assert logs.statement_shape("SELECT $a$x$b$secret$a$, 1") == "SELECT '?', 1"
    # tags and words past ASCII, as DuckDB's scanner reads them: `$é$…$é$` is one
    # string; in `éE'…'` the E belongs to the word, so the string is a plain one
    assert logs.statement_shape("SELECT $é$secret$é$, 1") == "SELECT '?', 1"
    assert logs.statement_shape("SELECT éE'it\\'s' AS y") == "SELECT éE'?'s'?'"
    # a 9 MB literal is cut where the shape stops reading, and stays hidden
    assert logs.statement_shape("SELECT '" + "s" * 9_000_000 + "'") == "SELECT '?'"
    # a passphrase that is no string literal (a PARSE_ERROR, whose slow-request
    # line kept it): hidden however it is written
    for written in ("Hunter2Secret", '"Hunter2 Secret"', '"Hunter2Secret'):
        for text in (f"BACKUP DATABASE a TO 'x' WITH (encryption_passphrase = {written})",
                     f"BACKUP DATABASE a TO 'x' WITH (ENCRYPTION_PASSPHRASE={written}, "
                     "label = 'l')"):
            assert "Hunter2" not in logs.statement_shape(text), text


def test_statement_shape_reads_comments_as_comments() -> None:
    """An apostrophe in a comment (`/* it's the nightly one */`, `-- don't`)
    opened a string in the shape that ended at the passphrase's first quote:
    the slow_request line logged the passphrase."""
    for comment in ("/* it's the nightly one */", "-- don't\n", "-- don't\r", "/* a /* it's */ */"):
        text = (f"BACKUP DATABASE app TO 'nightly' {comment} WITH (encryption_passphrase = "
                "'Tr0ub4dor-PASSPHRASE-1', label = 'l')")
        shape = logs.statement_shape(text)
        assert "Tr0ub4dor" not in shape and "PASSPHRASE" not in shape, shape
        assert "don't" not in shape and "it's" not in shape, shape
    assert (logs.statement_shape("SELECT 'a' -- it's\n, 'b' /* c */ FROM t")
            == "SELECT '?' , '?' FROM t")
    # an E-string's backslash-escaped quote does not end it either
    assert (logs.statement_shape("SELECT E'it\\'s', 'Hunter2'") == "SELECT '?', '?'")
    assert "Hunter2" not in logs.statement_shape(
        "SELECT E'x\\' , encryption_passphrase = ', 'Hunter2'")


def test_text_lines_cannot_be_forged_by_quoted_text() -> None:
    """A message may quote a client's text (a backup target's name may hold a
    newline, a DuckDB error quotes a column): in text format its line breaks
    and other control characters are escapes, so it stays one line and cannot
    print a line that reads like the server's own, nor drive a terminal."""
    stream = io.StringIO()
    handler = logs.setup("text", "INFO", stream)
    forged = "2026-12-03 12:00:00,000 INFO cairn.jobs: job_ended status=completed"
    try:
        log = logging.getLogger("cairn.test")
        log.warning("archiving %s failed: %s", "app", f"target /b/x\n{forged}\r\x1b[2J\u2028z")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed\nagain")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(f"target /b/x\\n{forged}\\r\\x1b[2J\\u2028z")
    assert lines[1].endswith("ERROR cairn.test: failed\\nagain")
    assert lines[2] == "Traceback (most recent call last):"  # a traceback keeps its lines
    assert lines[-1] == "ValueError: boom" and not any(line.startswith("2026-12-03 12:00")
                                                       for line in lines)


def test_json_lines_hold_no_raw_c1_controls_or_line_separators() -> None:
    """A JSON line kept C1 controls (U+009B CSI, U+009D OSC, U+0085 NEL) and
    U+2028/U+2029 raw, where the text format escapes them: `splitlines()` and
    log shippers split the record there, and a terminal tailing it acted on
    CSI/OSC. Each is a \\u escape now; the record reads back the same."""
    stream = io.StringIO()
    handler = logs.setup("json", "INFO", stream)
    target = 'x\u2028{"level": "ERROR"}\u009d52;c;ZQ==\u009c\u0085\u009b2J\u2029é'
    try:
        logs.event(logging.getLogger("cairn.test"), "job_ended", target=target)
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert not any(c in out for c in "\u0085\u009b\u009c\u009d\u2028\u2029"), repr(out)
    lines = out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["target"] == target
    assert "é" in out  # other text stays as written


def test_sqlglot_never_logs_a_statement(caplog: pytest.LogCaptureFixture) -> None:
    """pgwire's catalog layer hands a text holding `pg_` to sqlglot, which
    logged "'SHOW BACKUP 'nope' WITH (encryption_passphrase = 'pg_Hunter2…')'
    contains unsupported syntax": the passphrase in the server's log."""
    import sqlglot

    import sqlgrammar  # noqa: F401 - sets sqlglot's logger, as the server does
    caplog.set_level(logging.DEBUG)
    sqlglot.parse("SHOW BACKUP 'nope' WITH (encryption_passphrase = 'pg_Hunter2-1796')",
                  read="duckdb")
    assert not [r for r in caplog.records if "Hunter2" in r.getMessage()]
