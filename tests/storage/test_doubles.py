"""A DOUBLE written into a DECIMAL(p,s) column (a query's value, a literal
DuckDB reads as a DOUBLE) is what DuckDB's CAST gives (storage.types.coerce,
storage/doubles.py): it went through Python's shortest text of the double,
1.2345678901234567 in a DECIMAL(38,20) where the CAST gives
1.23456789012345667584, and 2.675 (a double a hair below) as 2.68 or 2.67
by luck of the text."""

from __future__ import annotations

import math
import random
import struct

import duckdb
import pytest

from catalog.errors import InvalidArgument
from storage.types import coerce


def _doubles(n: int) -> list[float]:
    rng = random.Random(7)
    out = [2.675, -2.675, 0.5, -0.5, 1.5, 2.5, 1.2345678901234567, 0.1, 1e-20, 9.999999999999999e37,
           1e38, -0.0, 0.0, 0.12345678901234568, 717.0799999999999, 0.06640625]
    while len(out) < n:
        kind = rng.random()
        if kind < 0.3:
            x = rng.uniform(-10, 10)
        elif kind < 0.6:
            x = rng.randint(-10**6, 10**6) / 2 ** rng.randint(0, 12)  # ties at many scales
        else:
            x = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        if math.isfinite(x) and abs(x) < 1e40:
            out.append(x)
    return out


@pytest.mark.parametrize(("p", "s"), [(9, 2), (18, 3), (18, 7), (20, 15), (38, 10), (38, 20),
                                      (38, 38), (38, 0)])
def test_a_double_into_a_decimal_is_duckdbs_cast_of_it(p: int, s: int) -> None:
    con = duckdb.connect()
    col = {"name": "d", "type": "DECIMAL", "params": [p, s]}
    cast = f"SELECT CAST(CAST(? AS DOUBLE) AS DECIMAL({p},{s}))"
    for x in _doubles(400):
        try:
            want = con.execute(cast, [x]).fetchone()
        except duckdb.ConversionException:
            with pytest.raises(InvalidArgument, match="out of range"):
                coerce(col, x)
            continue
        assert want is not None
        got = coerce(col, x)
        assert (got, str(got)) == (want[0], str(want[0])), x
