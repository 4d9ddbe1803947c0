"""An integer literal past HUGEINT (2^127 - 1), which DuckDB types UHUGEINT
or BIGNUM, means one thing on every path: refused with the same words. Until
2026-12-06 INSERT ... VALUES (both fast paths and the tree's) and a DEFAULT
stored it (into TEXT its digits, into DOUBLE 1.2345678901234567e+49, into
JSON the number) while UPDATE, INSERT ... SELECT and queries refused it, and
`SELECT k FROM t WHERE tx = <50 digits>` (the fast path's point SELECT
shape, whose tree the sandbox did not walk) ran where `SELECT *` was refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage import fast
from tests.helpers import err, ok, reseal, rows, state

FIFTY = "12345678901234567890123456789012345678901234567890"
BIG = [
    FIFTY,  # BIGNUM to DuckDB
    str(1 << 127),  # UHUGEINT
    str((1 << 128) - 1),  # UHUGEINT's largest
    "-" + str((1 << 127) + 1),  # below HUGEINT's least: BIGNUM
]

# Every path a literal is read on; `<N>` is the literal.
PATHS = [
    "INSERT INTO bl.t VALUES (1, <N>, NULL, NULL)",  # the one-row fast path
    "INSERT INTO bl.t (k, d) VALUES (1, <N>)",
    "INSERT INTO bl.t VALUES (1, '1', 1, '1'), (2, NULL, <N>, NULL)",  # fastrows.py
    "INSERT INTO bl.t VALUES (1, <N>, 1 + 1, NULL)",  # the tree's path
    "INSERT INTO bl.t (k, j) VALUES (1, 1 + 1), (2, <N>)",
    "INSERT INTO bl.t SELECT 1, <N>, NULL, NULL",
    "INSERT INTO bl.t (k, j) SELECT 1, <N> FROM bl.t",
    "UPDATE bl.t SET tx = <N> WHERE k = 0",
    "UPDATE bl.t SET d = 1 WHERE tx = <N>",
    "DELETE FROM bl.t WHERE tx = <N>",
    "SELECT k FROM bl.t WHERE tx = <N>",  # the fast path's point SELECT shape
    "SELECT * FROM bl.t WHERE tx = <N>",
    "SELECT k FROM bl.t WHERE k = <N>",  # a point lookup on the key
    "SELECT k, tx FROM bl.t WHERE j = <N>",
    "SELECT <N> AS v",
    "SELECT k FROM bl.t WHERE k IN (SELECT <N>)",
    "EXPLAIN SELECT k FROM bl.t WHERE tx = <N>",
    "CREATE TABLE bl.u (k INT PRIMARY KEY, tx TEXT DEFAULT <N>)",
    "CREATE TABLE bl.u (k INT PRIMARY KEY, j JSON DEFAULT <N>)",
    "ALTER TABLE bl.t ADD COLUMN e DOUBLE DEFAULT <N>",
    "ALTER TABLE bl.t ADD COLUMN e TEXT DEFAULT <N>",
]


@pytest.fixture
async def bl(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE bl; CREATE TABLE bl.t (k INT PRIMARY KEY, tx TEXT, "
                     "d DOUBLE, j JSON); INSERT INTO bl.t VALUES (0, 'x', 0.5, '[]')")
    return client


async def _unchanged(client: Any) -> None:
    got = await rows(client, "SELECT k, tx, d, j FROM bl.t")
    assert got == [{"k": 0, "tx": "x", "d": 0.5, "j": []}]
    columns = [c["column_name"] for c in await rows(client, "DESCRIBE TABLE bl.t")]
    assert "e" not in columns and columns[:4] == ["k", "tx", "d", "j"], columns
    assert [r["table_name"] for r in await rows(client, "SHOW TABLES IN bl")] == ["t"]


@pytest.mark.parametrize("literal", BIG)
async def test_an_integer_past_hugeint_is_refused_alike_on_every_path(
        bl: Any, literal: str) -> None:
    messages = {}
    for path in PATHS:
        text = path.replace("<N>", literal)
        messages[path] = await err(bl, text, "INVALID_ARGUMENT")
    first = messages["SELECT <N> AS v"]  # the query's words
    assert "past every integer type" in first and "HUGEINT" in first, first
    assert literal[:30] in first, first
    assert {p: m for p, m in messages.items() if m != first} == {}
    assert ("UHUGEINT" in first) is (literal in (str(1 << 127), str((1 << 128) - 1))), first
    await _unchanged(bl)


@pytest.mark.parametrize("literal", [str((1 << 127) - 1), "-" + str(1 << 127),
                                     "0" * 45 + "7"])
async def test_an_integer_hugeint_holds_is_stored_and_found(bl: Any, literal: str) -> None:
    """HUGEINT's largest and least, and a long literal of small value (DuckDB
    reads `000…07` as 7), on every path; the least, -2^127, reached DuckDB as
    a DECIMAL(38,0) no DECIMAL holds, whose cast to text was an internal error
    that invalidated the DuckDB every later TEXT and JSON write asked."""
    await ok(bl, "CREATE TABLE bl.h (k INT PRIMARY KEY, tx TEXT, d DOUBLE, j JSON)")
    await ok(bl, f"INSERT INTO bl.h VALUES (1, {literal}, {literal}, {literal})")
    await ok(bl, f"INSERT INTO bl.h VALUES (2, {literal}, {literal}, {literal}), "
                 f"(3, {literal}, {literal}, {literal})")
    await ok(bl, f"INSERT INTO bl.h VALUES (4, {literal} + 0, {literal}, {literal} + 0)")
    await ok(bl, f"INSERT INTO bl.h SELECT 5, {literal}, {literal}, {literal}")
    await ok(bl, "INSERT INTO bl.h (k) VALUES (6); "
                 f"UPDATE bl.h SET tx = {literal}, d = {literal}, j = {literal} WHERE k = 6")
    await ok(bl, f"CREATE TABLE bl.u (k INT PRIMARY KEY, tx TEXT DEFAULT {literal}, "
                 f"d DOUBLE DEFAULT {literal}, j JSON DEFAULT {literal}); "
                 "INSERT INTO bl.u (k) VALUES (7)")
    value = int(literal)
    want = {"tx": str(value), "d": float(value), "j": value}
    got = await rows(bl, "SELECT k, tx, d, j FROM bl.h UNION ALL SELECT k, tx, d, j FROM bl.u "
                         "ORDER BY k")
    assert got == [{"k": k, **want} for k in range(1, 8)]
    for query in (f"SELECT k FROM bl.h WHERE tx = {literal}",
                  f"SELECT * FROM bl.h WHERE tx = {literal}",
                  f"SELECT k FROM bl.h WHERE d = {literal}"):
        assert [r["k"] for r in await rows(bl, query + " ORDER BY k")] == list(range(1, 7))
    assert await rows(bl, f"SELECT k FROM bl.u WHERE tx = {literal}") == [{"k": 7}]
    # and a write of text after them still finds the DuckDB that spells it
    await ok(bl, "INSERT INTO bl.t (k, tx) VALUES (8, 1e5)")
    assert await rows(bl, "SELECT tx FROM bl.t WHERE k = 8") == [{"tx": "100000.0"}]


async def test_the_least_hugeint_inside_a_list_is_refused_not_fatal(bl: Any) -> None:
    least = -(1 << 127)
    for text in (f"INSERT INTO bl.t (k, j) SELECT 1, [{least}, 5]",
                 f"INSERT INTO bl.t (k, tx) SELECT 1, {{'a': {least}}}",
                 f"UPDATE bl.t SET j = [{least}]"):
        message = await err(bl, text, "INVALID_ARGUMENT")
        assert "least HUGEINT" in message and "VARCHAR" in message, message
    await ok(bl, f"INSERT INTO bl.t (k, j, tx) SELECT 1, [{least + 1}, 5], [{least}]::VARCHAR")
    assert await rows(bl, "SELECT j, tx FROM bl.t WHERE k = 1") == [
        {"j": [least + 1, 5], "tx": f"[{least}]"}]


async def test_a_number_duckdb_reads_as_a_double_is_that_double_on_every_path(bl: Any) -> None:
    """With a point or an exponent the number is DuckDB's DOUBLE, as before."""
    for n, literal in enumerate([FIFTY + ".0", f"{FIFTY[0]}.{FIFTY[1:]}e49"], start=1):
        await ok(bl, f"CREATE TABLE bl.h{n} (k INT PRIMARY KEY, tx TEXT, d DOUBLE, j JSON)")
        await ok(bl, f"INSERT INTO bl.h{n} VALUES (1, {literal}, {literal}, {literal}), "
                     f"(2, {literal}, {literal}, {literal})")
        await ok(bl, f"INSERT INTO bl.h{n} VALUES (3, {literal}, {literal}, {literal} + 0)")
        await ok(bl, f"INSERT INTO bl.h{n} SELECT 4, {literal}, {literal}, {literal}")
        await ok(bl, f"INSERT INTO bl.h{n} (k) VALUES (5); "
                     f"UPDATE bl.h{n} SET tx = {literal}, d = {literal}, j = {literal} WHERE k = 5")
        await ok(bl, f"CREATE TABLE bl.u{n} (k INT PRIMARY KEY, tx TEXT DEFAULT {literal}, "
                     f"d DOUBLE DEFAULT {literal}, j JSON DEFAULT {literal}); "
                     f"INSERT INTO bl.u{n} (k) VALUES (6)")
        double = float(FIFTY)
        want = {"tx": "1.2345678901234567e+49", "d": double, "j": double}
        got = await rows(bl, f"SELECT k, tx, d, j FROM bl.h{n} UNION ALL "
                             f"SELECT k, tx, d, j FROM bl.u{n} ORDER BY k")
        assert got == [{"k": k, **want} for k in range(1, 7)]
        for query in (f"SELECT k FROM bl.h{n} WHERE tx = {literal}",
                      f"SELECT * FROM bl.h{n} WHERE d = {literal}"):
            assert [r["k"] for r in await rows(bl, query + " ORDER BY k")] == [1, 2, 3, 4, 5]


