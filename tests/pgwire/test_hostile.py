"""Hostile but well-formed input: statements, parameters and message floods
that cost the server far more than they cost the client. Each must be
refused or answered without stopping the event loop for everyone else."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

import psycopg

from server.pgwire import chatter
from tests.pgwire.conftest import ADMIN_TOKEN, PgServer
from tests.pgwire.test_protocol import _PENDING, _connect, _fields, _msg, _read_all, _startup


def _other_client_answers(pg: PgServer, out: list[object]) -> None:
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            out.append(conn.execute("SELECT 42").fetchone())
    except Exception as exc:  # reported by the asserting thread
        out.append(exc)


def test_set_with_a_long_blank_run_is_answered_at_once(pg: PgServer) -> None:
    """`SET a = x` + 1,200 blanks + `y` took 8 s of the event loop (the SET
    pattern backtracked cubically); 20,000 blanks would take hours. Now the
    SET is answered and so is another client meanwhile."""
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", b"SET a = x" + b" " * 20_000 + b"y\x00"))
    msgs = _read_all(sock, timeout=60)
    assert [m[0] for m in msgs] == [b"C", b"Z"], msgs
    sock.sendall(_msg(b"Q", b"SHOW a" + b" \t" * 20_000 + b";\x00"))
    msgs = _read_all(sock, timeout=60)
    assert [m[0] for m in msgs] == [b"T", b"D", b"C", b"Z"], msgs
    assert dict(msgs)[b"D"].endswith(b"x, y")
    sock.close()
    out: list[object] = []
    other = threading.Thread(target=_other_client_answers, args=(pg, out))
    other.start()
    other.join(60)
    assert out == [(42,)]


def test_every_set_form_still_reads() -> None:
    settings = chatter.Settings("u", {}, False)
    for sql, name, value in [
        ("SET a = 1;", "a", "1"), ("set session b to 'x' ; ", "b", "x"),
        ("SET LOCAL c.d = 'it''s', \"q\" , z;", "c.d", "it's, q, z"),
        ("SET\te\n=\n2\n;\n", "e", "2"), ("SET f TO x ; ;", "f", "x, ;"),
        ("SET TIME ZONE 'Europe/Paris';", "timezone", "Europe/Paris"),
        ("SET NAMES 'utf8'", "client_encoding", "UTF8"),
    ]:
        answer = chatter.answer(sql, settings, b"I")
        assert answer is not None and answer.tag == "SET", sql
        assert settings.values[name] == value, sql
    assert chatter.answer("SET a = DEFAULT ;", settings, b"I") is not None
    for sql in ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET ROLE x;",
                "RESET ALL ;", "DISCARD all;", "SHOW transaction isolation level ;"):
        assert chatter.answer(sql, settings, b"I") is not None, sql
    assert chatter.deallocated('DEALLOCATE PREPARE "x y" ;') == "x y"
    assert chatter.deallocated("DEALLOCATE ALL") == ""
    assert chatter.answer("SHOW TABLES", settings, b"I") is None
    assert chatter.answer("SELECT 1", settings, b"I") is None

