"""psycopg 3 and asyncpg against a real `cairn serve`: every type both ways,
prepared statements, parameters, errors, cancellation, token auth over TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import itertools
import json
import threading
import time
from typing import Any

import asyncpg
import psycopg
import pytest

from server.pgwire.errors import PgError, contract_code
from tests.pgwire.conftest import ADMIN_TOKEN, USER_TOKEN, PgServer, _start

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

CREATE = (
    "CREATE TABLE types.all_types (id BIGINT PRIMARY KEY, i INT, s SMALLINT, d DOUBLE, r REAL, "
    "b BOOLEAN, t TEXT, by BYTES, ts TIMESTAMP, dec DECIMAL(38,10), j JSON, day DATE)"
)
BIG = bytes(range(256)) * 4096  # 1 MiB
TS = dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
ROW = (1, -2147483648, 32767, 1.0000000000000002, 2.5, True, "it's \\ 'quoted' $1 -- not a comment",
       BIG, TS, decimal.Decimal("12345678901234567.0123456789"),
       {"a": [1, 2, None], "b": "ü"}, dt.date(1999, 12, 31))


def _expected_row() -> tuple[Any, ...]:
    return ROW[:8] + (TS.astimezone(dt.UTC),) + ROW[9:]


@pytest.fixture(scope="module")
def typed(pg: PgServer) -> PgServer:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE types")
        conn.execute(CREATE)
        conn.execute("INSERT INTO types.all_types VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                     ROW[:10] + (json.dumps(ROW[10]),) + ROW[11:])
        conn.execute("INSERT INTO types.all_types (id) VALUES (%s)", (2,))
    return pg


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_round_trips_every_type(typed: PgServer, binary: bool) -> None:
    with psycopg.connect(typed.dsn(), autocommit=True) as conn:
        cur = conn.cursor(binary=binary)
        cur.execute("SELECT id, i, s, d, r, b, t, by, ts, dec, j, day FROM types.all_types "
                    "WHERE id = %s", (1,))
        assert cur.fetchone() == _expected_row()
        names = [d.name for d in cur.description]
        types = [d.type_code for d in cur.description]
        assert names[:3] == ["id", "i", "s"]
        assert types == [20, 23, 21, 701, 700, 16, 25, 17, 1184, 1700, 114, 1082]
        cur.execute("SELECT i, s, d, r, b, t, by, ts, dec, j, day FROM types.all_types "
                    "WHERE id = 2")
        assert cur.fetchone() == (None,) * 11
        cur.execute("SELECT * FROM types.all_types WHERE id = %s", (-1,))  # no rows
        assert cur.fetchall() == [] and cur.description[0].name == "id"


def test_psycopg_parameters_are_values_never_sql(typed: PgServer) -> None:
    hostile = ["'; DROP NAMESPACE types CASCADE; --", "$1", "\\'", "a''b", "$$", "ü\u2028\t\n",
               "\") OR 1=1 --", "' OR '1'='1"]
    with psycopg.connect(typed.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE types.notes (id BIGINT PRIMARY KEY, body TEXT)")
        for i, text in enumerate(hostile):
            conn.execute("INSERT INTO types.notes VALUES (%s, %s)", (i, text))
            found = conn.execute("SELECT body FROM types.notes WHERE body = %s", (text,))
            assert found.fetchall() == [(text,)]
        got = conn.execute("SELECT id, body FROM types.notes ORDER BY id").fetchall()
        assert got == list(enumerate(hostile))
        ns = conn.execute("SELECT count(*) FROM system.namespaces WHERE namespace = %s",
                          ("types",)).fetchone()
        assert ns == (1,)
        # typed parameters in both formats
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            cur.execute("SELECT id FROM types.all_types WHERE ts = %s AND dec = %s AND by = %s",
                        (TS, ROW[9], BIG))
            assert cur.fetchall() == [(1,)]


def test_psycopg_errors_keep_connection_usable(typed: PgServer) -> None:
    with psycopg.connect(typed.dsn(), autocommit=True) as conn:
        cases = [
            ("SELECT * FROM types.nope", psycopg.errors.UndefinedTable),
            ("SELECT * FROM nowhere.t", psycopg.errors.InvalidSchemaName),
            ("CREATE NAMESPACE types", psycopg.errors.DuplicateSchema),
            (CREATE, psycopg.errors.DuplicateTable),
            ("COPY types.all_types TO '/tmp/x'", psycopg.errors.InsufficientPrivilege),
            # asyncpg's copy_records_to_table / copy_to_table forms: a bare option
            # list was 42601 "unexpected 'BINARY'", not COPY's refusal
            ("COPY types.all_types (id) FROM STDIN (FORMAT BINARY)",
             psycopg.errors.InsufficientPrivilege),
            ("COPY types.all_types TO STDOUT (FORMAT csv, HEADER false)",
             psycopg.errors.InsufficientPrivilege),
            ("SELEC 1", psycopg.errors.SyntaxError),
            ("RESTORE DATABASE absent FROM 'nowhere-at-all'", psycopg.errors.UndefinedTable),
        ]
        for text, error in cases:
            with pytest.raises(error):
                conn.execute(text)
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.errors.UndefinedTable):  # extended protocol, then Sync
            conn.execute("SELECT * FROM types.nope WHERE id = %s", (1,))
        assert conn.execute("SELECT %s::BIGINT", (5,)).fetchone() == (5,)
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):  # i is INT: 22P02
            conn.execute("INSERT INTO types.all_types (id, i) VALUES (%s, %s)", (3, "x"))
        with pytest.raises(psycopg.errors.InvalidParameterValue):  # INVALID_ARGUMENT: 22023
            conn.execute("INSERT INTO types.all_types (id, i) VALUES (3, 'x')")
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_psycopg_transactions_are_accepted(typed: PgServer) -> None:
    with psycopg.connect(typed.dsn()) as conn:  # not autocommit: psycopg sends BEGIN
        conn.execute("INSERT INTO types.all_types (id) VALUES (%s)", (50,))
        conn.commit()
        assert conn.execute("SELECT count(*) FROM types.all_types WHERE id = 50").fetchone() == (1,)
        conn.commit()


def test_a_numeric_parameter_into_json_or_text_is_as_duckdb_casts_it(typed: PgServer) -> None:
    """A NUMERIC parameter into a JSON column was the JSON string "1.5"."""
    with psycopg.connect(typed.dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO types.all_types (id, j, t) VALUES (%s, %s, %s)",
                     (60, decimal.Decimal("1.5"), decimal.Decimal("-2.50")))
        got = conn.execute("SELECT j::VARCHAR, json_type(j), t, CAST(-2.50 AS VARCHAR) "
                           "FROM types.all_types WHERE id = 60").fetchone()
        assert got == ("1.5", "DOUBLE", "-2.50", "-2.50")


def test_a_column_is_json_by_what_it_is_never_by_its_name(typed: PgServer) -> None:
    """A TEXT column named like a JSON column was announced as json (114)
    where the answer's columns could not be told (a join USING): psycopg's
    json loader failed on 'hello' and the client had no rows. Found by
    trying. And a json value strict readers refuse (`CAST('NaN' AS JSON)`)
    went as NaN; now as the JSON string HTTP shows."""
    with psycopg.connect(typed.dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO types.all_types (id, t, j) VALUES (70, 'hello', '[1]')")
        conn.execute("CREATE TABLE IF NOT EXISTS types.other (id BIGINT PRIMARY KEY)")
        conn.execute("INSERT INTO types.other VALUES (70)")
        for binary, (query, oid, value) in itertools.product((False, True), (
                ("SELECT t AS j FROM types.all_types WHERE id = 70", 25, "hello"),
                ("SELECT t AS j FROM types.all_types JOIN types.other USING (id)", 25, "hello"),
                ("SELECT 'x' AS j FROM types.all_types JOIN types.other USING (id)", 25, "x"),
                ("SELECT j FROM types.all_types JOIN types.other USING (id)", 25, "[1]"),
                ("SELECT j FROM types.all_types WHERE id = 70", 114, [1]),
                ("SELECT CAST('NaN' AS JSON) AS x", 114, "NaN"),
                ("SELECT CAST('[1e999]' AS JSON) AS x", 114, "[1e999]"))):
            cur = conn.cursor(binary=binary)
            assert cur.execute(query).fetchall() == [(value,)], query
            assert cur.description is not None
            assert [d.type_code for d in cur.description] == [oid], query
            assert cur.pgresult is not None and cur.pgresult.get_value(0, 0) != b"NaN"


def test_asyncpg_types_prepared_and_errors(typed: PgServer) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(typed.url())
        try:
            row = await conn.fetchrow("SELECT id, i, s, d, r, b, t, by, ts, dec, j, day "
                                      "FROM types.all_types WHERE id = $1", 1)
            assert tuple(row.values())[:10] == _expected_row()[:10]
            assert json.loads(row["j"]) == ROW[10] and row["day"] == ROW[11]
            stmt = await conn.prepare("SELECT t FROM types.all_types WHERE id = $1")
            assert await stmt.fetchval(1) == ROW[6]
            assert await stmt.fetchval(2) is None
            assert await stmt.fetchval(99) is None
            await conn.execute("INSERT INTO types.all_types (id, ts, dec, by, j, day) "
                               "VALUES ($1, $2, $3, $4, $5, $6)",
                               3, TS, decimal.Decimal("-0.0000000001"), b"\x00\xff", '{"x": null}',
                               dt.date(2000, 2, 29))
            back = await conn.fetchrow("SELECT ts, dec, by, j, day FROM types.all_types "
                                       "WHERE id = $1", 3)
            assert tuple(back.values()) == (TS.astimezone(dt.UTC),
                                            decimal.Decimal("-0.0000000001"), b"\x00\xff",
                                            '{"x": null}', dt.date(2000, 2, 29))
            with pytest.raises(asyncpg.exceptions.UndefinedTableError):
                await conn.fetch("SELECT * FROM types.missing WHERE id = $1", 1)
            with pytest.raises(asyncpg.exceptions.PostgresSyntaxError):
                await conn.execute("SELEC 1")
            assert await conn.fetchval("SELECT count(*) FROM types.all_types WHERE id > $1", 0) >= 3
        finally:
            await conn.close()

    asyncio.run(main())


def test_cancel_stops_a_running_query(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="client's request"):
            conn.execute("SELECT count(*) FROM range(1000000000000) a")  # hours, uncancelled
        assert time.monotonic() - started < 10
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_cancel_stops_a_running_backup_job(pg: PgServer) -> None:
    """Progress arrives as notices; a cancel request (psql's Ctrl-C) is KILL JOB."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE slow")
        conn.execute("CREATE TABLE slow.t (id BIGINT PRIMARY KEY, pad TEXT)")
        conn.execute("INSERT INTO slow.t SELECT range, md5(range::TEXT) || md5((range * 7)::TEXT) "
                     "FROM range(40000)")
        notices: list[str] = []

        def on_notice(diag: Any) -> None:
            notices.append(diag.message_primary or "")
            if len(notices) == 1:
                threading.Timer(0.5, conn.cancel).start()

        conn.add_notice_handler(on_notice)
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("BACKUP DATABASE slow TO 'slow-target'")  # throttled: seconds
        assert "started" in notices[0]
        status = conn.execute("SELECT status FROM system.jobs WHERE job_type = 'backup' "
                              "AND namespace = 'slow'").fetchall()
        assert status == [("cancelled",)]
        assert conn.execute("SHOW BACKUPS FOR DATABASE slow").fetchall() == []


def test_token_auth_over_tls(pg_tls: PgServer) -> None:
    with psycopg.connect(pg_tls.dsn("anyone", password=ADMIN_TOKEN, sslmode="require"),
                         autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT current_user").fetchone() == ("root",)
        conn.execute("CREATE NAMESPACE secured")
        conn.execute("CREATE TABLE secured.t (id BIGINT PRIMARY KEY)")
        conn.execute("INSERT INTO secured.t VALUES (1)")
    with psycopg.connect(pg_tls.dsn("anyone", password=USER_TOKEN, sslmode="require"),
                         autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("joe",)
        # beside a table too (user and current_role were DuckDB's 'duckdb' there)
        cur = conn.execute("SELECT user, current_role, current_user, id FROM secured.t")
        assert cur.fetchall() == [("joe", "joe", "joe", 1)]
        assert [d.name for d in cur.description] == ["user", "current_role", "current_user", "id"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE NAMESPACE forbidden")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_tls.dsn("anyone", password="wrong", sslmode="require"))

    async def main() -> None:
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = await asyncpg.connect(pg_tls.url("x", ADMIN_TOKEN), ssl=ctx)
        try:
            assert await conn.fetchval("SELECT current_user") == "root"
        finally:
            await conn.close()
        with pytest.raises(asyncpg.exceptions.InvalidPasswordError):
            await asyncpg.connect(pg_tls.url("x", "nope"), ssl=ctx)

    asyncio.run(main())


def test_plain_text_sent_before_the_tls_handshake_is_refused(pg_tls: PgServer) -> None:
    """Bytes sent with the SSLRequest, before the handshake, are plain text (a
    man in the middle's): they were read as the first of the TLS session, so
    an injected start-up and query were run and answered inside the client's
    TLS session (PostgreSQL's CVE-2021-23214). Now FATAL 08P01, as PostgreSQL."""
    import socket
    import struct

    pairs = b"user\x00mallory\x00database\x00cairn\x00\x00"
    startup = struct.pack("!ii", len(pairs) + 8, 196608) + pairs
    with socket.create_connection(("127.0.0.1", pg_tls.port), timeout=20) as sock:
        sock.sendall(struct.pack("!ii", 8, 80877103) + startup)
        got = b""
        while chunk := sock.recv(4096):  # 'S', then the refusal in plain text, then closed
            got += chunk
    assert got[:2] == b"SE" and b"08P01" in got and b"unencrypted data" in got, got
    # A client that waits for the answer, as every one does, still connects.
    with psycopg.connect(pg_tls.dsn("anyone", password=ADMIN_TOKEN, sslmode="require"),
                         autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def _pgwire_requests(pg: PgServer) -> dict[tuple[str, str], float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{pg.proc.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "cairn_requests_total" and s.labels["protocol"] == "pgwire":
                key = (s.labels["kind"], s.labels["status"])
                counts[key] = counts.get(key, 0.0) + s.value
    return counts


def test_pgwire_statements_are_counted_in_metrics(pg: PgServer) -> None:
    before = _pgwire_requests(pg)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("SELECT 1")
        conn.execute("SELECT 2")
        with pytest.raises(psycopg.errors.InvalidSchemaName):  # 3F000: no such namespace
            conn.execute("SELECT * FROM nowhere_ns.nothing")
    after = _pgwire_requests(pg)
    assert after.get(("select", "ok"), 0) - before.get(("select", "ok"), 0) == 2
    assert after.get(("select", "NOT_FOUND"), 0) - before.get(("select", "NOT_FOUND"), 0) == 1


def test_a_protocol_refusal_is_counted_as_the_users_not_as_a_bug(pg: PgServer) -> None:
    """A SELECT of 1,700 columns is refused (54011) by the protocol layer itself,
    without a Cairn error code: it was counted as INTERNAL, a server bug."""
    before = _pgwire_requests(pg)
    wide = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(1700))
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.TooManyColumns):
            conn.execute(wide)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    after = _pgwire_requests(pg)
    assert after.get(("select", "INTERNAL"), 0) == before.get(("select", "INTERNAL"), 0)
    assert (after.get(("select", "INVALID_ARGUMENT"), 0)
            - before.get(("select", "INVALID_ARGUMENT"), 0)) == 1


@pytest.mark.parametrize(("sqlstate", "code"), [
    ("54011", "INVALID_ARGUMENT"), ("22003", "INVALID_ARGUMENT"), ("0A000", "INVALID_ARGUMENT"),
    ("42P02", "INVALID_ARGUMENT"), ("42601", "PARSE_ERROR"), ("42P05", "ALREADY_EXISTS"),
    ("26000", "NOT_FOUND"), ("34000", "NOT_FOUND"), ("08P01", "INVALID_REQUEST"),
    ("57014", "CANCELLED"), ("53300", "UNAVAILABLE"), ("28P01", "UNAUTHENTICATED"),
    ("XX000", "INTERNAL"),
])
def test_every_sqlstate_the_protocol_layer_raises_has_its_contract_code(
        sqlstate: str, code: str) -> None:
    assert contract_code(PgError(sqlstate, "x")) == code
    assert contract_code(PgError(sqlstate, "x", cairn_code="NOT_FOUND")) == "NOT_FOUND"


def test_every_token_the_config_takes_is_the_same_over_http_and_pgwire(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A token is printable ASCII without spaces (server/config_checks.py): the
    characters SASLprep leaves as they are and HTTP compares as sent. One of
    every such character (quotes and backslash included) logs in as its user
    over HTTP, psycopg (libpq) and asyncpg alike."""
    token = "".join(map(chr, range(0x21, 0x7F)))
    escaped = token.replace("\\", "\\\\").replace('"', '\\"')
    config = f'[auth]\nmode = "token"\n[[auth.tokens]]\ntoken = "{escaped}"\nuser = "punct"\n'
    starting = _start(tmp_path_factory.mktemp("punct"), config)
    server = next(starting)
    try:
        status, body = server.proc.post("SELECT current_user AS who",
                                        Authorization=f"Bearer {token}")
        assert status == 200 and body["results"][0]["rows"] == [{"who": "punct"}], body
        with psycopg.connect(server.url("x"), password=token) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("punct",)

        async def main() -> None:
            conn = await asyncpg.connect(server.url("x"), password=token)
            try:
                assert await conn.fetchval("SELECT current_user") == "punct"
            finally:
                await conn.close()

        asyncio.run(main())
    finally:
        starting.close()


def test_psycopg_type_info_finds_the_types(typed: PgServer) -> None:
    """psycopg's TypeInfo.fetch (what its register_* adapters use) found no
    type: `to_regtype()` was unknown and every `'name'::regtype` was 0."""
    from psycopg.types import TypeInfo

    with psycopg.connect(typed.dsn(), autocommit=True) as conn:
        for name, oid in (("json", 114), ("int4", 23), ("integer", 23), ("text", 25),
                          ("timestamp with time zone", 1184)):
            info = TypeInfo.fetch(conn, name)
            assert info is not None and info.oid == oid, name
            assert info.regtype == {"int4": "integer", "integer": "integer"}.get(name, name), info
        assert TypeInfo.fetch(conn, "no_such_type") is None
        got = conn.execute("SELECT 'json'::regtype::oid, to_regtype('nope'), "
                           "typname, oid::regtype::text FROM pg_type WHERE oid = 23").fetchone()
        assert got == (114, None, "int4", "integer")  # PostgreSQL's regtype output
