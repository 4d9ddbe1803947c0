"""The protocol layer on raw sockets: hostile bytes never stop the server,
violations of framing end with FATAL 08P01 (a malformed body: ERROR 08P01),
errors inside the extended protocol skip to Sync, bad Unicode is 22021, and
the pure helpers (parameters, numerics, SCRAM)."""

from __future__ import annotations

import base64
import decimal
import hashlib
import hmac
import random
import socket
import struct
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.pgwire import params, pgcatalog, scram
from server.pgwire import types as t
from tests.pgwire.conftest import PgServer, _start

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def _msg(tag: bytes, body: bytes = b"") -> bytes:
    return tag + struct.pack("!i", len(body) + 4) + body


def _startup(user: str = "raw") -> bytes:
    body = (struct.pack("!i", 196608) + b"user\x00" + user.encode()
            + b"\x00database\x00cairn\x00\x00")
    return struct.pack("!i", len(body) + 4) + body


_PENDING: dict[int, bytes] = {}  # bytes read past the last message, per socket


def _read_all(sock: socket.socket, until: bytes = b"Z", timeout: float = 10.0
              ) -> list[tuple[bytes, bytes]]:
    """Messages until one tagged `until` (or the peer closes)."""
    sock.settimeout(timeout)
    buf = _PENDING.pop(sock.fileno(), b"")
    out: list[tuple[bytes, bytes]] = []
    while True:
        while len(buf) >= 5:
            tag, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
            if len(buf) < 1 + length:
                break
            out.append((tag, buf[5:1 + length]))
            buf = buf[1 + length:]
            if tag == until:
                _PENDING[sock.fileno()] = buf
                return out
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return out
        if not chunk:
            return out
        buf += chunk


