"""Over the PostgreSQL protocol too, names fold A-Z only (as PostgreSQL's own
identifiers do): `SET search_path = '\u212aELVIN'` (U+212A KELVIN SIGN) set
namespace kelvin, and a table or column named with it acted on kelvin.k or
column k. Now the SET is 22023 at SET (docs/pgwire.md), a write 22023, a read
42P01 or 3F000, nothing changes."""

from __future__ import annotations

import psycopg
import pytest

from server.pgwire import chatter
from tests.pgwire.conftest import PgServer
from tests.pgwire.test_settings import _start

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

K = "\u212a"


def test_search_path_folds_a_to_z_only() -> None:
    assert chatter.search_namespace('"$user", App_1') == "app_1"
    assert chatter.search_namespace(f"{K}ELVIN") == f"{K}elvin"
    settings = chatter.Settings("u", {}, False)
    with pytest.raises(chatter.ChatterError) as caught:
        chatter.answer(f"SET search_path = '{K}ELVIN'", settings, b"I")
    assert caught.value.code == "22023"


def test_a_homoglyph_name_acts_on_nothing(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE kelvin; CREATE TABLE kelvin.k (id INT PRIMARY KEY, v INT);"
                     "INSERT INTO kelvin.k VALUES (1, 1), (2, 2);"
                     "CREATE TABLE kelvin.c (id INT PRIMARY KEY, k INT);"
                     "INSERT INTO kelvin.c VALUES (1, 5)")
        for sql in (f"SET search_path = '{K}ELVIN'", f"SET search_path = {K}ELVIN",
                    f'SET search_path TO "{K}elvin", public'):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="no namespace name"):
                conn.execute(sql)
        assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)
        for sql in (f"DELETE FROM kelvin.{K} WHERE id = 1", f'UPDATE kelvin."{K}" SET v = 9',
                    f"INSERT INTO {K}ELVIN.k VALUES (3, 3)",
                    f"INSERT INTO kelvin.c (id, {K}) VALUES (2, 6)",
                    f"UPDATE kelvin.c SET {K} = 9", f"SELECT {K} FROM kelvin.c"):
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                conn.execute(sql)
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute(f"SELECT * FROM kelvin.{K}")
        with pytest.raises(psycopg.errors.InvalidSchemaName):
            conn.execute(f"SELECT * FROM {K}ELVIN.k")
        conn.execute("SET search_path = kelvin")  # the ASCII name is taken
        assert conn.execute("SELECT id, v FROM k ORDER BY id").fetchall() == [(1, 1), (2, 2)]
        assert conn.execute("SELECT id, k FROM c").fetchall() == [(1, 5)]
    # and as a start-up option, the connection fails
    errors = _start(pg, ("options", f"-c search_path={K}ELVIN"))
    assert [(e["S"], e["C"]) for e in errors] == [("FATAL", "22023")], errors
