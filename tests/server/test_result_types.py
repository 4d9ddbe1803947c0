"""The Cairn type name of an answer's column (server/result.py `cairn_type`):
the types looked up by Arrow type id say what the full chain of checks says."""

from __future__ import annotations

import pyarrow as pa
import pytest

from server.result import CAIRN_TYPE_KEY, _type_name, cairn_type

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
