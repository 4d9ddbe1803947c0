"""A TIME_NS with digits below the microsecond over the PostgreSQL protocol
was XX000 (pyarrow cannot make a Python time of it); it goes with all nine
digits, at the top and inside a LIST, STRUCT, UNION or MAP."""

from __future__ import annotations

import psycopg

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

T = "TIME_NS '12:00:00.123456789'"


def test_a_time_ns_goes_with_its_nanoseconds(pg: PgServer) -> None:
    sql = (f"SELECT {T} AS t, [{T}, NULL] AS l, {{'a': TIME_NS '00:00:00.000000001'}} AS s, "
           f"union_value(t := {T}) AS u, MAP {{{T}: 1}} AS m, "
           "[union_value(t := TIMESTAMP_NS '2024-01-01 00:00:00.123456789')] AS lu")
    want = ('12:00:00.123456789', '["12:00:00.123456789",null]', '{"a":"00:00:00.000000001"}',
            "12:00:00.123456789", '[["12:00:00.123456789",1]]',
            '["2024-01-01 00:00:00.123456789"]')
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for binary in (0, 1):
            res = conn.pgconn.exec_params(sql.encode(), [], result_format=binary)
            assert res.error_message is None or not res.error_message, res.error_message
            got = tuple(res.get_value(0, i).decode() for i in range(len(want)))
            assert got == want, binary
