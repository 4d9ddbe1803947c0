"""Settings Cairn does not honour are refused, not echoed (docs/pgwire.md):
by SET, as start-up parameters and in the start-up `options`; what drivers
send when they connect still works. Real psycopg and asyncpg connections, and
the pure rules of server/pgwire/chatter.py."""

from __future__ import annotations

import asyncio
import socket
import struct

import asyncpg
import psycopg
import pytest

from server.pgwire import chatter
from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _PENDING, _fields, _read_all

REFUSED = [
    "SET TimeZone = 'America/New_York'", "SET TIME ZONE 'Europe/Paris'",
    "SET TimeZone = 'no/such_zone'", "SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE",
    "SET TIME ZONE '+01'", "SET standard_conforming_strings = off",
    "SET standard_conforming_strings TO false", "SET IntervalStyle = 'iso_8601'",
    "SET intervalstyle TO sql_standard", "SET bytea_output = 'escape'",
    "SET extra_float_digits = 0", "SET extra_float_digits = -15",
    "SET extra_float_digits = 'x'",
]
TAKEN = [
    ("SET TimeZone = 'UTC'", "timezone", "UTC"), ("SET TIME ZONE 'Etc/UTC'", "timezone", "Etc/UTC"),
    ("SET timezone TO 'GMT'", "timezone", "GMT"), ("SET TIME ZONE 'Z'", "timezone", "Z"),
    ("SET TIME ZONE '+00'", "timezone", "UTC"), ("SET TIME ZONE '00:00'", "timezone", "UTC"),
    ("SET TIME ZONE 0", "timezone", "UTC"), ("SET TIME ZONE LOCAL", "timezone", "UTC"),
    ("SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", "timezone", "UTC"),
    ("SET standard_conforming_strings = on", "standard_conforming_strings", "on"),
    ("SET IntervalStyle = 'postgres'", "intervalstyle", "postgres"),
    ("SET bytea_output = hex", "bytea_output", "hex"),
    ("SET extra_float_digits = 3", "extra_float_digits", "3"),
    ("SET extra_float_digits TO 1", "extra_float_digits", "1"),
]


@pytest.mark.parametrize("sql", REFUSED)
def test_a_setting_cairn_does_not_honour_is_refused(sql: str) -> None:
    settings = chatter.Settings("u", {}, False)
    with pytest.raises(chatter.ChatterError) as caught:
        chatter.answer(sql, settings, b"I")
    assert caught.value.code == "22023"
    assert settings.values == chatter.Settings("u", {}, False).values


@pytest.mark.parametrize(("sql", "name", "value"), TAKEN)
def test_a_setting_cairn_honours_is_taken(sql: str, name: str, value: str) -> None:
    settings = chatter.Settings("u", {}, False)
    settings.values["timezone"] = "GMT"  # LOCAL resets it
    chatter.answer(sql, settings, b"I")
    assert settings.values[name] == value


def test_start_up_options_are_read_as_postgresql_reads_them() -> None:
    taken = chatter.Settings("u", {"options": "-c TimeZone=Etc/UTC --search-path=a,\\ b "
                                              "-cextra_float_digits=2"}, False)
    assert (taken.values["timezone"], taken.values["search_path"],
            taken.values["extra_float_digits"]) == ("Etc/UTC", "a, b", "2")
    for options in ("-c TimeZone=America/New_York", "--intervalstyle=iso_8601",
                    "-c standard_conforming_strings=off", "-B 100", "-c timezone"):
        with pytest.raises(chatter.ChatterError):
            chatter.Settings("u", {"options": options}, False)


