"""DDL the server takes never makes a namespace impossible to back up.

Every schema version keeps every column and its DEFAULT again, and a backup's
manifest (64 MiB at most) holds every version of every table: a 4 MiB DEFAULT
and 16 ALTERs of 30 bytes made a namespace that no BACKUP or START ARCHIVING
took, with the advice "fewer files per backup" for a table of one row and no
file. A DEFAULT now holds at most 64 KiB, a namespace's schema history at
most 32 MiB; a manifest still too big (a catalog from before) is refused
before any file is stored, naming what is big."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from server.config import Config
from storage import schema
from storage.backup import records
from tests.helpers import err, ok, reseal, rows, target_files

KIB64 = 65536  # a DEFAULT's bound, docs/sql.md
HISTORY = 32 << 20  # a namespace's schema history's


async def test_a_default_holds_at_most_64_kib(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE sh")
    big = "x" * (KIB64 + 1)
    message = await err(client, f"CREATE TABLE sh.t (k INT PRIMARY KEY, v TEXT DEFAULT '{big}')",
                        "INVALID_ARGUMENT")
    assert "column 'v'" in message and f"at most {KIB64} bytes" in message, message
    await ok(client, "CREATE TABLE sh.t (k INT PRIMARY KEY)")
    for text in (big, "é" * (KIB64 // 2 + 1)):  # counted in UTF-8 bytes, not characters
        message = await err(client, f"ALTER TABLE sh.t ADD COLUMN v TEXT DEFAULT '{text}'",
                            "INVALID_ARGUMENT")
        assert f"at most {KIB64} bytes" in message, message
    await ok(client, f"ALTER TABLE sh.t ADD COLUMN v TEXT DEFAULT '{'x' * KIB64}'")
    await ok(client, "INSERT INTO sh.t (k) VALUES (1)")
    assert len((await rows(client, "SELECT v FROM sh.t"))[0]["v"]) == KIB64


async def test_alters_past_the_schema_history_bound_are_refused_and_backups_go_on(
        client: Any) -> None:
    # 100 columns of 64 KiB defaults: 6.5 MB a version, five versions fit in 32 MiB.
    cols = ", ".join(f"c{i} TEXT DEFAULT '{chr(97 + i % 26) * KIB64}'" for i in range(100))
    await ok(client, f"CREATE NAMESPACE sh; CREATE TABLE sh.t (k INT PRIMARY KEY, {cols}, v INT)")
    await ok(client, "INSERT INTO sh.t (k, v) VALUES (1, 1)")
    for i in range(4):
        await ok(client, "ALTER TABLE sh.t DROP COLUMN v" if i % 2 == 0 else
                         "ALTER TABLE sh.t ADD COLUMN v INT")
    message = await err(client, "ALTER TABLE sh.t ADD COLUMN w INT", "INVALID_ARGUMENT")
    assert f"over the {HISTORY}" in message, message
    assert "ALTER TABLE sh.t" in message and "sh.t takes" in message and "6 version" in message
    assert "CREATE TABLE, then INSERT INTO ... SELECT" in message, message
    # Nor may another table's first version take the namespace past it.
    message = await err(client, f"CREATE TABLE sh.u (k INT PRIMARY KEY, {cols})",
                        "INVALID_ARGUMENT")
    assert "CREATE TABLE sh.u" in message and "schema history" in message, message
    kept = await rows(client, "SELECT version FROM system.table_schemas WHERE namespace = 'sh'")
    assert [r["version"] for r in kept] == [1, 2, 3, 4, 5]
    # What was taken backs up (the namespace within its bound fits a manifest) and restores.
    await ok(client, "BACKUP DATABASE sh TO 'bk'")
    await ok(client, "START ARCHIVING DATABASE sh TO 'arch'")
    await ok(client, "STOP ARCHIVING DATABASE sh")
    await ok(client, "RESTORE DATABASE sh FROM 'bk' AS sh2")
    got = (await rows(client, "SELECT k, v, c1 FROM sh2.t"))[0]
    assert got["k"] == 1 and got["v"] is None and got["c1"] == "b" * KIB64
    # Another namespace has room of its own.
    await ok(client, f"CREATE NAMESPACE other; CREATE TABLE other.t (k INT PRIMARY KEY, {cols})")


async def test_a_default_kept_before_the_bound_still_restores_and_works(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE sd; CREATE TABLE sd.t (id BIGINT PRIMARY KEY, "
                     "v TEXT DEFAULT 'x', b BYTES DEFAULT 'y')")
    await ok(client, "INSERT INTO sd.t (id) VALUES (1)")
    await ok(client, "BACKUP DATABASE sd TO 'old' WITH (compression = 'none')")
    old = {"v": "v" * (KIB64 * 4), "b": "b" * (KIB64 * 2)}

    def bigger(doc: dict[str, Any]) -> None:
        for version in doc["tables"][0]["schemas"]:
            for col in version["columns"]:
                col["default"] = old.get(col["name"], col["default"])

    reseal(next((tmp_path / "backups" / "old" / "manifests").glob("*.json")), bigger)
    listed = await rows(client, "SHOW BACKUPS IN 'old'")
    assert [b["error"] for b in listed] == [None]
    assert (await rows(client, f"VERIFY BACKUP '{listed[0]['backup_id']}' IN 'old'"))[0]["is_valid"]
    await ok(client, "RESTORE DATABASE sd FROM 'old' AS sd2")
    await ok(client, "INSERT INTO sd2.t (id) VALUES (2)")
    got = (await rows(client, "SELECT v, b FROM sd2.t WHERE id = 2"))[0]
    assert got["v"] == old["v"] and base64.b64decode(got["b"]) == old["b"].encode()
    # Its table goes on changing, and backing up, as any other.
    await ok(client, "ALTER TABLE sd2.t ADD COLUMN w INT DEFAULT 7; UPDATE sd2.t SET w = 8")
    await ok(client, "BACKUP DATABASE sd2 TO 'new'; RESTORE DATABASE sd2 FROM 'new' AS sd3")
    assert await rows(client, f"SELECT id, w FROM sd3.t WHERE v = repeat('v', {KIB64 * 4})") \
        == [{"id": 2, "w": 8}]


async def test_a_manifest_too_big_for_its_schema_history_is_refused_before_any_file(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path, monkeypatch: Any) -> None:
    """A catalog from before the bound (here: a reader taking 1 MiB, and no
    bound on DDL) can hold more schema history than a manifest: BACKUP
    refuses before it stores a file, saying it is the history, of which table."""
    from server.app import create_app

    cairn_config.jobs.job_process = "off"  # the bounds below hold in the server's process
    client = await aiohttp_client(create_app(cairn_config))
    monkeypatch.setattr(schema, "MAX_SCHEMA_HISTORY", 1 << 40, raising=False)
    monkeypatch.setattr(records, "MAX_BODY", 1 << 20)
    await ok(client, f"CREATE NAMESPACE n; CREATE TABLE n.t (k INT PRIMARY KEY, big TEXT DEFAULT "
                     f"'{'x' * 60000}', v INT); CREATE TABLE n.small (k INT PRIMARY KEY)")
    await ok(client, "INSERT INTO n.t (k, v) VALUES (1, 1); FLUSH TABLE n.t")
    for i in range(20):
        await ok(client, "ALTER TABLE n.t DROP COLUMN v" if i % 2 == 0 else
                         "ALTER TABLE n.t ADD COLUMN v INT")
    for text in ("BACKUP DATABASE n TO 'bk'", "BACKUP DATABASE n TO 'plain' WITH "
                 "(compression = 'none')", "BACKUP DATABASE n, other TO 'set'",
                 "START ARCHIVING DATABASE n TO 'arch'"):
        if "other" in text:
            await ok(client, "CREATE NAMESPACE IF NOT EXISTS other")
        message = await err(client, text, "INVALID_ARGUMENT")
        assert "schema histories take" in message and "table 't'" in message, message
        assert "21 version(s)" in message and "fewer files" not in message, message
        assert "CREATE TABLE, then INSERT INTO ... SELECT" in message, message
    for name in ("bk", "plain", "set", "arch"):
        held = target_files(tmp_path / "backups" / name)
        assert not held["objects"] and not held["manifests"], (name, held)
    # A backup of its other tables is taken.
    await ok(client, "BACKUP TABLE n.small TO 'bk'")


async def test_a_manifest_too_big_for_its_files_says_so(
        aiohttp_client: Any, cairn_config: Config, monkeypatch: Any) -> None:
    from server.app import create_app

    cairn_config.jobs.job_process = "off"
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE n; CREATE TABLE n.t (k INT PRIMARY KEY)")
    for i in range(12):
        await ok(client, f"INSERT INTO n.t VALUES ({i}); FLUSH TABLE n.t")
    monkeypatch.setattr(records, "MAX_BODY", 4000)
    for options in ("", " WITH (compression = 'none')"):
        message = await err(client, f"BACKUP DATABASE n TO 'bk'{options}", "INVALID_ARGUMENT")
        assert "its 12 file(s)" in message and "Too many files" in message, message
        assert "BACKUP TABLE" in message and "INSERT INTO" not in message, message
