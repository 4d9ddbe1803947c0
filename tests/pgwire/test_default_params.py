"""A parameter as a DEFAULT (`ALTER TABLE … ADD COLUMN c T DEFAULT $1`):
a typed one (timestamp, date, json, bytea, a negative number) was refused
42601 "unexpected 'CAST' … expected one of: … string", naming the CAST or
from_hex Cairn writes a typed parameter as, which the client never wrote.
A DEFAULT takes a literal: the parameter's text is written in as one, and
the column's type reads it as a DEFAULT written so."""

from __future__ import annotations

import datetime as dt
import decimal

import psycopg
from psycopg.types.json import Json

from tests.pgwire.conftest import PgServer

PLUS5 = dt.timezone(dt.timedelta(hours=5))


def test_a_typed_parameter_is_taken_as_a_default(pg: PgServer) -> None:
    given = {
        "ts": ("TIMESTAMP", dt.datetime(2024, 6, 1, 12, 0)),
        "tz": ("TIMESTAMP", dt.datetime(2024, 6, 1, 12, 0, tzinfo=PLUS5)),
        "d": ("DATE", dt.date(2024, 6, 1)),
        "j": ("JSON", Json({"a": [1, "x"]})),
        "b": ("BYTES", b"\x00a\\\xc3\xa9'"),
        "neg": ("BIGINT", -5),
        "f": ("DOUBLE", -1.5),
        "n": ("DECIMAL(5,2)", decimal.Decimal("-1.25")),
        "s": ("TEXT", "it's $1"),
    }
    want = {
        "ts": dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC),
        "tz": dt.datetime(2024, 6, 1, 7, 0, tzinfo=dt.UTC),  # the instant, in UTC
        "d": dt.date(2024, 6, 1), "j": {"a": [1, "x"]}, "b": b"\x00a\\\xc3\xa9'", "neg": -5,
        "f": -1.5, "n": decimal.Decimal("-1.25"), "s": "it's $1",
    }
    with psycopg.connect(pg.dsn("admin"), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE dp; CREATE TABLE dp.t (k INT PRIMARY KEY)")
        for name, (typ, value) in given.items():
            conn.execute(f"ALTER TABLE dp.t ADD COLUMN {name} {typ} DEFAULT %s", (value,))
        conn.execute("INSERT INTO dp.t (k) VALUES (1)")
        cur = conn.execute(f"SELECT {', '.join(given)} FROM dp.t")
        assert dict(zip(given, cur.fetchone() or (), strict=True)) == want
        # A value the column cannot take is refused as the same DEFAULT written is.
        try:
            conn.execute("ALTER TABLE dp.t ADD COLUMN bad INT DEFAULT %s", (dt.date(2024, 6, 1),))
            raise AssertionError("a date DEFAULT of an INT column was taken")
        except psycopg.Error as exc:
            assert exc.sqlstate == "22023", exc
            assert "bad DEFAULT for column 'bad'" in str(exc) and "CAST" not in str(exc), exc
        # Elsewhere a parameter is the typed literal it always was.
        conn.execute("INSERT INTO dp.t (k, ts, b) VALUES (%s, %s, %s)",
                     (2, dt.datetime(2025, 1, 1), b"\xff"))
        assert conn.execute("SELECT ts, b FROM dp.t WHERE k = 2").fetchone() == (
            dt.datetime(2025, 1, 1, tzinfo=dt.UTC), b"\xff")