def _connect(pg: PgServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", pg.port), timeout=10)
    _PENDING.pop(sock.fileno(), None)
    sock.sendall(_startup())
    msgs = _read_all(sock)
    assert msgs[-1] == (b"Z", b"I"), msgs
    return sock


def _fields(body: bytes) -> dict[str, str]:
    return {p[:1].decode(): p[1:].decode() for p in body.split(b"\x00") if p}


def _still_serving(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 42").fetchone() == (42,)


def test_hostile_bytes_never_stop_the_server(pg: PgServer) -> None:
    rng = random.Random(1234)
    cases = [
        b"", b"\x00", b"\xff" * 8, struct.pack("!ii", 2**31 - 1, 196608),
        struct.pack("!ii", 8, 1234), struct.pack("!ii", 4, 0), struct.pack("!ii", -5, 0),
        _startup() + _msg(b"Q", b"SELECT 1"),  # not NUL-terminated
        _startup() + b"Q" + struct.pack("!i", 2**30),  # a huge length
        _startup() + b"Q" + struct.pack("!i", 2),  # a length below the minimum
        _startup() + _msg(b"?"),  # unknown message type
        _startup() + _msg(b"B", b"\x00\x00\xff\xff"),  # Bind with a negative count
        _startup() + _msg(b"P", b"s\x00SELECT 1\x00\x00\x01"),  # truncated Parse
        _startup() + _msg(b"D", b"Xname\x00"),  # bad Describe kind
        struct.pack("!ii", 16, 80877102) + b"\x00\x00\x00\x01\x00\x00\x00\x02",  # cancel: nobody
        struct.pack("!ii", 8, 80877103) + struct.pack("!ii", 8, 80877103),  # SSLRequest twice
    ]
    cases += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(25)]
    cases += [_startup() + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
              for _ in range(25)]
    for data in cases:
        with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as sock:
            _PENDING.pop(sock.fileno(), None)
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            for tag, body in _read_all(sock, until=b"\xff", timeout=10):
                if tag == b"E":
                    fields = _fields(body)
                    assert fields["C"] != "XX000", (data, fields)
    _still_serving(pg)


def test_protocol_violation_is_fatal_08P01(pg: PgServer) -> None:
    sock = _connect(pg)
    sock.sendall(_msg(b"?"))
    msgs = _read_all(sock, until=b"\xff")
    errors = [_fields(b) for tag, b in msgs if tag == b"E"]
    assert errors and errors[0]["S"] == "FATAL" and errors[0]["C"] == "08P01"
    assert sock.recv(10) == b""  # closed
    _still_serving(pg)


@pytest.mark.parametrize("user", ["alice\n", "alice\nFATAL forged", "a b", "x" * 129])
def test_a_user_name_outside_the_pattern_is_refused_28000(pg: PgServer, user: str) -> None:
    """`^…$` let a trailing newline through: user 'alice\n' logged in, and
    its name could break the log lines that carry it."""
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as sock:
        _PENDING.pop(sock.fileno(), None)
        sock.sendall(_startup(user))
        errors = [_fields(b) for tag, b in _read_all(sock, until=b"\xff") if tag == b"E"]
    assert errors and errors[0]["S"] == "FATAL" and errors[0]["C"] == "28000", errors
    _still_serving(pg)


@pytest.mark.parametrize("message", [
    _msg(b"Q", b"SELECT 1\x00SELECT 2\x00"),  # ran SELECT 1: the rest was never read
    _msg(b"P", b"\x00SELECT 1\x00\x00\x00junk"),
    _msg(b"P", b"\x00SELECT 1\x00\x00\x00") + _msg(b"B", b"\x00\x00" + b"\x00\x00" * 3 + b"x"),
    _msg(b"D", b"S\x00\x00"),
    _msg(b"E", b"\x00\x00\x00\x00\x00\x00"),
    _msg(b"C", b"S\x00x"),
    _msg(b"H", b"x"),
    _msg(b"S", b"x"),
])
def test_bytes_after_a_message_are_a_violation(pg: PgServer, message: bytes) -> None:
    """As PostgreSQL's pq_getmsgend: a message longer than its contents is
    ERROR 08P01 and nothing in it runs (a Query read up to its first NUL ran
    that much and dropped the rest). Its length said where it ends: the
    connection goes on, as PostgreSQL's (FATAL until 2026-12-08)."""
    sock = _connect(pg)
    sock.sendall(message + (b"" if message[:1] in b"QS" else _msg(b"S")))
    msgs = _read_all(sock)
    assert b"C" not in [tag for tag, _ in msgs], msgs  # no command completed
    errors = [_fields(b) for tag, b in msgs if tag == b"E"]
    assert [(e["S"], e["C"]) for e in errors] == [("ERROR", "08P01")], msgs
    assert "after its contents" in errors[-1]["M"]
    assert msgs[-1] == (b"Z", b"I"), msgs
    sock.sendall(_msg(b"Q", b"SELECT 7\x00"))
    assert [tag for tag, _ in _read_all(sock)] == [b"T", b"D", b"C", b"Z"]
    sock.close()


def test_bad_unicode_is_22021_and_the_connection_lives(pg: PgServer) -> None:
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", b"SELECT '\xff\xfe'\x00"))
    msgs = _read_all(sock)
    assert _fields(dict(msgs)[b"E"])["C"] == "22021"
    sock.sendall(_msg(b"Q", b"SELECT 7\x00"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"T", b"D", b"C", b"Z"]
    sock.close()


def test_error_in_extended_protocol_skips_to_sync(pg: PgServer) -> None:
    sock = _connect(pg)
    sock.sendall(
        _msg(b"P", b"\x00SELECT * FROM nowhere.t\x00\x00\x00")
        + _msg(b"B", b"\x00\x00" + b"\x00\x00" * 3)
        + _msg(b"E", b"\x00\x00\x00\x00\x00")
        + _msg(b"B", b"\x00\x00" + b"\x00\x00" * 3)
        + _msg(b"E", b"\x00\x00\x00\x00\x00")
        + _msg(b"S")
        + _msg(b"P", b"\x00SELECT $1::BIGINT + 1\x00\x00\x01\x00\x00\x00\x14")
        + _msg(b"B", b"\x00\x00\x00\x01\x00\x01\x00\x01" + struct.pack("!iq", 8, 41) + b"\x00\x00")
        + _msg(b"D", b"P\x00")
        + _msg(b"E", b"\x00\x00\x00\x00\x00")
        + _msg(b"S"))
    first = _read_all(sock)
    # the error comes at the first Execute; the second Bind and Execute are skipped
    assert [m[0] for m in first] == [b"1", b"2", b"E", b"Z"]
    second = _read_all(sock)
    assert [m[0] for m in second] == [b"1", b"2", b"T", b"D", b"C", b"Z"]
    data_row = dict(second)[b"D"]
    assert data_row[6:] == b"42"
    sock.close()


def test_a_query_pipelined_after_an_extended_error_is_skipped_too(pg: PgServer) -> None:
    """PostgreSQL discards every message up to Sync after an extended-protocol
    error, a Query too: Cairn ran the Query (a write the client had been told
    nothing of: its answer came before the Sync's)."""
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", b"CREATE NAMESPACE skipq; CREATE TABLE skipq.t (id INT PRIMARY KEY)"
                      b"\x00"))
    assert _read_all(sock)[-1] == (b"Z", b"I")
    sock.sendall(_msg(b"P", b"\x00INSERT INTO skipq.nowhere VALUES (1)\x00\x00\x00")
                 + _msg(b"B", b"\x00\x00" + b"\x00\x00" * 3) + _msg(b"E", b"\x00\x00\x00\x00\x00")
                 + _msg(b"Q", b"INSERT INTO skipq.t VALUES (2)\x00") + _msg(b"S")
                 + _msg(b"Q", b"SELECT count(*) FROM skipq.t\x00"))
    assert [m[0] for m in _read_all(sock)] == [b"1", b"2", b"E", b"Z"]
    counted = _read_all(sock)
    assert [m[0] for m in counted] == [b"T", b"D", b"C", b"Z"]
    assert dict(counted)[b"D"][6:] == b"0"
    sock.close()


