"""A one-row INSERT's rows are converted by Arrow in one call (storage/rowbuild.py
`one_row`) where other writes go column by column (`columns_table`): the two
must make the same table (types, values, field metadata) and so the same
stored bytes, or `one_row` must give up (None) where the column path refuses
a value, so that the column path's error is the one the client sees."""

from __future__ import annotations

import datetime as dt
import decimal
import random
from typing import Any

import pyarrow as pa
import pytest

from catalog import Table
from catalog.errors import InvalidArgument
from storage.buffer import LARGE_VALUE, encode, storage_schema
from storage.rowbuild import columns_table, one_row
from storage.types import DELETED, INT_RANGES, OW, SEQ, UPDATED, USER

TYPES = ["BOOLEAN", "SMALLINT", "INT", "BIGINT", "REAL", "DOUBLE", "DECIMAL", "TEXT",
         "BYTES", "DATE", "TIMESTAMP", "JSON"]


def _columns() -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = [
        {"name": "k", "type": "BIGINT", "not_null": True, "primary_key": True}]
    for i, t in enumerate(TYPES):
        c: dict[str, Any] = {"name": f"c{i}", "type": t}
        if t == "DECIMAL":
            c["params"] = [12, 3]
        if t == "TEXT" and i % 2:
            c["params"] = [40]
        cols.append(c)
    cols.append({"name": UPDATED, "type": "TIMESTAMP", "not_null": True, "system": True})
    cols.append({"name": DELETED, "type": "BOOLEAN", "not_null": True, "system": True})
    return cols


def _value(rng: random.Random, t: str) -> Any:
    """A value as `coerce` leaves it for type `t`, now and then one of the wrong kind."""
    if rng.random() < 0.15:
        return None
    if rng.random() < 0.08:  # the wrong kind of value: Arrow refuses some of these
        return rng.choice(["x", b"\xff", 1.5, 2**40, -(2**70), True, dt.date(2020, 1, 2),
                           decimal.Decimal("1.25"), [1], {"a": 1}])
    if t == "BOOLEAN":
        return rng.random() < 0.5
    if t == "SMALLINT":
        return rng.randrange(-(2**15), 2**15)
    if t == "INT":
        return rng.randrange(-(2**31), 2**31)
    if t == "BIGINT":
        return rng.randrange(-(2**63), 2**63)
    if t in ("REAL", "DOUBLE"):
        return rng.choice([0.0, -0.0, 1e-300, 3.4e38, float("inf"), float("nan"),
                           rng.uniform(-1e9, 1e9)])
    if t == "DECIMAL":
        return decimal.Decimal(rng.randrange(-10**12, 10**12)).scaleb(-3)
    if t in ("TEXT", "JSON"):
        return "".join(rng.choice("aZ 0'\"\\é漢🙂\n") for _ in range(rng.randrange(40)))
    if t == "BYTES":
        return rng.randbytes(rng.randrange(30))
    if t == "DATE":
        return dt.date(rng.randrange(1, 9999), rng.randrange(1, 13), rng.randrange(1, 29))
    return dt.datetime(rng.randrange(1, 9999), rng.randrange(1, 13), rng.randrange(1, 29),
                       rng.randrange(24), rng.randrange(60), rng.randrange(60),
                       rng.randrange(10**6))


def _row(rng: random.Random, schema: pa.Schema, cols: list[dict[str, Any]]) -> dict[str, Any]:
    types = {c["name"]: c["type"] for c in cols}
    data: dict[str, Any] = {}
    for f in schema:
        if f.name == SEQ:
            data[f.name] = [rng.randrange(1, 2**62)]
        elif f.name in (OW, DELETED):
            data[f.name] = [rng.random() < 0.5]
        elif f.name == USER:
            data[f.name] = [rng.choice(["ann", "bo", "ü"])]
        else:
            data[f.name] = [_value(rng, types[f.name])]
    return data


