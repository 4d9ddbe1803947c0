"""statement_timeout and search_path are honoured, not echoed: pgwire took
`SET statement_timeout = '1s'` and a query then ran for as long as the server
allowed, and `SET search_path TO app` left unqualified names "no namespace
given" (docs/pgwire.md: a setting Cairn does not honour is refused, not
echoed). Real psycopg connections, and the rules of server/pgwire/chatter.py."""

from __future__ import annotations

import time

import psycopg
import pytest

from server.pgwire import chatter
from server.session import Session
from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

SLOW = "SELECT count(*) FROM range(0, 4000000000) WHERE range % 7 = 0"


def _settings() -> tuple[chatter.Settings, Session]:
    session = Session(user_id="u")
    return chatter.Settings("u", {}, True, session), session


@pytest.mark.parametrize(("value", "seconds"), [
    ("250", 0.25), ("'250ms'", 0.25), ("'1.5s'", 1.5), ("'2min'", 120.0), ("0", None),
    ("'1 h'", 3600.0),
])
def test_statement_timeout_bounds_the_sessions_queries(value: str, seconds: float | None) -> None:
    settings, session = _settings()
    chatter.answer(f"SET statement_timeout = {value}", settings, b"I")
    assert session.timeout == seconds
    assert session.query_timeout(60.0) == min(60.0, seconds or 60.0)
    chatter.answer("RESET ALL", settings, b"I")
    assert session.timeout is None


@pytest.mark.parametrize("value", ["'abc'", "-5", "'5 fortnights'", "99999999999",
                                   "'\u0661s'"])
def test_a_statement_timeout_that_is_no_duration_is_refused(value: str) -> None:
    settings, session = _settings()
    with pytest.raises(chatter.ChatterError) as caught:
        chatter.answer(f"SET statement_timeout = {value}", settings, b"I")
    assert caught.value.code == "22023" and session.timeout is None


@pytest.mark.parametrize(("path", "namespace"), [
    ("app", "app"), ('"$user", public', None), ("public, App", "app"),
    ("pg_catalog, sales, app", "sales"), ("''", None),
])
def test_search_path_names_the_default_namespace(path: str, namespace: str | None) -> None:
    settings, session = _settings()
    chatter.answer(f"SET search_path TO {path}", settings, b"I")
    assert session.namespace == namespace
    chatter.answer("RESET search_path", settings, b"I")
    assert session.namespace is None


@pytest.mark.parametrize("path", ['"a b"', '"' + "x" * 5000 + '"', '"a.b"', '"\u202e"'])
def test_a_search_path_naming_no_namespace_name_is_refused(path: str) -> None:
    settings, session = _settings()
    with pytest.raises(chatter.ChatterError) as caught:
        chatter.answer(f"SET search_path TO {path}", settings, b"I")
    assert caught.value.code == "22023" and len(caught.value.message) < 300
    assert session.namespace is None


def test_a_start_up_search_path_and_statement_timeout_are_the_sessions() -> None:
    session = Session(user_id="u")
    chatter.Settings("u", {"options": "-c search_path=app -c statement_timeout=5s"}, True,
                     session)
    assert (session.namespace, session.timeout) == ("app", 5.0)


def test_over_psycopg_a_statement_timeout_cancels_and_a_search_path_resolves(
        pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE hs")
        conn.execute("CREATE TABLE hs.t (id BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO hs.t VALUES (1, 'a')")
        conn.execute("SET search_path TO hs")
        assert conn.execute("SELECT id, v FROM t").fetchall() == [(1, "a")]
        conn.execute("INSERT INTO t VALUES (2, 'b')")
        assert conn.execute("SELECT count(*) FROM hs.t").fetchone() == (2,)
        conn.execute("SET statement_timeout = '300ms'")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(SLOW)
        assert time.monotonic() - started < 5
        conn.execute("SET statement_timeout = 0")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_current_schema_follows_the_search_path(pg: PgServer) -> None:
    """current_schema() answered the connection's start-up namespace (NULL)
    whatever search_path said since, while unqualified names followed it;
    PostgreSQL answers the first schema of the path (ORMs read it)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS cs1")
        conn.execute("CREATE NAMESPACE IF NOT EXISTS cs2")
        assert conn.execute("SELECT current_schema()").fetchone() == (None,)
        conn.execute("SET search_path = cs1")
        assert conn.execute("SELECT current_schema()").fetchone() == ("cs1",)
        conn.execute("SELECT set_config('search_path', 'cs2', false)")
        assert conn.execute("SELECT current_schema()").fetchone() == ("cs2",)
        conn.execute("RESET search_path")
        assert conn.execute("SELECT current_schema()").fetchone() == (None,)