def _bind_numeric(raw: bytes) -> bytes:
    """Parse `SELECT $1::DOUBLE` with $1 a NUMERIC, Bind `raw` as its binary
    value, Describe, Execute, Sync."""
    return (_msg(b"P", b"\x00SELECT $1::DOUBLE AS v\x00\x00\x01" + struct.pack("!i", 1700))
            + _msg(b"B", b"\x00\x00\x00\x01\x00\x01\x00\x01" + struct.pack("!i", len(raw)) + raw
                   + b"\x00\x00")
            + _msg(b"D", b"P\x00") + _msg(b"E", b"\x00\x00\x00\x00\x00") + _msg(b"S"))


def _numeric(ndigits: int, weight: int, sign: int, dscale: int, *groups: int) -> bytes:
    return struct.pack(f"!hhHh{len(groups)}H", ndigits, weight, sign, dscale, *groups)


@pytest.mark.parametrize(("raw", "answer"), [
    (_numeric(2, 0, 0x4000, 2, 12, 3456), b"-12.34"),  # digits past the scale cut, as PostgreSQL
    (_numeric(1, 0, 0, 2000, 5), b"5.0"),  # a scale past any context's precision
    (_numeric(1, 32767, 0, 0, 5), None),  # 5 * 10000**32767: no DOUBLE holds it
    (_numeric(1, 0, 0, -5, 5), None),  # a negative scale
    (_numeric(1, 0, 0, 0x4000, 5), None),  # a scale past PostgreSQL's 16383
    (_numeric(1, 0, 0, 0, 10000), None),  # a base-10000 digit of 10000
])
def test_hostile_binary_numerics_are_refused_or_exact(pg: PgServer, raw: bytes,
                                                      answer: bytes | None) -> None:
    """A NUMERIC's weight and scale came through a decimal context: a scale of
    2000 or a weight of 32767 raised InvalidOperation, which ended as XX000.
    Now a value is exact (`answer`) or refused as a data exception (class 22)."""
    sock = _connect(pg)
    sock.sendall(_bind_numeric(raw))
    msgs = _read_all(sock)
    errors = [_fields(b) for tag, b in msgs if tag == b"E"]
    if answer is None:
        assert errors and errors[0]["C"].startswith("22"), (msgs, errors)
    else:
        assert not errors, errors
        row = dict(msgs)[b"D"]
        assert row[6:] == answer, row
    sock.sendall(_msg(b"Q", b"SELECT 7\x00"))  # the connection lives on
    assert [m[0] for m in _read_all(sock)] == [b"T", b"D", b"C", b"Z"]
    sock.close()


