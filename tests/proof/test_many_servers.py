"""Many servers, one repository: three `cairn serve` processes (separate data
dirs) share one S3 target on a real S3 server (moto on 127.0.0.1). Two back up
at the same time, round after round, while the third backs up with keep_last
and drops the oldest backups. Afterwards every listed backup verifies and
restores, every object a manifest names is there, and a content both servers
hold (one restored the other's backup) is stored under one object name only.

The cross-process protocol under test: locks/ (what a running backup relies
on), prunes/ markers (a prune another process must wait for), and objects
published whole (storage/backup/locks.py, prunes.py, objects.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storage.backup import resolve_target
from storage.backup.repository import Repository
from tests.helpers import ServerProcess
from tests.storage_backup.s3server import S3Server, running

ROUNDS = 4


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


def ok(server: ServerProcess, text: str) -> list[dict[str, Any]]:
    status, body = server.post(text)
    if status != 200 or body["status"] != "success":
        pytest.fail(f"{text}: {status} {body.get('error')}")
    return list(body["results"][-1]["rows"])


def fill(server: ServerProcess, start: int, files: int, rows: int = 200) -> int:
    """`files` flushed Parquet files of incompressible rows in app.t."""
    for _ in range(files):
        values = ", ".join(f"({start + i}, '{os.urandom(300).hex()}')" for i in range(rows))
        start += rows
        ok(server, f"INSERT INTO app.t VALUES {values}; FLUSH TABLE app.t")
    return start


def config(tmp: Path, name: str, target: dict[str, Any]) -> Path:
    (tmp / name).mkdir()
    path = tmp / f"{name}.toml"
    lines = ["[backup.targets.shared]"] + [f'{k} = "{v}"' for k, v in target.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_servers_back_up_while_a_third_prunes(tmp_path: Path, s3: S3Server,
                                                  server_process: Any) -> None:
    bucket = s3.new_bucket()
    target = s3.target(bucket, "fleet")
    a, b, c = (server_process(tmp_path / name / "data", config=config(tmp_path, name, target))
               for name in ("a", "b", "c"))

    ok(a, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, data TEXT)")
    fill(a, 0, 3)
    first = ok(a, "BACKUP DATABASE app TO 'shared'")[0]
    # b and c start from a's backup: the same Parquet files, byte for byte.
    ok(b, f"RESTORE DATABASE app FROM 'shared' WITH (backup_id = '{first['backup_id']}')")
    ok(c, f"RESTORE DATABASE app FROM 'shared' WITH (backup_id = '{first['backup_id']}')")
    expected_rows = {"a": 600, "b": 600}

    def backups(server: ServerProcess, name: str, start: int) -> list[str]:
        made = []
        for _ in range(ROUNDS):
            start = fill(server, start, 1, rows=100)
            expected_rows[name] += 100
            row = ok(server, "BACKUP DATABASE app TO 'shared'")[0]
            assert row["rows"] == expected_rows[name], row
            made.append(row["backup_id"])
        return made

    def prunes() -> list[str]:
        dropped: list[str] = []
        for _ in range(ROUNDS):
            row = ok(c, "BACKUP DATABASE app TO 'shared' WITH (keep_last = 3)")[0]
            assert row["status"] == "completed", row
            listed = ok(c, "SHOW BACKUPS IN 'shared'")
            if len(listed) > 2:
                oldest = listed[-1]["backup_id"]
                status, body = c.post(f"DROP BACKUP '{oldest}' IN 'shared'")
                # keep_last of the other server's run may have dropped it meanwhile.
                assert status in (200, 404), body
                dropped.append(oldest)
        return dropped

    with ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(backups, a, "a", 10_000), pool.submit(backups, b, "b", 20_000),
                pool.submit(prunes)]
        made_a, made_b, _ = (r.result(timeout=600) for r in runs)

    listed = ok(c, "SHOW BACKUPS IN 'shared'")
    assert listed, "keep_last keeps the newest backups"
    assert not any(k.startswith(("locks/", "prunes/", "tmp/")) for k in s3.keys(bucket, "fleet"))
    for row in listed:
        verified = ok(c, f"VERIFY BACKUP '{row['backup_id']}' IN 'shared'")[0]
        assert verified["is_valid"], verified

    # Every object a listed manifest names is in the store, and each content
    # (a file's sha256) is stored under exactly one object name.
    repo = Repository(resolve_target("shared", [], {"shared": target}))
    stored = repo.list_objects()
    names: dict[str, set[str]] = {}
    for row in listed:
        for table in repo.read_backup(row["backup_id"]).tables:
            for f in table.files:
                assert stored.get(f.oid) is not None, f.oid
                names.setdefault(f.content_sha256, set()).add(f.oid)
    assert all(len(oids) == 1 for oids in names.values()), names
    # Nothing else is left: every prune removed what the dropped backups alone used.
    assert set(stored) == {oid for oids in names.values() for oid in oids}

    # The newest backup of each server restores to exactly what it backed up.
    for name, made in (("a", made_a), ("b", made_b)):
        newest = made[-1]
        if newest in {r["backup_id"] for r in listed}:
            ok(c, f"RESTORE DATABASE app FROM 'shared' AS {name}_copy "
                  f"WITH (backup_id = '{newest}')")
            count = ok(c, f"SELECT count(*) AS n FROM {name}_copy.t")[0]["n"]
            assert count == expected_rows[name]

