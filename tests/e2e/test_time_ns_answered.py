"""A TIME_NS with digits below the microsecond in an answer, bare or inside a
LIST, STRUCT, UNION or MAP, was a 500: pyarrow cannot make a Python time of
it. It is shown with all nine digits, as DuckDB's VARCHAR shows it; a
TIMESTAMP_NS inside a UNION or MAP (the same cause) as one at the top is."""

from __future__ import annotations

from typing import Any

from tests.helpers import rows

T = "TIME_NS '12:00:00.123456789'"
TS = "TIMESTAMP_NS '2024-01-01 00:00:00.123456789'"


async def test_a_time_ns_is_answered_with_its_nanoseconds(client: Any) -> None:
    got = await rows(client, f"SELECT {T} AS t, {T}::VARCHAR AS v, TIME_NS '12:00:00.5' AS h, "
                             f"[{T}, NULL] AS l, {{'a': TIME_NS '00:00:00.000000001'}} AS s, "
                             f"union_value(t := {T}) AS u, MAP {{{T}: 1}} AS m")
    assert got == [{"t": "12:00:00.123456789", "v": "12:00:00.123456789", "h": "12:00:00.500000",
                    "l": ["12:00:00.123456789", None], "s": {"a": "00:00:00.000000001"},
                    "u": "12:00:00.123456789", "m": [["12:00:00.123456789", 1]]}]
    # a column with one such value among others
    got = await rows(client, f"SELECT * FROM (VALUES (1, TIME_NS '01:02:03'), (2, {T}), "
                             "(3, NULL)) v(k, t) ORDER BY k")
    assert [r["t"] for r in got] == ["01:02:03", "12:00:00.123456789", None]


async def test_a_timestamp_ns_in_a_union_or_map_is_answered(client: Any) -> None:
    got = await rows(client, f"SELECT {TS} AS ts, union_value(t := {TS}) AS u, "
                             f"MAP {{{TS}: [{TS}]}} AS m")
    shown = "2024-01-01T00:00:00.123Z"
    assert got == [{"ts": shown, "u": shown, "m": [[shown, [shown]]]}]