def test_empty_query_and_many_statements(pg: PgServer) -> None:
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", b"  -- nothing\n\x00"))
    assert [m[0] for m in _read_all(sock)] == [b"I", b"Z"]
    sock.sendall(_msg(b"Q", b"SELECT 1; SET application_name = 'x'; SHOW application_name\x00"))
    tags = [m[0] for m in _read_all(sock)]
    assert tags == [b"T", b"D", b"C", b"S", b"C", b"T", b"D", b"C", b"Z"]
    sock.close()


# --- pure helpers ---------------------------------------------------------------------


def test_placeholders_only_in_code() -> None:
    sql = "SELECT '$1', $$ $2 $$, a$3, \"$4\", E'\\'$5', $6 /* $7 */ -- $8\n, $9"
    assert [n for _, _, n in params.placeholders(sql)] == [6, 9]
    assert params.substitute("SELECT $1, $2, $1", ["it's", None], [25, 25]) \
        == "SELECT 'it''s', NULL, 'it''s'"
    with pytest.raises(params.PlaceholderError):
        params.placeholders("SELECT $0")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_a_text_parameter_is_one_string_literal(value: str) -> None:
    import sqlglot
    from sqlglot import exp

    sql = params.substitute("SELECT $1 AS v", [value], [t.TEXT])
    tree = sqlglot.parse_one(sql, read="duckdb")
    literal = tree.expressions[0].this
    assert isinstance(literal, exp.Literal) and literal.is_string and literal.this == value


def test_numeric_binary_round_trip() -> None:
    rng = random.Random(7)
    values = ["0", "-0.000001", "1", "10000", "0.1", "-99999999.99", "1E+5", "123.4500",
              "0.00000000012", "100000000000000000000", "NaN"]
    values += [str(decimal.Decimal(rng.randint(-10**20, 10**20)).scaleb(-rng.randint(0, 12)))
               for _ in range(500)]
    for v in values:
        d = decimal.Decimal(v)
        back = t.decode_param(t.NUMERIC, True, t.encoder(t.NUMERIC, True)(d))
        assert back == d or (d.is_nan() and back.is_nan()), v


@pytest.mark.parametrize("oid", [t.INT2, t.INT4, t.INT8, t.FLOAT8, t.NUMERIC])
def test_numbers_in_text_are_ascii(oid: int) -> None:
    """Python's int(), float() and Decimal() read other scripts' digits
    ('\u0661\u0662\u0663' is 123); PostgreSQL refuses them, and so does Cairn."""
    assert t.decode_param(oid, False, b" 123 ") == 123
    for text in ("\u0661\u0662\u0663", "\uff11\uff12", "1\u0662"):
        with pytest.raises(t.BadParameter):
            t.decode_param(oid, False, text.encode())


def test_bytea_escape_format_reads_as_postgresql() -> None:
    """The old escape format: `\\\\` is one backslash, `\\` and three octal
    digits 000-377 one byte, anything else its UTF-8 bytes; any other
    backslash is refused. Generated pieces against the bytes they stand for."""
    rng = random.Random(11)
    pieces = [("a", b"a"), ("\u00e9", "\u00e9".encode()), ("\\\\", b"\\"), ("\\000", b"\x00"),
              ("\\101", b"A"), ("\\377", b"\xff"), ("\\\\101", b"\\101"), (" ", b" ")]
    for _ in range(500):
        chosen = [rng.choice(pieces) for _ in range(rng.randint(0, 12))]
        text = "".join(p[0] for p in chosen)
        assert t.decode_param(t.BYTEA, False, text.encode()) == b"".join(p[1] for p in chosen), text
    for bad in ["\\", "a\\", "\\x1", "\\400", "\\7", "\\1a1", "\\1\\\\01", "\\\\\\",
                "ok\\n"]:
        with pytest.raises(t.BadParameter):
            t.decode_param(t.BYTEA, False, bad.encode())
    big = "\\\\" * 1_000_000 + "\\101" * 1_000_000  # one step per character took 29 s for 10 MB
    assert t.decode_param(t.BYTEA, False, big.encode()) == b"\\" * 1_000_000 + b"A" * 1_000_000


