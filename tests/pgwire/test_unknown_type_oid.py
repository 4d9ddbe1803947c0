"""A parameter declared (Parse) with an OID no type has is 42704 "type with
OID N does not exist" at Parse, the connection usable after; PostgreSQL
refuses it too. Until 2026-12-08 Cairn took it as text. Every type Cairn
shows or reads is one of PostgreSQL's, so what drivers declare goes on."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.adapt import Dumper

from server.pgwire import arrays, type_oids
from server.pgwire import types as t
from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


class Odd(str):
    """A value psycopg sends with the OID its dumper says."""


def _dumper(type_oid: int) -> type[Dumper]:
    class OddDumper(Dumper):
        oid = type_oid

        def dump(self, obj: object) -> bytes:
            return str(obj).encode()

    return OddDumper


@pytest.mark.parametrize("oid", [999_999, 16_384, 9_999, 31, 4_000_000_000])
def test_an_unknown_type_oid_is_refused_at_parse(pg: PgServer, oid: int) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.adapters.register_dumper(Odd, _dumper(oid))
        with pytest.raises(psycopg.errors.UndefinedObject,
                           match=f"^type with OID {oid} does not exist$"):
            conn.execute("SELECT %s::TEXT AS v", (Odd("x"),))
        with pytest.raises(psycopg.errors.UndefinedObject):  # prepared, whatever it runs
            conn.execute("SELECT 1 AS v WHERE %s IS NOT NULL", (Odd("x"),), prepare=True)
        assert conn.execute("SELECT %s::TEXT AS v", ("x",)).fetchall() == [("x",)]


@pytest.mark.parametrize(("oid", "value"), [(869, "10.0.0.1"), (25, "x"), (1043, "x")])
def test_a_postgresql_type_oid_goes_on(pg: PgServer, oid: int, value: str) -> None:
    """inet (869): no type of Cairn's, PostgreSQL's all the same, its text taken."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.adapters.register_dumper(Odd, _dumper(oid))
        got = conn.execute("SELECT CAST(%s AS VARCHAR) AS v", (Odd(value),)).fetchall()
        assert got == [(value,)]


def test_every_type_cairn_shows_is_known() -> None:
    shown = set(t.TYPES) | set(arrays.ELEMENTS)
    assert shown <= type_oids.POSTGRES_TYPES
