"""VERIFY and RESTORE compare DuckDB's values of every file with pyarrow's,
row by row (storage/backup/duck_read.py): Cairn's own files compare equal for
every column type it stores, with NaN, infinities, -0.0, NULLs and all-NULL
columns, long values, many row groups, deleted rows, USER tables
(test_backup_parquet_types.py has files the two readers take otherwise)."""

from __future__ import annotations

from typing import Any

from tests.helpers import ok, rows

COLUMNS = ("id BIGINT PRIMARY KEY, s SMALLINT, i INT, r REAL, d DOUBLE, "
           "dec DECIMAL(38,10), dec2 DECIMAL(9,2), b BOOLEAN, t TEXT, raw BYTES, "
           "day DATE, ts TIMESTAMP, j JSON, never TEXT")
VALUES = [
    "(1, -32768, -2147483648, 'NaN', 'NaN', -12345678901234567890.0123456789, -9999999.99, "
    "true, '', '\\x00\\xFFab', '0001-01-01', '1970-01-01 00:00:00', '{\"a\": [1, null]}', NULL)",
    "(2, 32767, 2147483647, 'Infinity', '-Infinity', 0, 0.01, false, 'é ✓ \U0001F600', "
    "'', '9999-12-31', '2262-04-11 23:47:16.854775', 'null', NULL)",
    "(3, 0, 0, -0.0, -0.0, 0.0000000001, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'x', 'y', '2024-02-29', "
    "'2024-02-29 12:34:56.789012', '[]', NULL)",
    "(5, 1, 1, 1.5e-45, 5e-324, 1, 1, true, repeat('long ', 60000), repeat('b', 70000), "
    "'1900-03-01', '1900-03-01 00:00:00.000001', '\"text\"', NULL)",
]


async def test_every_type_compares_equal(client: Any) -> None:
    await ok(client, f"CREATE NAMESPACE app; CREATE TABLE app.t ({COLUMNS}); "
                     "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, v TEXT); "
                     "CREATE TABLE app.log (v TEXT, n DOUBLE)")
    await ok(client, "INSERT INTO app.t VALUES " + ", ".join(VALUES))
    # Many row groups of wide rows (ROW_GROUP_BYTES), some text repeated (dictionary pages).
    await ok(client, "INSERT INTO app.t (id, t, raw, d) SELECT 100 + i, "
                     "lpad(i::VARCHAR, 900, 'abcdefgh'), CAST(left('zzzzzzzzzzzzzzzzzzzzzzzz', "
                     "i % 25) AS BLOB), i / 7 FROM range(20000) r(i)")
    await ok(client, "FLUSH TABLE app.t")
    await ok(client, "DELETE FROM app.t WHERE id % 3 = 0; UPDATE app.t SET s = 7 WHERE id = 4; "
                     "FLUSH TABLE app.t")
    for user in ("alice", "bob"):
        await ok(client, "INSERT INTO app.u VALUES (7, 'x'), (8, NULL)", user=user)
    await ok(client, "INSERT INTO app.log VALUES ('a', 'NaN'), ('a', NULL), (NULL, -0.0); "
                     "FLUSH ALL TABLES IN app")
    await ok(client, "BACKUP DATABASE app TO 'b'")
    (backup,) = await rows(client, "SHOW BACKUPS IN 'b'")
    (report,) = await rows(client, f"VERIFY BACKUP '{backup['backup_id']}' IN 'b'")
    assert report["is_valid"] is True, report
    (r,) = await rows(client, "RESTORE DATABASE app FROM 'b' AS copy")
    assert r["status"] == "completed", r
    for table in ("t", "log"):
        diff = await rows(client, f"SELECT count(*) AS n FROM (SELECT * FROM app.{table} "
                                  f"EXCEPT ALL SELECT * FROM copy.{table})")
        assert diff == [{"n": 0}], table
    assert await rows(client, "SELECT count(*) AS n FROM copy.t") == await rows(
        client, "SELECT count(*) AS n FROM app.t")
    assert await rows(client, "SELECT id, v FROM copy.u ORDER BY id", user="bob") == [
        {"id": 7, "v": "x"}, {"id": 8, "v": None}]