def test_scram_accepts_the_token_and_refuses_anything_else() -> None:
    verifier = scram.Verifier([{"token": "tok-a", "user": "a"}, {"token": "tok-b", "user": "b"}])

    def client(password: str) -> tuple[dict[str, str], bytes]:
        ex = scram.Exchange(verifier)
        first_bare = "n=,r=clientnonce"
        server_first = ex.first(f"n,,{first_bare}".encode()).decode()
        attrs = dict(p.split("=", 1) for p in server_first.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth = f"{first_bare},{server_first},{without_proof}".encode()
        sig = hmac.new(hashlib.sha256(client_key).digest(), auth, hashlib.sha256).digest()
        xored = bytes(a ^ b for a, b in zip(client_key, sig, strict=False))
        proof = base64.b64encode(xored).decode()
        return ex.final(f"{without_proof},p={proof}".encode())

    assert client("tok-b")[0]["user"] == "b"
    assert client("tok-a")[0]["user"] == "a"
    with pytest.raises(scram.ScramError):
        client("tok-c")
    with pytest.raises(scram.ScramError):
        scram.Exchange(verifier).first(b"p=tls-server-end-point,,n=,r=x")


def test_a_catalog_query_has_the_bounds_of_every_query(pg: PgServer) -> None:
    """A query that names a catalog relation or a session function (version())
    runs on the catalog's own DuckDB. It ran there without the bounds of every
    other query: repeat() built its 300 MB, range() its 30,000,000 values, and
    all 300,000 rows came back past max_result_rows."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="repeat"):
            conn.execute("SELECT version(), length(repeat('x', 300000000))")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="range"):
            conn.execute("SELECT version(), len(range(30000000))")
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="max_result_rows"):
            conn.execute("SELECT version(), x FROM range(300000) t(x)")  # as for any query
        assert conn.execute("SELECT version(), len(range(5))").fetchone()[1] == 5


def test_a_catalog_query_reads_no_settings_and_has_a_memory_limit(pg: PgServer) -> None:
    """The catalog's DuckDB (a query naming version() runs there) ran LATERAL
    table functions and any scalar function (duckdb_settings(), the whole
    settings list; current_query()), a CTE's name anywhere in the query
    counted as a CTE everywhere, and it had no memory limit (80% of the RAM:
    a count(DISTINCT) over a range took the server to 2.5 GB)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for text in ["SELECT version(), s.name FROM (SELECT 1) x, LATERAL duckdb_settings() s",
                     "SELECT version(), s.* FROM (WITH duckdb_settings AS (SELECT 1) SELECT 1) x, "
                     "duckdb_settings s"]:
            try:
                got = conn.execute(text).fetchall()
            except psycopg.Error:
                got = []
            assert not any("memory_limit" in str(r) or "temp_directory" in str(r) for r in got)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="current_query"):
            conn.execute("SELECT version(), current_query()")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="date"):
            conn.execute("SELECT DATE()")  # sqlglot reads it, cannot write it: was XX000
        assert conn.execute("SELECT version(), 1").fetchone()[1] == 1
    engine = pgcatalog.CatalogEngine()
    try:
        limit = engine._con.execute("SELECT current_setting('memory_limit')").fetchone()
        assert limit == ("244.1 MiB",)  # pgcatalog.CATALOG_MEMORY, 256 MB
    finally:
        engine.close()


def test_a_catalog_query_has_the_statement_timeout(tmp_path: Path) -> None:
    for server in _start(tmp_path, "[server]\nquery_timeout_seconds = 1\n"):
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            # an ordinary query's message (it was "1 s" for a catalog query alone)
            with pytest.raises(psycopg.errors.QueryCanceled, match=r"longer than 1\.0 s"):
                conn.execute("SELECT version(), count(*) FROM range(300000000) a(x), "
                             "range(1000) b(y)")
            assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL")


def test_a_negative_parameter_after_a_minus_is_a_number_not_a_comment(pg: PgServer) -> None:
    """`balance-%s` with -50 became `balance--50`: the rest of the line a
    comment, so the UPDATE's WHERE went and every row changed. Found by
    trying."""
    import decimal

    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE negp; CREATE TABLE negp.a (id BIGINT PRIMARY KEY, "
                     "balance BIGINT, frozen BOOLEAN)")
        conn.execute("INSERT INTO negp.a VALUES (1, 100, false), (2, 100, false), (3, 100, false)")
        for text in ("%s", "%b"):
            cur = conn.execute(f"UPDATE negp.a SET frozen = true, balance = balance-{text} "
                               f"WHERE id = {text}", (-50, 1))
            assert cur.rowcount == 1
        rows = conn.execute("SELECT id, balance, frozen FROM negp.a ORDER BY id").fetchall()
        assert rows == [(1, 200, True), (2, 100, False), (3, 100, False)]
        for value in (-3, -3.5, decimal.Decimal("-3.25")):
            got = conn.execute("SELECT 5-%s AS x, 2 AS y", (value,)).fetchone()
            assert got == (5 - value, 2), (value, got)


