"""Read-only transactions and another identity are refused, not echoed
(docs/pgwire.md). PostgreSQL reads a Boolean setting's `t`, `tru`, `y` and
`1` as on: `SET default_transaction_read_only = t` was taken (ParameterStatus
said `t`), and so were `SET transaction_read_only = y`, `SET SESSION
CHARACTERISTICS AS TRANSACTION READ ONLY` and `SET TRANSACTION READ ONLY`,
and the next INSERT ran; `SET ROLE bob`, `SET LOCAL ROLE bob` and `SET
SESSION AUTHORIZATION bob` answered SET while current_user stayed alice.
The rules of server/pgwire/chatter.py, and real psycopg connections."""

from __future__ import annotations

import psycopg
import pytest

from server.pgwire import chatter
from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

READ_ONLY = [
    "SET default_transaction_read_only = on", "SET default_transaction_read_only = t",
    "SET default_transaction_read_only = tru", "SET default_transaction_read_only TO 'TRUE'",
    "SET default_transaction_read_only = y", "SET default_transaction_read_only = 1",
    "SET SESSION default_transaction_read_only = ye", "SET transaction_read_only = y",
    "SET LOCAL transaction_read_only TO on", "SET transaction_read_only = 'Yes'",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY",
    "SET TRANSACTION READ ONLY", "SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ ONLY",
    "BEGIN READ ONLY", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ  ONLY",
]
READ_WRITE = [
    "SET default_transaction_read_only = off", "SET default_transaction_read_only = f",
    "SET default_transaction_read_only = 'of'", "SET default_transaction_read_only = 0",
    "SET default_transaction_read_only = no", "SET transaction_read_only = false",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "SET TRANSACTION READ WRITE",
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
]
OTHER_IDENTITY = [
    "SET SESSION AUTHORIZATION bob", "SET SESSION AUTHORIZATION 'Alice'", "SET ROLE bob",
    "SET LOCAL ROLE bob", "SET SESSION ROLE bob", "SET role = bob", "SET ROLE TO 'bob'",
    'SET ROLE "Alice"', "SET session_authorization = bob", "SET LOCAL role TO admin",
]
OWN_IDENTITY = [
    "SET ROLE alice", "SET ROLE Alice", "SET ROLE NONE", "RESET ROLE", "SET LOCAL ROLE 'alice'",
    'SET ROLE "alice"', "SET role = none", "SET SESSION AUTHORIZATION alice",
    "SET SESSION AUTHORIZATION DEFAULT", "RESET SESSION AUTHORIZATION",
    "SET session_authorization = alice",
]


def _settings() -> chatter.Settings:
    return chatter.Settings("alice", {}, True)


@pytest.mark.parametrize("sql", READ_ONLY)
def test_every_read_only_form_is_refused_0a000(sql: str) -> None:
    settings = _settings()
    with pytest.raises(chatter.ChatterError) as caught:
        chatter.answer(sql, settings, b"I")
    assert caught.value.code == "0A000"
    assert settings.values == _settings().values


@pytest.mark.parametrize("sql", READ_WRITE)
def test_read_write_is_taken_and_shown_as_postgresql_shows_it(sql: str) -> None:
    settings = _settings()
    answer = chatter.answer(sql, settings, b"I")
    assert answer is not None and answer.tag == "SET"
    assert settings.values["default_transaction_read_only"] == "off"
    assert settings.values["transaction_read_only"] == "off"
    assert set(answer.changed.values()) <= {"off"}  # not `f`, `of` or `0`


@pytest.mark.parametrize("value", ["o", "maybe", "'on off'", "2"])
def test_a_read_only_setting_that_is_no_boolean_is_22023(value: str) -> None:
    with pytest.raises(chatter.ChatterError, match="requires a Boolean value") as caught:
        chatter.answer(f"SET default_transaction_read_only = {value}", _settings(), b"I")
    assert caught.value.code == "22023"


@pytest.mark.parametrize("sql", OTHER_IDENTITY)
def test_another_role_or_session_authorization_is_refused_55p02(sql: str) -> None:
    settings = _settings()
    with pytest.raises(chatter.ChatterError, match=r"logged in as \('alice'\)") as caught:
        chatter.answer(sql, settings, b"I")
    assert caught.value.code == "55P02"
    assert settings.values == _settings().values


@pytest.mark.parametrize("sql", OWN_IDENTITY)
def test_the_connections_own_user_or_no_role_is_taken(sql: str) -> None:
    settings = _settings()
    answer = chatter.answer(sql, settings, b"I")
    assert answer is not None and answer.tag in ("SET", "RESET")
    assert settings.values["session_authorization"] == "alice"
    assert settings.values["role"] in ("none", "alice")


def test_start_up_and_set_config_follow_the_same_rule() -> None:
    for options in ("-c default_transaction_read_only=t", "-c transaction_read_only=1",
                    "-c role=bob", "--session-authorization=bob"):
        with pytest.raises(chatter.ChatterError):
            chatter.Settings("alice", {"options": options}, True)
    assert chatter.Settings("alice", {"options": "-c role=alice"}, True).values["role"] == "alice"
    with pytest.raises(chatter.ChatterError) as caught:
        chatter.checked("role", "bob", "alice")
    assert caught.value.code == "55P02"
    assert chatter.checked("role", "alice", "alice") == "alice"


def test_over_psycopg_nothing_read_only_or_of_another_user_is_taken(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn("alice"), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS rolesro")
        conn.execute("CREATE TABLE IF NOT EXISTS rolesro.t (id BIGINT PRIMARY KEY)")
        for sql in ("SET default_transaction_read_only = t", "SET transaction_read_only = y",
                    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"):
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                conn.execute(sql)
        assert conn.info.parameter_status("default_transaction_read_only") == "off"
        with pytest.raises(psycopg.errors.FeatureNotSupported), conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
        conn.execute("SET default_transaction_read_only = f")
        assert conn.info.parameter_status("default_transaction_read_only") == "off"
        for sql in ("SET SESSION AUTHORIZATION bob", "SET ROLE bob", "SET LOCAL ROLE bob",
                    "SELECT set_config('role', 'bob', false)"):
            with pytest.raises(psycopg.errors.CantChangeRuntimeParam):
                conn.execute(sql)
        assert conn.execute("SELECT current_user").fetchone() == ("alice",)
        assert conn.execute("SHOW session_authorization").fetchone() == ("alice",)
        conn.execute("SET ROLE alice")
        assert conn.execute("SHOW role").fetchone() == ("alice",)
        conn.execute("RESET ROLE")
        assert conn.execute("SHOW role").fetchone() == ("none",)
        conn.execute("SET SESSION AUTHORIZATION DEFAULT")
        conn.execute("INSERT INTO rolesro.t VALUES (1)")  # it was never read-only
    for options in ("-c default_transaction_read_only=tru", "-c role=bob"):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.dsn("alice"), options=options)
