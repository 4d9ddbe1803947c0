"""The fast path (FunctionCall, 'F': libpq's PQfn, which no Python driver
wraps, so raw bytes): answered as PostgreSQL answers a call it cannot make,
an ErrorResponse and ReadyForQuery, the connection usable after. Until
2026-12-08 it was "invalid frontend message type 70", FATAL, and the
connection closed. A malformed one is an ERROR (08P01, 22023 for a format
code) and ReadyForQuery, as PostgreSQL 15 answers it: its length said where
it ends (until 2026-12-08 it was FATAL and the connection closed)."""

from __future__ import annotations

import struct

import pytest

from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _connect, _fields, _msg, _read_all

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def _body(fid: int, formats: list[int], args: list[bytes | None], result: int = 0) -> bytes:
    body = struct.pack("!IH", fid, len(formats)) + b"".join(struct.pack("!h", f) for f in formats)
    body += struct.pack("!H", len(args))
    for arg in args:
        body += struct.pack("!i", -1) if arg is None else struct.pack("!i", len(arg)) + arg
    return body + struct.pack("!h", result)


def _call(fid: int, formats: list[int], args: list[bytes | None], result: int = 0) -> bytes:
    return _msg(b"F", _body(fid, formats, args, result))


@pytest.mark.parametrize("call", [
    _call(1598, [], []),  # random(): PostgreSQL answers 0.503…
    _call(715, [1], [struct.pack("!i", 0)]),  # lo_create(0), as libpq's lo_create sends it
    _call(999_999, [0, 1], [b"x", None], result=1),
], ids=["random", "lo_create", "no_such_function"])
def test_a_function_call_is_refused_and_the_connection_lives_on(pg: PgServer,
                                                                call: bytes) -> None:
    sock = _connect(pg)
    sock.sendall(call)
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"E", b"Z"], msgs
    error = _fields(msgs[0][1])
    assert (error["S"], error["C"]) == ("ERROR", "0A000"), error
    assert error["M"] == "fast-path function calls are not supported", error
    assert msgs[1][1] == b"I"
    sock.sendall(_msg(b"Q", b"SELECT 7\x00"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"T", b"D", b"C", b"Z"], msgs
    assert msgs[1][1].endswith(b"7")
    sock.close()


def test_a_function_call_in_a_failed_extended_query_is_skipped_to_sync(pg: PgServer) -> None:
    """As PostgreSQL: after an error in the extended protocol, every message
    up to Sync is dropped unanswered, a FunctionCall too."""
    sock = _connect(pg)
    sock.sendall(_msg(b"B", b"\x00nosuch\x00\x00\x00\x00\x00\x00\x00") + _call(1598, [], [])
                 + _msg(b"S"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"E", b"Z"], msgs
    assert _fields(msgs[0][1])["C"] == "26000"
    sock.close()


@pytest.mark.parametrize(("call", "code", "said"), [
    (_msg(b"F", _body(1598, [], [])[:-2]), "08P01", "shorter than its contents"),
    (_msg(b"F", struct.pack("!I", 1598)), "08P01", "shorter than its contents"),
    (_msg(b"F", _body(1598, [0], [b"xy"])[:-4]), "08P01", "shorter than its contents"),
    (_msg(b"F", _body(1598, [], []) + b"\x00"), "08P01", "bytes after its contents"),
    (_msg(b"F", struct.pack("!IHH", 1598, 0, 1) + struct.pack("!i", -5) + b"\x00\x00"),
     "08P01", "shorter than its contents"),  # a negative length
    (_msg(b"F", struct.pack("!IHH", 1598, 0, 1) + struct.pack("!i", 0x7FFFFFFF) + b"\x00\x00"),
     "08P01", "shorter than its contents"),  # a huge one
    (_msg(b"F", struct.pack("!IHH", 1598, 0, 65535) + b"\x00\x00"), "08P01",
     "shorter than its contents"),  # 65,535 arguments, none there
    (_msg(b"F", struct.pack("!IH", 1598, 65535)), "08P01", "shorter than its contents"),
    (_call(1598, [2], [b"x"]), "22023", "unsupported format code: 2"),
    (_call(1598, [-1], [b"x"]), "22023", "unsupported format code: -1"),
    (_call(1598, [], [], result=7), "22023", "unsupported format code: 7"),
    (_call(1598, [0, 0], [b"x"]), "08P01", "2 argument formats but 1 arguments"),
], ids=["no_result_format", "fid_only", "cut_argument", "trailing_byte", "negative_length",
        "huge_length", "argument_count", "formats_count_only", "argument_format",
        "negative_format", "result_format", "formats_count"])
def test_a_malformed_function_call_is_an_error_and_the_connection_lives_on(
        pg: PgServer, call: bytes, code: str, said: str) -> None:
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", b"BEGIN\x00"))
    assert [m[0] for m in _read_all(sock)] == [b"C", b"Z"]
    sock.sendall(call)
    msgs = _read_all(sock, timeout=5)
    assert [m[0] for m in msgs] == [b"E", b"Z"], msgs
    error = _fields(msgs[0][1])
    assert (error["S"], error["C"]) == ("ERROR", code), error
    assert said in error["M"], error
    assert msgs[1][1] == b"T"  # the block goes on, as in PostgreSQL (no E status in Cairn)
    sock.sendall(_msg(b"Q", b"SELECT 7\x00"))
    assert [m[0] for m in _read_all(sock)] == [b"T", b"D", b"C", b"Z"]
    sock.close()