@pytest.mark.parametrize("user_table", [False, True])
def test_one_row_makes_the_column_table(user_table: bool) -> None:
    rng = random.Random(15 + user_table)
    cols = _columns()
    table = Table(namespace="app", name="t", uid="u1",
                  table_type="user" if user_table else "shared", primary_key=["k"])
    schema = storage_schema(table, cols)
    struct = pa.struct(list(schema))
    made = refused = 0
    for _ in range(400):
        data = _row(rng, schema, cols)
        fast = one_row(schema, struct, {k: list(v) for k, v in data.items()})
        try:
            slow = columns_table(schema, {k: list(v) for k, v in data.items()}, "app.t")
        except (InvalidArgument, OverflowError, TypeError, pa.ArrowException):
            assert fast is None, data  # the column path's error is the one reported
            refused += 1
            continue
        assert fast is not None, data  # a row the column path takes is taken in one call
        assert fast.schema.equals(slow.schema, check_metadata=True)
        # The same stored bytes (a NaN is equal to itself only there).
        assert encode(fast, 2, 1.5, "ann", plain=True, large=False) == encode(slow, 2, 1.5, "ann")
        assert fast.equals(slow) or _nan_in(data)
        assert fast.nbytes <= fast.get_total_buffer_size()
        made += 1
    assert made > 150 and refused > 50  # both outcomes were seen


def _nan_in(data: dict[str, Any]) -> bool:
    return any(isinstance(v[0], float) and v[0] != v[0] for v in data.values())


def test_large_one_row_is_decided_as_before() -> None:
    """A one-row table around LARGE_VALUE: the cheap test (buffers' size, then
    nbytes) decides as nbytes alone does, so encode takes the same path."""
    cols: list[dict[str, Any]] = [
        {"name": "k", "type": "BIGINT", "not_null": True, "primary_key": True},
        {"name": "v", "type": "TEXT"}]
    table = Table(namespace="app", name="t", uid="u1", table_type="shared", primary_key=["k"])
    schema = storage_schema(table, cols)
    struct = pa.struct(list(schema))
    for size in (LARGE_VALUE - 200, LARGE_VALUE - 30, LARGE_VALUE, LARGE_VALUE + 1,
                 3 * LARGE_VALUE // 2):
        data: dict[str, list[Any]] = {SEQ: [1], OW: [False], "k": [7], "v": ["x" * size]}
        rows = one_row(schema, struct, data)
        assert rows is not None
        large = rows.get_total_buffer_size() >= LARGE_VALUE and rows.nbytes >= LARGE_VALUE
        assert large == (rows.nbytes >= LARGE_VALUE)
        assert encode(rows, 1, 2.5, None, plain=True, large=large) == encode(rows, 1, 2.5, None)


def test_plain_key_values_come_back_unchanged() -> None:
    """An INSERT's key check takes a one-row INSERT's integer, text and
    boolean key values as given (dml._plain_key) instead of reading them back
    from Arrow: they must be what Arrow gives back, type and repr alike. A
    DECIMAL's is not (its scale), which is why it is read back."""
    from storage import dml

    rng = random.Random(7)
    kinds: dict[str, type] = {"SMALLINT": int, "INT": int, "BIGINT": int, "TEXT": str,
                              "BOOLEAN": bool}
    assert set(kinds) == dml._PLAIN_KEY_TYPES
    table = Table(namespace="app", name="t", uid="u1", table_type="shared", primary_key=["k"])
    checked = 0
    for t, kind in kinds.items():
        key = {"name": "k", "type": t, "not_null": True, "primary_key": True}
        schema = storage_schema(table, [key])
        for _ in range(200):
            value: Any = _value(rng, t)
            bound = INT_RANGES.get(t)
            if bound is not None and isinstance(value, int) and not -bound <= value < bound:
                continue  # out of the column's range: coerce refuses it
            if type(value) is not kind:
                continue  # coerce gives such a column nothing else
            rows = one_row(schema, pa.struct(list(schema)), {SEQ: [1], OW: [False], "k": [value]})
            assert rows is not None
            back = rows.column("k").to_pylist()[0]
            assert type(back) is kind and repr(back) == repr(value)
            checked += 1
    assert checked > 500
    dec = {"name": "k", "type": "DECIMAL", "params": [10, 2], "not_null": True}
    schema = storage_schema(table, [dec])
    rows = one_row(schema, pa.struct(list(schema)),
                   {SEQ: [1], OW: [False], "k": [decimal.Decimal("1.5")]})
    assert rows is not None
    assert repr(rows.column("k").to_pylist()[0]) == "Decimal('1.50')"