def test_a_negative_zero_parameter_keeps_its_sign(pg: PgServer) -> None:
    """A float -0.0 sent as a parameter (text or binary) was stored +0.0: the
    literal `-0.0` it becomes was negated in Python's decimal context, which
    drops a zero's sign (copy_negate keeps it, and every digit of a DECIMAL)."""
    import math

    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE negz; CREATE TABLE negz.t (id BIGINT PRIMARY KEY, d DOUBLE)")
        conn.execute("INSERT INTO negz.t VALUES (%s, %s)", (1, -0.0))
        conn.execute("INSERT INTO negz.t VALUES (%b, %b)", (2, -0.0))
        rows = conn.execute("SELECT id, d FROM negz.t ORDER BY id").fetchall()
        assert [r[0] for r in rows] == [1, 2]
        assert all(r[1] == 0.0 and math.copysign(1.0, r[1]) == -1.0 for r in rows), rows


def test_a_float_parameter_past_double_is_out_of_range_not_infinity(pg: PgServer) -> None:
    """A float8 parameter '1e309' was stored as Infinity, where the same number
    as a literal is refused (found by trying). 'Infinity' stays itself."""
    import math

    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE fl; CREATE TABLE fl.t (id BIGINT PRIMARY KEY, d DOUBLE)")
        for text in ("1e309", "-1e309", "1e-400"):
            with pytest.raises(psycopg.errors.NumericValueOutOfRange):
                conn.execute("INSERT INTO fl.t VALUES (1, %s::float8)", (text,))
        conn.execute("INSERT INTO fl.t VALUES (2, %s::float8)", ("Infinity",))
        rows = conn.execute("SELECT id, d FROM fl.t").fetchall()
        assert len(rows) == 1 and rows[0][0] == 2 and math.isinf(rows[0][1])


def test_settings_cairn_does_not_honour_are_refused_not_echoed(pg: PgServer) -> None:
    """`SET DateStyle = 'SQL, DMY'` was reported while dates went as ISO (psycopg
    then read 0010-11-12 as 12 November); `SET is_superuser = on`, a
    session_authorization and read-only transactions were echoed as applied
    while an INSERT still ran. Found by trying."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for text, error in [
            ("SET DateStyle = 'SQL, DMY'", psycopg.errors.InvalidParameterValue),
            ("SET is_superuser = on", psycopg.errors.CantChangeRuntimeParam),
            ("SET session_authorization = 'admin'", psycopg.errors.CantChangeRuntimeParam),
            ("SET default_transaction_read_only = on", psycopg.errors.FeatureNotSupported),
            ("START TRANSACTION READ ONLY", psycopg.errors.FeatureNotSupported),
        ]:
            with pytest.raises(error):
                conn.execute(text)
        conn.execute("SET DateStyle = 'ISO, DMY'")
        assert conn.execute("SHOW DateStyle").fetchone() == ("ISO, DMY",)
        conn.execute("SET default_transaction_read_only = off")


def test_an_interval_goes_as_postgresql_writes_it(pg: PgServer) -> None:
    """An INTERVAL answer went as `MonthDayNano(months=14, …)`."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT CAST('1 day 02:03:04.5' AS INTERVAL)::VARCHAR AS v, "
                    "INTERVAL 14 MONTH AS i")
        raw = cur.pgresult.get_value(0, 1) if cur.pgresult is not None else None
        assert raw == b"1 year 2 mons", raw


