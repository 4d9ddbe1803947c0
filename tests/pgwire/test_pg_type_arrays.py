"""pg_type's array rows pair as PostgreSQL's: every `_x` row's typelem names
x and x's typarray names `_x`, with PostgreSQL's OIDs (psycopg's registry of
PostgreSQL's built-in types is the reference). Until 2026-12-08 `_char`'s
typelem was 0, and char, name, json, jsonb, time, interval, regclass, … had
typarray 0: psycopg's TypeInfo.fetch('json') said no array type."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import postgres
from psycopg.types import TypeInfo

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def _rows(pg: PgServer) -> dict[str, tuple[int, int, int, str]]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        rows = conn.execute("SELECT typname, oid, typelem, typarray, typcategory "
                            "FROM pg_catalog.pg_type").fetchall()
    return {name: (oid, elem, array, category) for name, oid, elem, array, category in rows}


def test_every_array_row_pairs_with_its_element(pg: PgServer) -> None:
    rows = _rows(pg)
    by_oid = {oid: name for name, (oid, _, _, _) in rows.items()}
    arrays = [name for name in rows if name.startswith("_")]
    assert "_char" in arrays and "_text" in arrays
    for name in arrays:
        oid, elem, array, category = rows[name]
        assert by_oid.get(elem) == name[1:], name  # typelem names x
        assert rows[name[1:]][2] == oid, name  # x's typarray names _x
        assert (array, category) == (0, "A"), name
    for name, (_, _, array, _) in rows.items():  # and every typarray is such a row
        if array:
            assert by_oid.get(array) == "_" + name, name


def test_the_oids_are_postgresqls(pg: PgServer) -> None:
    rows = _rows(pg)
    known = 0
    for name, (oid, _, array, _) in rows.items():
        info = postgres.types.get(name)
        if info is None or name.startswith("_"):
            continue
        known += 1
        assert (oid, array) == (info.oid, info.array_oid), name
    assert known >= 20
    assert rows["char"][2] == 1002 and rows["_char"][1] == 18  # psycopg has no "char"
    assert rows["name"][1] == 18 and rows["int2vector"][1] == 21  # PostgreSQL's fixed arrays


@pytest.mark.parametrize("name", ["char", "json", "jsonb", "name", "interval", "time",
                                  "regclass", "int4", "uuid"])
def test_psycopg_typeinfo_finds_the_array(pg: PgServer, name: str) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        info = TypeInfo.fetch(conn, name)
    assert info is not None and info.array_oid != 0
    expected = postgres.types.get(name)
    assert expected is None or info.array_oid == expected.array_oid