async def test_a_number_no_double_holds_is_refused_on_every_path(bl: Any) -> None:
    """`1` and 309 zeros and `.0` (inf to DuckDB) went into TEXT as 'inf'."""
    inf = ["INSERT INTO bl.t (k, tx) VALUES (1, <N>)",
           "INSERT INTO bl.t (k, tx) VALUES (1, <N>), (2, 'a')",
           "INSERT INTO bl.t (k, tx) SELECT 1, <N>", "UPDATE bl.t SET tx = <N>",
           "SELECT k FROM bl.t WHERE tx = <N>"]
    zero = ["CREATE TABLE bl.u (k INT PRIMARY KEY, tx TEXT DEFAULT <N>)",
            "SELECT k FROM bl.t WHERE tx = <N>", "INSERT INTO bl.t (k, j) VALUES (1, <N>)"]
    for literal, paths in [("1" + "0" * 309 + ".0", inf), ("0." + "0" * 400 + "1", zero)]:
        first = await err(bl, f"SELECT {literal} AS v", "INVALID_ARGUMENT")
        assert "out of range for DOUBLE" in first, first
        for path in paths:
            assert await err(bl, path.replace("<N>", literal), "INVALID_ARGUMENT") == first, path
    await _unchanged(bl)


async def test_values_stored_before_still_read_back(bl: Any, tmp_path: Path) -> None:
    """Rows an INSERT ... VALUES stored with such a literal before 2026-12-06
    (the Python int the literal was read as, which `fast.insert_rows` takes
    as that path did) and a DEFAULT kept so still read back, and are found by
    the literal written as text or as a DOUBLE."""
    big = int(FIFTY)
    engine = state(bl).engine
    assert fast.insert_rows(engine, "bl", "t", None, [[1, big, big, big]], None, None) == 1
    want = {"k": 1, "tx": FIFTY, "d": 1.2345678901234567e+49, "j": big}
    assert await rows(bl, "SELECT k, tx, d, j FROM bl.t WHERE k = 1") == [want]
    await ok(bl, "FLUSH TABLE bl.t")
    assert await rows(bl, f"SELECT k, tx, d, j FROM bl.t WHERE tx = '{FIFTY}'") == [want]
    assert await rows(bl, "SELECT k FROM bl.t WHERE d = 1.2345678901234567e49") == [{"k": 1}]
    # A DEFAULT kept so: a backup of it, restored.
    await ok(bl, "CREATE TABLE bl.u (k INT PRIMARY KEY, tx TEXT DEFAULT 1, d DOUBLE DEFAULT 1, "
                 "j JSON DEFAULT 1)")
    await ok(bl, "BACKUP DATABASE bl TO 'old' WITH (compression = 'none')")

    def kept(doc: dict[str, Any]) -> None:
        for table in doc["tables"]:
            for col in table["schemas"][-1]["columns"]:
                if table["name"] == "u" and col["name"] in ("tx", "d", "j"):
                    col["default"] = big

    reseal(next((tmp_path / "backups" / "old" / "manifests").glob("*.json")), kept)
    await ok(bl, "RESTORE DATABASE bl FROM 'old' AS bl2")
    assert await rows(bl, "SELECT k, tx, d, j FROM bl2.t WHERE k = 1") == [want]
    await ok(bl, "INSERT INTO bl2.u (k) VALUES (1)")
    assert await rows(bl, "SELECT tx, d, j FROM bl2.u") == [
        {"tx": FIFTY, "d": 1.2345678901234567e+49, "j": big}]
    assert "past every integer type" in await err(
        bl, f"INSERT INTO bl2.u (k, tx) VALUES (2, {FIFTY})", "INVALID_ARGUMENT")
