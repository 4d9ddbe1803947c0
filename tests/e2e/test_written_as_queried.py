"""A write stores what DuckDB (the query engine, TimeZone UTC) reads the same
SQL text as, so a row written with a literal is found by a WHERE with that
literal; where Cairn cannot agree, the write is INVALID_ARGUMENT naming the
column. Each case here was stored differently by the write than by a query:
a text's UTC offset, an ignored CAST in VALUES, a DEFAULT read as a float,
'\\xFF' into BYTES, a REAL rounded twice or underflowing to 0."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import err, ok, rows


@pytest.fixture
async def app(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE app")
    return client


# --- a text's UTC offset into TIMESTAMP / DATE --------------------------------


@pytest.mark.parametrize("text", [
    "INSERT INTO app.t (id, ts) VALUES (1, '2024-06-01 12:00:00+05:30')",
    "INSERT INTO app.t (id, dt) VALUES (1, '2024-06-01 23:00:00-05:00')",
    "INSERT INTO app.t (id, ts) SELECT 1, '2024-06-01 12:00:00+05:30'",
    "INSERT INTO app.t (id, ts) VALUES (1, '2024-06-01T12:00:00+0530')",
])
async def test_an_offset_text_is_refused_naming_the_column(app: Any, text: str) -> None:
    """DuckDB's cast drops the offset ('12:00+05:30'::TIMESTAMP is 12:00), the
    write converted it to UTC (06:30): no WHERE with the same text found it."""
    await ok(app, "CREATE TABLE app.t (id INT PRIMARY KEY, ts TIMESTAMP, dt DATE)")
    message = await err(app, text, "INVALID_ARGUMENT")
    assert "Column 'ts'" in message or "Column 'dt'" in message, message
    assert "UTC" in message and "TIMESTAMPTZ" in message, message
    assert await rows(app, "SELECT count(*) AS n FROM app.t") == [{"n": 0}]


async def test_an_offset_text_in_update_set_is_refused(app: Any) -> None:
    await ok(app, "CREATE TABLE app.t (id INT PRIMARY KEY, ts TIMESTAMP)")
    await ok(app, "INSERT INTO app.t (id, ts) VALUES (1, '2024-06-01 12:00:00')")
    message = await err(app, "UPDATE app.t SET ts = '2024-06-01 12:00:00+05:30'",
                        "INVALID_ARGUMENT")
    assert "Column 'ts'" in message, message
    assert await rows(app, "SELECT ts FROM app.t") == [{"ts": "2024-06-01T12:00:00.000Z"}]


async def test_utc_texts_and_typed_timestamptz_agree_with_the_query(app: Any) -> None:
    await ok(app, "CREATE TABLE app.t (id INT PRIMARY KEY, ts TIMESTAMP, dt DATE)")
    await ok(app, "INSERT INTO app.t (id, ts, dt) VALUES "
                  "(1, '2024-06-01 12:00:00Z', '2024-06-01 23:00:00+00:00'), "
                  "(2, TIMESTAMPTZ '2024-06-01 12:00:00+05:30', "
                  "   CAST('2024-06-01 23:00:00-05:00' AS TIMESTAMPTZ))")
    await ok(app, "INSERT INTO app.t (id, ts, dt) SELECT 3, "
                  "'2024-06-01 12:00:00+05:30'::TIMESTAMPTZ, "
                  "'2024-06-01 23:00:00-05:00'::TIMESTAMPTZ")
    assert await rows(app, "SELECT id, ts, dt FROM app.t ORDER BY id") == [
        {"id": 1, "ts": "2024-06-01T12:00:00.000Z", "dt": "2024-06-01"},
        {"id": 2, "ts": "2024-06-01T06:30:00.000Z", "dt": "2024-06-02"},
        {"id": 3, "ts": "2024-06-01T06:30:00.000Z", "dt": "2024-06-02"},
    ]
    # As a query reads the same typed texts (TIMESTAMPTZ -> TIMESTAMP/DATE in UTC):
    assert await rows(app, "SELECT id FROM app.t WHERE ts = TIMESTAMPTZ "
                           "'2024-06-01 12:00:00+05:30' AND dt = CAST(TIMESTAMPTZ "
                           "'2024-06-01 23:00:00-05:00' AS DATE) ORDER BY id") == [
        {"id": 2}, {"id": 3}]
    assert await rows(app, "SELECT id FROM app.t WHERE ts = '2024-06-01 12:00:00Z'") == [
        {"id": 1}]


# --- CAST in INSERT ... VALUES ------------------------------------------------


async def test_a_cast_in_values_is_applied_as_the_query_applies_it(app: Any) -> None:
    await ok(app, "CREATE TABLE app.c (id INT PRIMARY KEY, ts TIMESTAMP, tx TEXT, js JSON)")
    await ok(app, "INSERT INTO app.c (id, ts, tx) VALUES "
                  "(1, CAST('2024-06-01 12:34:56' AS DATE), CAST('2024-6-1' AS DATE)), "
                  "(2, CAST('2024-06-01' AS TIMESTAMP), CAST('2024-06-01 12:34:56' AS TIMESTAMP))")
    assert await rows(app, "SELECT id, ts, tx FROM app.c ORDER BY id") == [
        {"id": 1, "ts": "2024-06-01T00:00:00.000Z", "tx": "2024-06-01"},
        {"id": 2, "ts": "2024-06-01T00:00:00.000Z", "tx": "2024-06-01 12:34:56"},
    ]
    for bad in ("CAST('not a date' AS DATE)", "CAST('2024-02-30' AS DATE)",
                "CAST('{bad json' AS JSON)"):
        await err(app, f"INSERT INTO app.c (id, tx) VALUES (3, {bad})", "INVALID_ARGUMENT")
    assert await rows(app, "SELECT count(*) AS n FROM app.c") == [{"n": 2}]


# --- DEFAULT numbers ------------------------------------------------------------


async def test_a_default_number_is_exact(app: Any) -> None:
    """The grammar read 12345678901234567890.1234567891 as a float: every row
    that took the default got 12345678901234567000."""
    await ok(app, "CREATE TABLE app.d (id INT PRIMARY KEY, "
                  "v DECIMAL(38,10) DEFAULT 12345678901234567890.1234567891, "
                  "b BIGINT DEFAULT 9007199254740993.0, "
                  "r REAL DEFAULT 1.00000005960464477539062500000001, "
                  "j JSON DEFAULT 2.5, t TEXT DEFAULT 1.50)")
    await ok(app, "INSERT INTO app.d (id) VALUES (1)")
    await ok(app, "ALTER TABLE app.d ADD COLUMN x DECIMAL(38,10) "
                  "DEFAULT 98765432109876543210.0123456789")
    await ok(app, "INSERT INTO app.d (id) VALUES (2)")
    got = await rows(app, "SELECT id, v::VARCHAR AS v, b, r::VARCHAR AS r, x::VARCHAR AS x, "
                          "json_type(j) AS jt, length(j) AS jl, t FROM app.d ORDER BY id")
    want = {"v": "12345678901234567890.1234567891", "b": 9007199254740993, "r": "1.0000001",
            "x": "98765432109876543210.0123456789", "jt": "DOUBLE", "jl": 3, "t": "1.50"}
    assert got == [{"id": 1, **want}, {"id": 2, **want}]
    shown = {r["column_name"]: r["default_value"]
             for r in await rows(app, "DESCRIBE TABLE app.d")}
    assert shown["b"] == 9007199254740993
    message = await err(app, "CREATE TABLE app.e (b BIGINT DEFAULT 1.5)", "INVALID_ARGUMENT")
    assert "'b'" in message, message


async def test_describe_shows_the_default_number_exactly(app: Any) -> None:
    from server.app import CAIRN
    from storage.types import default_json

    await ok(app, "CREATE TABLE app.d (id INT PRIMARY KEY, "
                  "v DECIMAL(38,10) DEFAULT 12345678901234567890.1234567891)")
    cols = app.server.app[CAIRN].engine.state("app", "d").columns
    assert default_json(next(c for c in cols if c["name"] == "v")) == \
        "12345678901234567890.1234567891"


# --- text into BYTES ------------------------------------------------------------


async def test_text_into_bytes_means_what_the_blob_cast_means(app: Any) -> None:
    await ok(app, "CREATE TABLE app.b (id INT PRIMARY KEY, b BYTES)")
    await ok(app, r"INSERT INTO app.b (id, b) VALUES (1, '\xFF'), (2, 'a\x41\x0a'), (3, 'plain')")
    await ok(app, r"INSERT INTO app.b (id, b) SELECT 4, '\xfe'")
    await ok(app, r"UPDATE app.b SET b = '\x00\x01' WHERE id = 3")
    assert await rows(app, "SELECT id, hex(b) AS h FROM app.b ORDER BY id") == [
        {"id": 1, "h": "FF"}, {"id": 2, "h": "61410A"}, {"id": 3, "h": "0001"},
        {"id": 4, "h": "FE"}]
    assert await rows(app, r"SELECT id FROM app.b WHERE b = '\xFF'") == [{"id": 1}]
    for bad in (r"'\q'", r"'\x4'", r"'ab\'", "'é'", r"'\\x41'"):
        message = await err(app, f"INSERT INTO app.b (id, b) VALUES (9, {bad})",
                            "INVALID_ARGUMENT")
        assert "Column 'b'" in message, message
        # ... as the query's own cast refuses it:
        await err(app, f"SELECT CAST({bad} AS BLOB) AS v", "INVALID_ARGUMENT")


# --- REAL ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "INSERT INTO app.m (id, r) VALUES (1, 1e-46::DOUBLE)",
    "INSERT INTO app.m (id, r) SELECT 1, 5e-324::DOUBLE",
    "CREATE TABLE app.n (id INT PRIMARY KEY, r REAL DEFAULT 1e-46)",
])
async def test_a_real_underflowing_to_zero_is_refused_on_every_path(app: Any, text: str) -> None:
    await ok(app, "CREATE TABLE app.m (id INT PRIMARY KEY, r REAL, d DOUBLE)")
    message = await err(app, text, "INVALID_ARGUMENT")
    assert "out of range" in message and "'r'" in message, message
    assert await rows(app, "SELECT count(*) AS n FROM app.m") == [{"n": 0}]


async def test_a_real_from_update_set_underflowing_is_refused(app: Any) -> None:
    await ok(app, "CREATE TABLE app.m (id INT PRIMARY KEY, r REAL, d DOUBLE)")
    await ok(app, "INSERT INTO app.m (id, r, d) VALUES (1, 2.5, 5e-324)")
    message = await err(app, "UPDATE app.m SET r = d", "INVALID_ARGUMENT")
    assert "Column 'r'" in message and "out of range" in message, message
    assert await rows(app, "SELECT r FROM app.m") == [{"r": 2.5}]


async def test_a_real_literal_is_rounded_once_as_cast_rounds_it(app: Any) -> None:
    """1.00000005960464477539062500000001 is a hair above the tie of 1.0 and
    1.0000001: rounded to a double first it fell on the tie and went to 1.0."""
    await ok(app, "CREATE TABLE app.m (id INT PRIMARY KEY, r REAL)")
    number = "1.00000005960464477539062500000001"
    await ok(app, f"INSERT INTO app.m (id, r) VALUES (1, {number}), (2, '{number}'), "
                  f"(3, -{number}), (4, 1.000000059604644775390625)")
    got = await rows(app, "SELECT id, r::VARCHAR AS r FROM app.m ORDER BY id")
    cast = await rows(app, f"SELECT CAST({number} AS REAL)::VARCHAR AS r")
    assert cast == [{"r": "1.0000001"}]
    assert got == [{"id": 1, "r": "1.0000001"}, {"id": 2, "r": "1.0000001"},
                   {"id": 3, "r": "-1.0000001"}, {"id": 4, "r": "1.0"}]


# --- date, time and number text DuckDB's CAST does not read -------------------

UNREAD = [("d", "20240601"), ("d", "2024-W23-6"), ("d", "2024-06-01T12"), ("d", "2024-06-01z"),
          ("ts", "2024-06-01T12"), ("ts", "20240601T120000"), ("ts", "2024-06-01 12:00:00,5"),
          ("ts", "2024-W01-1 12:00"), ("ts", "2024-06-01 "), ("ts", "\x1c2024-06-01"),
          ("i", "\x1c5"), ("i", "5\x1f"), ("f", "\x1d1.5"), ("m", "1.5\x1f")]


@pytest.mark.parametrize(("column", "text"), UNREAD)
async def test_text_the_cast_cannot_read_is_refused_on_every_path(
        app: Any, column: str, text: str) -> None:
    """Python's fromisoformat (3.11) reads ISO basic and week forms and an
    hour alone, and str.strip() takes '\\x1c'-'\\x1f' as blanks: such text was
    stored ('2024-W23-6' as 2024-06-08), and then `WHERE d = '<the text>'` was
    a Conversion Error. Now the write is refused, naming the column."""
    await ok(app, "CREATE TABLE app.t (id INT PRIMARY KEY, d DATE, ts TIMESTAMP, i INT, "
                  "f DOUBLE, m DECIMAL(9,2))")
    await ok(app, "INSERT INTO app.t (id) VALUES (1)")
    literal = "'" + text + "'"
    for statement in (f"INSERT INTO app.t (id, {column}) VALUES (2, {literal})",
                      f"INSERT INTO app.t (id, {column}) VALUES (2, /* tree */ {literal})",
                      f"INSERT INTO app.t (id, {column}) SELECT 2, {literal}",
                      f"UPDATE app.t SET {column} = {literal} WHERE id = 1"):
        message = await err(app, statement, "INVALID_ARGUMENT")
        assert f"Column '{column}'" in message, (statement, message)
    assert await rows(app, f"SELECT id, {column} AS v FROM app.t") == [{"id": 1, "v": None}]


async def test_date_and_time_text_the_cast_reads_is_found_by_its_literal(app: Any) -> None:
    await ok(app, "CREATE TABLE app.t (id INT PRIMARY KEY, d DATE, ts TIMESTAMP)")
    texts = [" 2024-06-01 ", "2024-06-01 12:00", "2024-06-01T12:00:00.5Z", "2024-06-01 13:00:00.",
             "2024-06-01\t14:00:00 +00:00", "\n2024-06-01 15:00:00.1234567 "]
    for n, text in enumerate(texts, 1):
        column = "d" if n == 1 else "ts"
        await ok(app, f"INSERT INTO app.t (id, {column}) VALUES ({n}, '{text}')")
        found = await rows(app, f"SELECT id FROM app.t WHERE {column} = '{text}'")
        assert found == [{"id": n}], text


# --- the literal -0.0 into DOUBLE / REAL ----------------------------------------


async def test_the_literal_minus_zero_is_stored_as_duckdb_reads_it(app: Any) -> None:
    """DuckDB reads `-0.0` as the DECIMAL 0.0 negated, and a DECIMAL has no -0:
    its UPDATE and INSERT ... SELECT stored 0.0, INSERT ... VALUES (fast path
    and tree) -0.0. `-0e0` is a DOUBLE to it, and keeps its sign everywhere."""
    await ok(app, "CREATE TABLE app.t (id INT PRIMARY KEY, f DOUBLE, r REAL, s TEXT, "
                  "g DOUBLE DEFAULT -0.0, h DOUBLE DEFAULT -0e0)")
    for number in ("-0.0", "-0e0"):
        await ok(app, "DELETE FROM app.t")
        await ok(app, f"INSERT INTO app.t (id, f, r, s) VALUES (1, {number}, {number}, {number});"
                      f"INSERT INTO app.t (id, f, r, s) VALUES (2, /* tree */ {number}, {number}, "
                      f"{number});"
                      f"INSERT INTO app.t (id, f, r, s) SELECT 3, {number}, {number}, {number};"
                      f"INSERT INTO app.t (id) VALUES (4);"
                      f"UPDATE app.t SET f = {number}, r = {number}, s = {number} WHERE id = 4")
        want = (await rows(app, f"SELECT CAST({number} AS DOUBLE)::VARCHAR AS f"))[0]["f"]
        got = await rows(app, "SELECT f::VARCHAR AS f, r::VARCHAR AS r, s FROM app.t ORDER BY id")
        assert got == [{"f": want, "r": want, "s": want}] * 4, number
    defaults = await rows(app, "SELECT g::VARCHAR AS g, h::VARCHAR AS h FROM app.t WHERE id = 1")
    assert defaults == [{"g": "0.0", "h": "-0.0"}]


async def test_a_negative_zero_default_reads_alike_in_files_and_buffer(app: Any) -> None:
    """A DOUBLE or REAL column added with a negative-zero DEFAULT (`-0e0`,
    a DOUBLE to DuckDB) read +0.0 for rows flushed before the ALTER (the
    file's view wrote CAST(-0.0 AS DOUBLE), a negated DECIMAL 0) and -0.0 for
    the others; a restore to a time showed the other sign for the same row."""
    await ok(app, "CREATE TABLE app.z (k INT PRIMARY KEY); INSERT INTO app.z VALUES (1); "
                  "FLUSH TABLE app.z; INSERT INTO app.z VALUES (2); "
                  "ALTER TABLE app.z ADD COLUMN d DOUBLE DEFAULT -0e0; "
                  "ALTER TABLE app.z ADD COLUMN r REAL DEFAULT -0e0; "
                  "INSERT INTO app.z (k) VALUES (3)")
    got = await rows(app, "SELECT k, 1 / d AS d, 1 / r AS r FROM app.z ORDER BY k")
    assert got == [{"k": k, "d": "-inf", "r": "-inf"} for k in (1, 2, 3)], got


# --- decimals DuckDB reads exactly ---------------------------------------------


async def test_a_decimal_default_reads_exactly_in_files_written_before_it(app: Any) -> None:
    """Rows in a file written before ALTER TABLE ... ADD COLUMN read the default
    through a literal in their view: str(Decimal) unquoted, which DuckDB read as
    a DOUBLE past 38 digits (0.1234... of 38 decimals lost its last digits,
    0.99...9 read 1.0 and every SELECT * and UPDATE of those rows failed) and
    in E notation (1.2345...E-8)."""
    await ok(app, "CREATE TABLE app.v (k INT PRIMARY KEY, x INT); "
                  "INSERT INTO app.v VALUES (1, 1); FLUSH TABLE app.v; "
                  "INSERT INTO app.v VALUES (2, 2)")
    defaults = {"a": ("DECIMAL(38,38)", "'0.12345678901234567890123456789012345678'"),
                "b": ("DECIMAL(38,30)", "0.00000001234567890123456789012345"),
                "c": ("DECIMAL(38,38)", "'0.99999999999999999999999999999999999999'")}
    for name, (typ, default) in defaults.items():
        await ok(app, f"ALTER TABLE app.v ADD COLUMN {name} {typ} DEFAULT {default}")
    await ok(app, "INSERT INTO app.v (k, x) VALUES (3, 3)")
    want = {"a": "0.12345678901234567890123456789012345678",
            "b": "0.000000012345678901234567890123", "c": "0." + "9" * 38}
    got = await rows(app, "SELECT * FROM app.v ORDER BY k")  # every column: the view's
    assert [{n: v for n, v in r.items() if not n.startswith("_")} for r in got] == \
        [{"k": k, "x": k, **want} for k in (1, 2, 3)]
    await ok(app, "UPDATE app.v SET x = 9 WHERE k = 1")
    assert await rows(app, "SELECT a, b, c FROM app.v WHERE k = 1") == [want]
    await ok(app, "BACKUP DATABASE app TO 'dflt'; RESTORE DATABASE app FROM 'dflt' AS copy")
    assert await rows(app, "SELECT a, b, c FROM copy.v ORDER BY k") == [want] * 3


DOUBLE_READ = [  # (column type, a literal DuckDB reads as a DOUBLE)
    ("DECIMAL(38,10)", "1.00000000004999999999999999999999999999999"),  # 43 digits
    ("DECIMAL(38,38)", "0.12345678901234567890123456789012345678"),  # 39, the 0 counted
    ("DECIMAL(38,20)", "1.2345678901234567891e0"),
    ("DECIMAL(38,10)", "-1.00000000004999999999999999999999999999999"),
    ("REAL", "1.000000059604644775390625000000000000001"),  # a hair past a REAL tie
    ("BIGINT", "9007199254740993.000000000000000000000000"),
]


@pytest.mark.parametrize(("typ", "number"), DOUBLE_READ)
async def test_a_literal_duckdb_reads_as_a_double_is_stored_as_that_double(
        app: Any, typ: str, number: str) -> None:
    """INSERT ... VALUES (and a DEFAULT) read a literal of more than 38 digits,
    or with an exponent, exactly; UPDATE SET, INSERT ... SELECT and CAST read it
    as DuckDB does, a DOUBLE: the same text stored two values. And a DOUBLE
    went into a DECIMAL through its shortest text (1.2345678901234567), not as
    DuckDB's CAST puts it (1.23456789012345667584)."""
    await ok(app, f"CREATE TABLE app.n (id INT PRIMARY KEY, v {typ}, w {typ} DEFAULT {number})")
    await ok(app, f"INSERT INTO app.n (id, v) VALUES (1, {number});"
                  f"INSERT INTO app.n (id, v) VALUES (2, /* tree */ {number}), (3, NULL);"
                  f"INSERT INTO app.n (id, v) SELECT 4, {number};"
                  f"UPDATE app.n SET v = {number} WHERE id = 3")
    want = (await rows(app, f"SELECT CAST({number} AS {typ})::VARCHAR AS v"))[0]["v"]
    got = await rows(app, "SELECT id, v::VARCHAR AS v, w::VARCHAR AS w FROM app.n ORDER BY id")
    assert got == [{"id": i, "v": want, "w": want} for i in (1, 2, 3, 4)]


async def test_a_literal_whose_double_is_past_the_column_is_refused_on_every_path(
        app: Any) -> None:
    """0. and 38 nines is 39 digits: DuckDB's DOUBLE 1.0, past a DECIMAL(38,38).
    INSERT ... VALUES stored it and UPDATE refused it; now every path refuses
    it (as text, a cast reads it exactly: taken)."""
    nines = "0." + "9" * 38
    await ok(app, "CREATE TABLE app.e (id INT PRIMARY KEY, e DECIMAL(38,38)); "
                  "INSERT INTO app.e VALUES (1, NULL)")
    for statement in (f"INSERT INTO app.e VALUES (2, {nines})",
                      f"INSERT INTO app.e VALUES (2, /* tree */ {nines})",
                      f"INSERT INTO app.e SELECT 2, {nines}",
                      f"UPDATE app.e SET e = {nines} WHERE id = 1",
                      f"ALTER TABLE app.e ADD COLUMN f DECIMAL(38,38) DEFAULT {nines}",
                      f"ALTER TABLE app.e ADD COLUMN f DECIMAL(38,38) DEFAULT {nines[1:]}"):
        message = await err(app, statement, "INVALID_ARGUMENT")
        assert "'e'" in message or "'f'" in message, (statement, message)
    await ok(app, f"UPDATE app.e SET e = '{nines}' WHERE id = 1")
    assert await rows(app, "SELECT e FROM app.e") == [{"e": nines}]