def test_a_refused_setting_over_psycopg_is_22023_and_nothing_changes(pg: PgServer) -> None:
    """`SET TimeZone = 'America/New_York'` was echoed (SHOW, ParameterStatus:
    psycopg showed times in New York) while zone-less input was read as UTC;
    standard_conforming_strings = off, IntervalStyle, bytea_output were echoed
    while nothing changed."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for sql in REFUSED:
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                conn.execute(sql)
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
        assert str(conn.info.timezone) == "UTC"
        assert conn.info.parameter_status("standard_conforming_strings") == "on"
        assert conn.info.parameter_status("IntervalStyle") == "postgres"
        assert conn.execute("SHOW bytea_output").fetchone() == ("hex",)
        conn.execute("SET TIME ZONE 'Etc/UTC'")
        conn.execute("SET extra_float_digits = 3")
        assert conn.execute("SELECT 1.5::DOUBLE").fetchone() == (1.5,)


def _start(pg: PgServer, *settings: tuple[str, str]) -> list[dict[str, str]]:
    body = struct.pack("!i", 196608) + b"user\x00raw\x00database\x00cairn\x00"
    body += b"".join(k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in settings) + b"\x00"
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as sock:
        _PENDING.pop(sock.fileno(), None)
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        return [_fields(b) for tag, b in _read_all(sock) if tag == b"E"]


@pytest.mark.parametrize("setting", [
    ("TimeZone", "America/New_York"), ("options", "-c TimeZone=Europe/Berlin"),
    ("options", "--IntervalStyle=iso_8601"), ("standard_conforming_strings", "off"),
    ("options", "-c bytea_output=escape"), ("extra_float_digits", "0"),
])
def test_a_start_up_setting_cairn_does_not_honour_fails_the_connection(
        pg: PgServer, setting: tuple[str, str]) -> None:
    """`options=-c TimeZone=…` was skipped in silence, a TimeZone start-up
    parameter echoed as applied."""
    errors = _start(pg, setting)
    assert [(e["S"], e["C"]) for e in errors] == [("FATAL", "22023")], errors


def test_what_drivers_send_when_they_connect_still_works(pg: PgServer) -> None:
    """JDBC's start-up (TimeZone of a UTC JVM, DateStyle, extra_float_digits 3,
    client_encoding), psql's, and psycopg and asyncpg as they connect."""
    assert _start(pg, ("TimeZone", "UTC"), ("DateStyle", "ISO"), ("extra_float_digits", "3"),
                  ("client_encoding", "UTF8"), ("application_name", "jdbc")) == []
    assert _start(pg, ("TimeZone", "Etc/UTC"), ("options", "-c extra_float_digits=2")) == []
    with psycopg.connect(pg.dsn(), options="-c TimeZone=UTC -c statement_timeout=0",
                         autocommit=True) as conn:
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
    with pytest.raises(psycopg.OperationalError, match="TimeZone"):
        psycopg.connect(pg.dsn(), options="-c TimeZone=Asia/Tokyo")

    async def run() -> None:
        c = await asyncpg.connect(pg.url(), server_settings={"TimeZone": "UTC",
                                                             "extra_float_digits": "3"})
        try:
            assert await c.fetchval("SHOW TimeZone") == "UTC"
        finally:
            await c.close()
        with pytest.raises(asyncpg.InvalidParameterValueError, match="TimeZone"):
            await asyncpg.connect(pg.url(), server_settings={"TimeZone": "Asia/Tokyo"})

    asyncio.run(run())


def test_a_real_goes_in_text_as_postgresql_writes_it(pg: PgServer) -> None:
    """With extra_float_digits 1 to 3 PostgreSQL writes a float4 in the fewest
    digits that read back as it: a REAL 0.1 went as 0.10000000149011612 (the
    shortest double of that float4), which psycopg read as another number."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("SET extra_float_digits = 3")
        cur = conn.execute("SELECT CAST(0.1 AS REAL) a, CAST(123456789 AS REAL) b, "
                           "CAST('-0.0' AS REAL) c, CAST(0.1 AS DOUBLE) d")
        assert cur.fetchone() == (0.1, 123456790.0, -0.0, 0.1)  # as read from PostgreSQL
        assert cur.pgresult is not None
        assert [cur.pgresult.get_value(0, i) for i in range(4)] == [
            b"0.1", b"1.2345679e+08", b"-0", b"0.1"]


SET_CONFIG_REFUSED = [
    ("TimeZone", "America/New_York"), ("standard_conforming_strings", "off"),
    ("DateStyle", "SQL, DMY"), ("IntervalStyle", "iso_8601"), ("bytea_output", "escape"),
    ("extra_float_digits", "0"), ("extra_float_digits", "-15"),
]


def test_set_config_refuses_what_set_refuses_and_applies_what_it_takes(pg: PgServer) -> None:
    """set_config(name, value, is_local) returned its value, applied or not:
    TimeZone 'America/New_York' came back while SHOW TimeZone stayed UTC. Found
    by trying. Now it is SET's rule: 22023 for what SET refuses, and what SET
    takes is applied (SHOW, current_setting, ParameterStatus) and returned as held."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for name, value in SET_CONFIG_REFUSED:
            for is_local in ("false", "true"):
                with pytest.raises(psycopg.errors.InvalidParameterValue):
                    conn.execute(f"SELECT set_config('{name}', '{value}', {is_local})")
            with pytest.raises(psycopg.errors.InvalidParameterValue):  # as parameters
                conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
        assert conn.execute("SHOW DateStyle").fetchone() == ("ISO, MDY",)
        assert conn.execute("SHOW extra_float_digits").fetchone() == ("1",)
        assert conn.info.parameter_status("standard_conforming_strings") == "on"
        assert conn.info.parameter_status("IntervalStyle") == "postgres"
        with pytest.raises(psycopg.errors.CantChangeRuntimeParam):  # 55P02, as SET
            conn.execute("SELECT set_config('server_version', '9.6', false)")
        # Taken: applied, and returned as SET holds it ('+00' is UTC).
        assert conn.execute("SELECT set_config('TimeZone', '+00', false)").fetchone() == ("UTC",)
        assert conn.execute("SELECT set_config(%s, %s, false)",
                            ("application_name", "nightly")).fetchone() == ("nightly",)
        assert conn.execute("SELECT set_config('extra_float_digits', '2', true)").fetchone() \
            == ("2",)
        assert conn.execute("SELECT current_setting('application_name') AS a").fetchone() == (
            "nightly",)
        assert conn.execute("SHOW extra_float_digits").fetchone() == ("2",)
        assert conn.info.parameter_status("application_name") == "nightly"
        assert conn.info.parameter_status("TimeZone") == "UTC"


