"""A DEFAULT kept before the rules for written text changed still means what
it meant. Until 2026-12-05 a BYTES default was kept as the text written (its
UTF-8 the bytes: 'é', '\\xFF' four bytes) and a TIMESTAMP default with a UTC
offset stood for that instant in UTC. The new rules for written text
(\\xHH escapes, offsets refused) made such a backup's manifest invalid, so a
backup of an older server could no longer be restored, and a table of an
upgraded data directory no longer took its default."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.helpers import err, ok, reseal, rows

OLD = {"b": "é", "raw": "\\xFF", "ts": "2024-01-01 00:00:00+05:00"}


def _old_defaults(doc: dict[str, Any]) -> None:
    for col in doc["tables"][0]["schemas"][-1]["columns"]:
        if col["name"] in OLD:
            col["default"] = OLD[col["name"]]


async def test_a_backup_with_defaults_kept_by_an_older_server_restores_and_keeps_them(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE sd; CREATE TABLE sd.t (id BIGINT PRIMARY KEY, b BYTES "
                     "DEFAULT 'x', raw BYTES DEFAULT 'y', ts TIMESTAMP DEFAULT '2024-01-01')")
    await ok(client, "INSERT INTO sd.t (id) VALUES (1)")
    await ok(client, "BACKUP DATABASE sd TO 'old' WITH (compression = 'none')")
    target = tmp_path / "backups" / "old"
    reseal(next((target / "manifests").glob("*.json")), _old_defaults)

    listed = await rows(client, "SHOW BACKUPS IN 'old'")
    assert [b["error"] for b in listed] == [None]
    checked = await rows(client, f"VERIFY BACKUP '{listed[0]['backup_id']}' IN 'old'")
    assert checked[0]["is_valid"] is True, checked
    await ok(client, "RESTORE DATABASE sd FROM 'old' AS sd2")
    await ok(client, "INSERT INTO sd2.t (id) VALUES (2)")
    got = (await rows(client, "SELECT b, raw, ts FROM sd2.t WHERE id = 2"))[0]
    assert base64.b64decode(got["b"]) == "é".encode()
    assert base64.b64decode(got["raw"]) == b"\\xFF"  # four bytes, as it meant then
    assert got["ts"] == "2023-12-31T19:00:00.000Z"


async def test_a_bytes_default_is_kept_as_the_utf8_text_of_its_bytes(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE sd")
    await ok(client, "CREATE TABLE sd.t (id BIGINT PRIMARY KEY, b BYTES DEFAULT '\\xC3\\xA9A')")
    await ok(client, "INSERT INTO sd.t (id) VALUES (1)")
    got = (await rows(client, "SELECT b FROM sd.t"))[0]["b"]
    assert base64.b64decode(got) == b"\xc3\xa9A"
    # Bytes that are no UTF-8 cannot be kept as text: refused, not changed.
    message = await err(client, "CREATE TABLE sd.u (id BIGINT PRIMARY KEY, "
                                "b BYTES DEFAULT '\\xFF')", "INVALID_ARGUMENT")
    assert "UTF-8" in message


# Kept by an older server (until 2026-12-05): a REAL default REAL holds only as
# zero (it was stored 0.0) and JSON defaults its write check (json.loads) took.
DEEP = "[" * 600 + "]" * 600
KEPT = {"r": 1e-46, "j": '"\\ud800"', "deep": DEEP}


def _kept_defaults(doc: dict[str, Any]) -> None:
    for schema in doc["tables"][0]["schemas"]:
        for col in schema["columns"]:
            if col["name"] in KEPT:
                col["default"] = KEPT[col["name"]]


async def test_real_and_json_defaults_kept_by_an_older_server_keep_working(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE sd; CREATE TABLE sd.t (id BIGINT PRIMARY KEY, "
                     "j JSON DEFAULT '1', deep JSON DEFAULT '[]')")
    await ok(client, "INSERT INTO sd.t (id) VALUES (1); FLUSH TABLE sd.t")
    # Added after the table's first file: a query reads the default for that file.
    await ok(client, "ALTER TABLE sd.t ADD COLUMN r REAL DEFAULT 0.5")
    await ok(client, "BACKUP DATABASE sd TO 'old' WITH (compression = 'none')")
    reseal(next((tmp_path / "backups" / "old" / "manifests").glob("*.json")), _kept_defaults)

    listed = await rows(client, "SHOW BACKUPS IN 'old'")
    assert [b["error"] for b in listed] == [None]
    checked = await rows(client, f"VERIFY BACKUP '{listed[0]['backup_id']}' IN 'old'")
    assert checked[0]["is_valid"] is True, checked
    # The restored catalog keeps the defaults as the older server kept them.
    await ok(client, "RESTORE DATABASE sd FROM 'old' AS sd2")
    got = await rows(client, "SELECT * EXCLUDE (_updated) FROM sd2.t")
    assert got == [{"id": 1, "j": 1, "deep": [], "r": 0.0, "_deleted": False}]
    await ok(client, "INSERT INTO sd2.t (id) VALUES (2); UPDATE sd2.t SET r = r WHERE id = 2")
    got = (await rows(client, "SELECT r, j::VARCHAR AS j, length(deep::VARCHAR) AS n "
                              "FROM sd2.t WHERE id = 2"))[0]
    assert got == {"r": 0.0, "j": '"\\ud800"', "n": 1200}
    await ok(client, "FLUSH TABLE sd2.t")
    await ok(client, "BACKUP DATABASE sd2 TO 'new'")
    listed = await rows(client, "SHOW BACKUPS IN 'new'")
    checked = await rows(client, f"VERIFY BACKUP '{listed[0]['backup_id']}' IN 'new'")
    assert checked[0]["is_valid"] is True, checked
    await ok(client, "RESTORE DATABASE sd2 FROM 'new' AS sd3")
    assert len(await rows(client, "SELECT * FROM sd3.t")) == 2
    # Written now, the same defaults stay refused.
    for bad in ("r REAL DEFAULT 1e-46", "j JSON DEFAULT '\"\\ud800\"'"):
        await err(client, f"CREATE TABLE sd.u (id BIGINT PRIMARY KEY, {bad})", "INVALID_ARGUMENT")


# Kept by an older server (until 2026-12-05): date text Python's fromisoformat
# read (a week date, a basic date) and a number around '\x1c' (str.strip()
# took it), which a DEFAULT written now is refused.
WEEKS = {"d": "2024-W23-6", "ts": "20240601T120000", "i": "\x1c5"}


def _week_defaults(doc: dict[str, Any]) -> None:
    for col in doc["tables"][0]["schemas"][-1]["columns"]:
        if col["name"] in WEEKS:
            col["default"] = WEEKS[col["name"]]


async def test_date_and_number_text_defaults_kept_by_an_older_server_keep_working(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE sd; CREATE TABLE sd.t (id BIGINT PRIMARY KEY, "
                     "d DATE DEFAULT '2024-01-01', ts TIMESTAMP DEFAULT '2024-01-01', "
                     "i INT DEFAULT '1')")
    await ok(client, "BACKUP DATABASE sd TO 'old' WITH (compression = 'none')")
    reseal(next((tmp_path / "backups" / "old" / "manifests").glob("*.json")), _week_defaults)
    listed = await rows(client, "SHOW BACKUPS IN 'old'")
    assert [b["error"] for b in listed] == [None]
    await ok(client, "RESTORE DATABASE sd FROM 'old' AS sd2")
    await ok(client, "INSERT INTO sd2.t (id) VALUES (1)")
    assert await rows(client, "SELECT d, ts, i FROM sd2.t") == [
        {"d": "2024-06-08", "ts": "2024-06-01T12:00:00.000Z", "i": 5}]
    for column, text in WEEKS.items():
        kind = {"d": "DATE", "ts": "TIMESTAMP", "i": "INT"}[column]
        await err(client, f"CREATE TABLE sd.u (id BIGINT PRIMARY KEY, {column} {kind} "
                          f"DEFAULT '{text}')", "INVALID_ARGUMENT")