def test_a_cut_answer_is_an_error_not_a_whole_one(pg: PgServer) -> None:
    """An answer past [server] max_result_rows came as its first 100,000 rows
    with an ordinary `SELECT 100000` tag and no notice: the client could not
    tell it from the whole answer (HTTP marks it `"truncated": true`)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS cut")
        conn.execute("CREATE TABLE IF NOT EXISTS cut.t (k BIGINT PRIMARY KEY)")
        conn.execute("DELETE FROM cut.t")
        conn.execute("INSERT INTO cut.t SELECT x FROM range(100005) r(x)")
        for binary in (False, True):
            with pytest.raises(psycopg.errors.ProgramLimitExceeded,
                               match="cut at 100000 rows .*max_result_rows"):
                conn.execute("SELECT k FROM cut.t", binary=binary)
            with pytest.raises(psycopg.errors.ProgramLimitExceeded):
                conn.execute("SELECT k FROM cut.t WHERE k >= %s", (0,), binary=binary)
        assert len(conn.execute("SELECT k FROM cut.t LIMIT 100000").fetchall()) == 100_000
        assert conn.execute("SELECT count(*) FROM cut.t").fetchone() == (100_005,)


def test_a_statement_duckdbs_parser_refuses_is_42601_and_changes_nothing(pg: PgServer) -> None:
    """sqlglot read `k NOT IN` (a statement cut short) as NOT (k IN ()):
    DELETE 3. DuckDB's parser reads each statement too (duckparse.py)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS pdp; CREATE TABLE IF NOT EXISTS pdp.t "
                     "(k BIGINT PRIMARY KEY, v TEXT); DELETE FROM pdp.t WHERE true; "
                     "INSERT INTO pdp.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        for text in ("DELETE FROM pdp.t WHERE k NOT IN", "UPDATE pdp.t SET v = 'x' 'y'",
                     "INSERT INTO pdp.t VALUES (4, 'd') (5, 'e')"):
            with pytest.raises(psycopg.errors.SyntaxError, match="syntax error at or near") as info:
                conn.execute(text)
            assert info.value.diag.statement_position is not None
        assert conn.execute("SELECT k, v FROM pdp.t ORDER BY k").fetchall() == [
            (1, "a"), (2, "b"), (3, "c")]


def test_an_insert_portal_executed_again_is_55000_not_a_second_insert(pg: PgServer) -> None:
    """A portal of no rows, run to its end, cannot be run again (PostgreSQL's
    PORTAL_DONE, 55000): Cairn answered `INSERT 0 1` again, inserting nothing,
    so a client counting its Executes' tags counted a row that was never
    written. A portal of rows read to its end still says `SELECT 0`."""
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", b"CREATE NAMESPACE again; CREATE TABLE again.t (id INT PRIMARY KEY)"
                      b"\x00"))
    assert _read_all(sock)[-1] == (b"Z", b"I")
    execute = _msg(b"E", b"\x00\x00\x00\x00\x00")
    sock.sendall(_msg(b"P", b"\x00INSERT INTO again.t SELECT count(*) FROM again.t\x00\x00\x00")
                 + _msg(b"B", b"\x00\x00" + b"\x00\x00" * 3) + execute + execute + _msg(b"S"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"1", b"2", b"C", b"E", b"Z"], msgs
    assert msgs[2][1] == b"INSERT 0 1\x00"
    assert _fields(msgs[3][1])["C"] == "55000"
    sock.sendall(_msg(b"P", b"\x00SELECT count(*) FROM again.t\x00\x00\x00")
                 + _msg(b"B", b"\x00\x00" + b"\x00\x00" * 3) + execute + execute + _msg(b"S"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"1", b"2", b"D", b"C", b"C", b"Z"], msgs
    assert msgs[2][1][6:] == b"1" and msgs[4][1] == b"SELECT 0\x00"
    sock.close()


def test_an_unknown_message_type_is_refused_before_its_body(pg: PgServer) -> None:
    """PostgreSQL refuses a type it does not know from its header alone; Cairn
    read the body first: a header saying 1 MiB held that much of the budget
    for bodies, and the socket, until body_timeout_seconds, then said FATAL."""
    sock = _connect(pg)
    sock.sendall(b"Y" + struct.pack("!i", (1 << 20) + 4))  # (F, once used here, is answered)
    msgs = _read_all(sock, timeout=3)
    assert [m[0] for m in msgs] == [b"E"], msgs
    error = _fields(msgs[0][1])
    assert (error["S"], error["C"]) == ("FATAL", "08P01"), error
    assert "invalid frontend message type 89" in error["M"], error
    sock.close()
    _still_serving(pg)
