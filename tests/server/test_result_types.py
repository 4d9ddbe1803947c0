"""The Cairn type name of an answer's column (server/result.py `cairn_type`):
the types looked up by Arrow type id say what the full chain of checks says."""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa
import pytest

from server.result import CAIRN_TYPE_KEY, _type_name, cairn_type
from tests.helpers import ok, rows

TYPES = [
    pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
    pa.uint32(), pa.uint64(), pa.float16(), pa.float32(), pa.float64(), pa.string(),
    pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary(), pa.binary_view(),
    pa.date32(), pa.date64(), pa.timestamp("us"), pa.timestamp("ns", tz="UTC"),
    pa.decimal128(12, 3), pa.decimal128(38, 0), pa.list_(pa.int64()),
    pa.struct([("a", pa.int64())]), pa.map_(pa.string(), pa.int64()), pa.time64("us"),
    pa.duration("us"), pa.null(), pa.large_list(pa.int8()), pa.dictionary(pa.int32(), pa.string()),
]

EXPECTED = {
    "bool": "BOOLEAN", "int8": "SMALLINT", "int16": "SMALLINT", "int32": "INT", "int64": "BIGINT",
    "uint8": "SMALLINT", "uint16": "INT", "uint32": "BIGINT", "uint64": "BIGINT",
    "halffloat": "REAL", "float": "REAL", "double": "DOUBLE", "string": "TEXT",
    "large_string": "TEXT", "binary": "BYTES", "large_binary": "BYTES", "date32[day]": "DATE",
    "date64[ms]": "DATE", "decimal128(12, 3)": "DECIMAL(12,3)",
}


@pytest.mark.parametrize("t", TYPES, ids=str)
def test_type_names_by_id_are_the_checked_names(t: pa.DataType) -> None:
    f = pa.field("c", t)
    assert cairn_type(f) == _type_name(t)
    if str(t) in EXPECTED:
        assert cairn_type(f) == EXPECTED[str(t)]
    # A producer's own name wins over the Arrow type.
    assert cairn_type(f.with_metadata({CAIRN_TYPE_KEY: b"JSON"})) == "JSON"


def _reference(table: pa.Table) -> list[dict[str, object]]:
    """The answer's rows made one value at a time (what of_arrow did before it
    made them a column at a time)."""
    from server.result import to_json_value
    types = [cairn_type(f) for f in table.schema]
    cols = [c.to_pylist() for c in table.columns]
    return [{n: to_json_value(cols[i][r], types[i]) for i, n in enumerate(table.column_names)}
            for r in range(table.num_rows)]


def test_answers_made_a_column_at_a_time_are_the_values_one_at_a_time() -> None:
    import datetime as dt
    import decimal
    import random

    from server.result import Result
    rng = random.Random(5)
    n = 300
    times = [None, dt.datetime(1969, 12, 31, 23, 59, 59, 999500), dt.datetime(1000, 1, 1),
             dt.datetime(9998, 12, 31, 23, 59, 59, 999999)]
    times += [dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=rng.randint(-10**16, 10**16))
              for _ in range(n - len(times))]
    floats = [rng.choice([None, float("nan"), float("inf"), -0.0, rng.uniform(-1e300, 1e300)])
              for _ in range(n)]
    columns = {
        "i": pa.array([rng.choice([None, rng.randint(-2**63, 2**63 - 1)]) for _ in range(n)]),
        "u": pa.array([rng.randint(0, 2**64 - 1) for _ in range(n)], pa.uint64()),
        "b": pa.array([rng.choice([None, True, False]) for _ in range(n)]),
        "s": pa.array([rng.choice([None, "", "é\u0000x", '{"a": 1}']) for _ in range(n)]),
        "ls": pa.array([rng.choice([None, "t"]) for _ in range(n)], pa.large_string()),
        "j": pa.array([rng.choice([None, '{"a": [1, 2]}', "not json", "3"]) for _ in range(n)]),
        "f": pa.array(floats), "finite": pa.array([rng.uniform(-1, 1) for _ in range(n)]),
        "r": pa.array([rng.uniform(-1, 1) for _ in range(n)], pa.float32()),
        "t": pa.array(times, pa.timestamp("us")),
        "tz": pa.array(times, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")).cast(
            pa.timestamp("us", tz="America/Los_Angeles")),
        "ns": pa.array([dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=rng.randint(
            -10**15, 10**15)) for _ in range(n)], pa.timestamp("us")).cast(pa.timestamp("ns")),
        "old": pa.array([dt.datetime(999, 1, 1)] * n, pa.timestamp("us")),
        "nulltime": pa.array([None] * n, pa.timestamp("us")),
        "d": pa.array([rng.choice([None, decimal.Decimal("1.50"), decimal.Decimal("-0.01")])
                       for _ in range(n)], pa.decimal128(12, 2)),
        "by": pa.array([rng.choice([None, b"\x00\xff"]) for _ in range(n)]),
        "day": pa.array([dt.date(2026, 1, 2)] * n),
        "null": pa.array([None] * n),
    }
    table = pa.table(columns)
    fields = [f.with_metadata({CAIRN_TYPE_KEY: b"JSON"}) if f.name == "j" else f
              for f in table.schema]
    table = table.cast(pa.schema(fields))
    whole = Result.of_arrow(table).rows
    _same(whole, _reference(table))
    # Short answers (a point SELECT's one row) take the one-value-at-a-time
    # path: the values the column-at-a-time path gives, every type, in
    # windows all over the table.
    from server.result import SHORT_COLUMN
    assert n > SHORT_COLUMN
    for length in (1, 2, 7, SHORT_COLUMN):
        for start in range(0, n - length, 37):
            _same(Result.of_arrow(table.slice(start, length)).rows, whole[start:start + length])