def test_a_set_config_that_answers_no_row_or_is_only_described_sets_nothing(
        pg: PgServer) -> None:
    """set_config() was applied at the query's reading: `… WHERE false`, and a
    prepared statement Described and never executed (asyncpg's prepare()),
    changed search_path, so the next queries read another namespace's tables."""
    async def prepared_only() -> tuple[str, str]:
        conn = await asyncpg.connect(pg.url())
        try:
            statement = await conn.prepare("SELECT set_config('search_path', 'elsewhere', false)")
            assert [a.name for a in statement.get_attributes()] == ["set_config"]
            return (await conn.fetchval("SHOW search_path"),
                    await conn.fetchval("SELECT set_config('application_name', 'ran', false)"))
        finally:
            await conn.close()

    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT set_config('search_path', 'elsewhere', false) "
                            "FROM pg_catalog.pg_namespace WHERE false").fetchall() == []
        assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)
        assert conn.execute("SELECT set_config('search_path', 'here', false)").fetchone() == (
            "here",)
        assert conn.execute("SHOW search_path").fetchone() == ("here",)
    assert asyncio.run(prepared_only()) == ('"$user", public', "ran")


def test_reset_goes_back_to_the_start_up_settings(pg: PgServer) -> None:
    """RESET and RESET ALL went back to Cairn's defaults, not the start-up
    packet's settings (PostgreSQL's session defaults): a pooled client lost
    its search_path ('no namespace given') and its statement_timeout."""
    with psycopg.connect(pg.dsn(), autocommit=True,
                         options="-c search_path=rs -c statement_timeout=300") as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS rs; CREATE TABLE IF NOT EXISTS rs.t (k INT)")
        for reset in ("RESET statement_timeout", "RESET ALL", "SET statement_timeout TO DEFAULT",
                      "DISCARD ALL"):
            conn.execute("SET statement_timeout = 5000; SET search_path = other")
            conn.execute(reset)
            assert conn.execute("SHOW statement_timeout").fetchone() == ("300",), reset
            if reset != "RESET statement_timeout" and not reset.startswith("SET"):
                assert conn.execute("SHOW search_path").fetchone() == ("rs",), reset
                assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,), reset


def test_what_poolers_and_drivers_send_to_reset_a_connection_works(pg: PgServer) -> None:
    """asyncpg's pool sends `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL;` at each release: the first was 42501 and the
    pool failed every release. DISCARD ALL (pgbouncer's server_reset_query)
    answered but dropped no prepared statement and reset nothing;
    DEALLOCATE ALL's tag was DEALLOCATE, so psycopg kept its statement cache
    and every prepared query then failed with 26000."""

    async def pooled() -> list[int]:
        pool = await asyncpg.create_pool(pg.url(), min_size=1, max_size=1)
        try:
            got = []
            for i in range(3):
                async with pool.acquire() as conn:
                    got.append(await conn.fetchval("SELECT $1::INT + 1", i))
            return got
        finally:
            await pool.close()

    assert asyncio.run(pooled()) == [1, 2, 3]
    with psycopg.connect(pg.dsn(), autocommit=True, prepare_threshold=0) as conn:
        assert conn.execute("SELECT %s::INT AS a", [1]).fetchone() == (1,)
        for reset in ("DEALLOCATE ALL", "DISCARD ALL"):
            assert conn.execute(reset).statusmessage == reset
            assert conn.execute("SELECT %s::INT AS a", [2]).fetchone() == (2,), reset
        with pytest.raises(psycopg.errors.InvalidCursorName):
            conn.execute("CLOSE nope")
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_discard_all_drops_the_prepared_statements() -> None:
    assert chatter.deallocated("DISCARD ALL") == "" and chatter.deallocated("DISCARD PLANS") is None