def _same(got: list[dict[str, object]], want: list[dict[str, object]]) -> None:
    for g, w in zip(got, want, strict=True):
        assert {k: _shown(v) for k, v in g.items()} == {k: _shown(v) for k, v in w.items()}


def _shown(value: object) -> str:
    """repr, and a JSON column's text (msgspec.Raw, whose repr is its address) as it is."""
    return f"Raw({bytes(value)!r})" if isinstance(value, msgspec.Raw) else repr(value)


def test_a_time_before_the_year_1000_has_four_digits_of_year() -> None:
    """ISO 8601's years have four digits: `0999-…`, not strftime's `999-…`,
    one value at a time and a column at a time alike."""
    import datetime as dt

    from server.result import Result
    times = [dt.datetime(999, 3, 4, 5, 6, 7, 891999), dt.datetime(1, 1, 1)]
    want = ["0999-03-04T05:06:07.891Z", "0001-01-01T00:00:00.000Z"]
    for n in (1, 200):  # one at a time (SHORT_COLUMN) and the column path
        table = pa.table({"t": pa.array(times * n, pa.timestamp("us"))})
        got = [r["t"] for r in Result.of_arrow(table).to_json()["rows"]]
        assert got == want * n


def test_json_text_is_spliced_into_an_answer_as_stored() -> None:
    """A JSON column's text goes into the answer as it is (msgspec.Raw), also
    where json.dumps writes it: an error's body, and an answer msgspec
    refuses (a lone surrogate in a text). Text that is not JSON is a string."""
    from server.app import json_bytes
    from server.result import dumps_with_raw, json_raw
    body = {"rows": [{"a": json_raw('{"a":1,"a":2}'), "b": json_raw(" -0 "),
                      "c": json_raw("not json"), "d": json_raw("[" * 5000 + "]" * 5000)}]}
    assert json_bytes(body) == (b'{"rows":[{"a":{"a":1,"a":2},"b":-0,"c":"not json","d":"'
                                + b"[" * 5000 + b"]" * 5000 + b'"}]}')
    body["rows"][0]["e"] = "\ud800"
    assert dumps_with_raw(body).startswith(
        '{"rows": [{"a": {"a":1,"a":2}, "b": -0, "c": "not json"')
    assert json_bytes(body).endswith(b'"e": "\\ud800"}]}')


def test_json_text_is_spliced_only_when_a_write_would_take_it() -> None:
    """json_raw holds a text to the check a write makes (jsoncheck.json_problem):
    `1e999` went into the answer as a bare number (msgspec, Go and serde refuse
    it, Python reads inf), NaN and a lone surrogate escape likewise; each is a
    string, in an answer and in an error's body (dumps_with_raw) alike."""
    from server.app import json_bytes
    from server.result import dumps_with_raw, json_raw
    bad = ["1e999", "[1e999]", '{"a":-1e999}', "NaN", "[Infinity]", '"\\ud800"']
    body = {"rows": [{str(i): json_raw(t) for i, t in enumerate(bad)}]}
    want = {"rows": [{str(i): t for i, t in enumerate(bad)}]}
    assert msgspec.json.decode(json_bytes(body)) == want
    assert msgspec.json.decode(dumps_with_raw(body)) == want
    # A Raw made elsewhere is held to the same check in an error's body.
    assert msgspec.json.decode(dumps_with_raw({"a": msgspec.Raw(b"1e999")})) == {"a": "1e999"}
    assert json_bytes({"a": json_raw(" 1e308 ")}) == b'{"a":1e308}'


async def test_a_decimal_is_plain_text_with_its_scale_at_the_top_and_nested(client: Any) -> None:
    """str(Decimal) wrote a small DECIMAL in E notation over HTTP ('1E-10',
    '0E-10', '1.000E-7'), where pgwire and DuckDB's own text give 0.0000000001."""
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE TABLE app.d (k INT PRIMARY KEY, d DECIMAL(38,10)); INSERT INTO app.d "
                     "VALUES (1, 0.0000000001), (2, 0), (3, 0.0000001), (4, 12.5)")
    got = await rows(client, "SELECT d, d::VARCHAR AS text, [d] AS l, {'s': d} AS s "
                             "FROM app.d ORDER BY k")
    assert [r["d"] for r in got] == ["0.0000000001", "0.0000000000", "0.0000001000",
                                     "12.5000000000"]
    assert all(r["d"] == r["text"] and r["l"] == [r["text"]] and r["s"] == {"s": r["text"]}
               for r in got), got


async def test_a_bit_is_its_text_at_the_top_and_nested(client: Any) -> None:
    """DuckDB hands a BIT to Arrow as its storage bytes, which went as base64
    ('BPU=' for '0101'), named BYTES; DuckDB's text of it is '0101'. A BLOB
    beside it stays base64; a BIT written into a TEXT column is its text, as
    DuckDB stores it (it was refused, naming Python's b'\\x04\\xf5')."""
    got = await rows(client, "SELECT '0101'::BIT AS b, ['10101010101'::BIT, NULL] AS l, "
                             "{'s': bitstring('1', 3)} AS s, MAP {'1'::BIT: '0'::BIT} AS m, "
                             "'x'::BLOB AS blob, NULL::BIT AS n")
    assert got == [{"b": "0101", "l": ["10101010101", None], "s": {"s": "001"},
                    "m": [["1", "0"]], "blob": "eA==", "n": None}]
    body = (await ok(client, "SELECT '0101'::BIT AS b"))[-1]
    assert body["schema"] == [{"name": "b", "type": "BIT"}]
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY, s TEXT); "
                     "INSERT INTO app.t SELECT 1, '0101'::BIT")
    assert await rows(client, "SELECT s FROM app.t") == [{"s": "0101"}]
