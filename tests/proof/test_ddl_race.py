"""Snapshot isolation against DDL (issue 11, point 4), at zero delay: a BACKUP's
snapshot and a DROP NAMESPACE … CASCADE, DROP TABLE, ALTER TABLE or RESTORE
with replace start together on a barrier, many times over. The snapshot sees the
namespace wholly before or wholly after the change (or, for a dropped namespace,
fails with NOT_FOUND), never part of it; and over HTTP, a backup that completes
while its namespace is dropped verifies and restores whole."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from catalog import Namespace
from catalog.errors import NotFound
from storage.backup import Repository, resolve_target, write_backup
from storage.backup.schema import FileEntry
from storage.engine import Engine
from storage.install import Restore
from storage.snapshot import Snapshot
from tests.helpers import Quiet, ok, rows, sql
from tests.storage.conftest import col, open_engine

ROUNDS = 25
pytestmark = pytest.mark.timeout(600)  # a few seconds each alone; more on a loaded box


def insert(engine: Engine, text: str) -> None:
    engine.execute(sqlglot.parse_one(text, read="duckdb"), None, "app")


def make_app(engine: Engine, name: str = "app") -> None:
    if engine.catalog.get(Namespace, name) is None:
        engine.create_namespace(name)
    for t in ("a", "b"):
        engine.create_table(name, t, "shared", [col("id", "BIGINT", primary_key=True)])
        engine.execute(sqlglot.parse_one(f"INSERT INTO {name}.{t} VALUES (1), (2)", read="duckdb"),
                       None, name)
        engine.flush_table(name, t)
        engine.execute(sqlglot.parse_one(f"INSERT INTO {name}.{t} VALUES (3)", read="duckdb"),
                       None, name)


def race(snap: Callable[[], Any], change: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """Run both at once (a barrier, no delay); the snapshot's result or error."""
    barrier = threading.Barrier(2)
    out: dict[str, Any] = {}

    def left() -> None:
        barrier.wait()
        try:
            out["snap"] = snap()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            out["error"] = exc

    def right() -> None:
        barrier.wait()
        change()

    threads = [threading.Thread(target=left), threading.Thread(target=right)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out.get("snap"), out.get("error")


def tables_of(snapshot: Snapshot) -> dict[str, tuple[int, int, list[int]]]:
    """table -> (rows, schema_version, schema versions) of the one namespace."""
    (image,) = snapshot.namespaces
    return {t.name: (t.rows, t.schema_version, [s.version for s in t.schemas])
            for t in image.tables}


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    catalog, eng = open_engine(tmp_path / "data")
    yield eng
    eng.close()
    catalog.close()


def test_snapshot_against_drop_namespace_cascade(engine: Engine) -> None:
    seen = {"before": 0, "after": 0}
    for _ in range(ROUNDS):
        make_app(engine)
        snap, error = race(lambda: engine.snapshot({"app": None}),
                           lambda: engine.drop_namespace("app", cascade=True))
        if error is not None:
            assert isinstance(error, NotFound), error
            seen["after"] += 1
            continue
        with snap:
            assert tables_of(snap) == {"a": (3, 1, [1]), "b": (3, 1, [1])}
        seen["before"] += 1
    assert engine.catalog.get(Namespace, "app") is None
    assert sum(seen.values()) == ROUNDS


def test_snapshot_against_drop_table(engine: Engine) -> None:
    for i in range(ROUNDS):
        make_app(engine)
        snap, error = race(lambda: engine.snapshot({"app": None}),
                           lambda: engine.drop_table("app", "a"))
        assert error is None, error
        with snap:
            assert tables_of(snap) in ({"a": (3, 1, [1]), "b": (3, 1, [1])},
                                       {"b": (3, 1, [1])}), i
        engine.drop_namespace("app", cascade=True)


def test_snapshot_against_alter_table(engine: Engine) -> None:
    for i in range(ROUNDS):
        make_app(engine)
        snap, error = race(lambda: engine.snapshot({"app": None}),
                           lambda: engine.add_column("app", "a", col("x", "INT")))
        assert error is None, error
        with snap:
            assert tables_of(snap)["a"] in ((3, 1, [1]), (3, 2, [1, 2])), i
        engine.drop_namespace("app", cascade=True)


def test_snapshot_against_restore_replace(engine: Engine, tmp_path: Path) -> None:
    """RESTORE … WITH (replace = true) swaps `app` for a backup of `src` (tables
    c and d) while a snapshot of `app` is taken: it sees a, b or c, d."""
    make_app(engine, "src")
    for t in ("a", "b"):
        engine.tables.alter("src", t, lambda cur: cur.columns)  # version 2: tell them apart
    root = tmp_path / "backups"
    repo = Repository(resolve_target("race", [str(root)], {}), durable=False)
    with engine.snapshot({"src": None}) as snap:
        (image,) = snap.namespaces
        manifest = write_backup(repo, image, "bk-race", snapshot_at=snap.snapshot_at,
                                label=None, work=Quiet())

    def fetch(f: FileEntry, dest: Path, on_bytes: Any) -> None:
        repo.read_object_to(f.oid, str(dest), f.size, on_bytes=on_bytes, sha256=f.sha256)

    for i in range(ROUNDS // 2):
        make_app(engine)
        restore = Restore(manifest, "app", replace=True)
        snap, error = race(lambda: engine.snapshot({"app": None}),
                           lambda r=restore: engine.restore(r, fetch, Quiet()))
        assert error is None, error
        with snap:
            assert tables_of(snap) in ({"a": (3, 1, [1]), "b": (3, 1, [1])},
                                       {"a": (3, 2, [1, 2]), "b": (3, 2, [1, 2])}), i
        engine.drop_namespace("app", cascade=True)


async def test_backup_racing_drop_namespace_over_http(client: Any) -> None:
    """The issue's own scenario: BACKUP and DROP NAMESPACE … CASCADE sent together.
    A backup that completes holds both tables and verifies; restoring it gives both."""
    import asyncio

    completed = 0
    for i in range(8):
        await ok(client, f"CREATE NAMESPACE app{i}; CREATE TABLE app{i}.a (id BIGINT);"
                         f"CREATE TABLE app{i}.b (id BIGINT); INSERT INTO app{i}.a VALUES (1);"
                         f"INSERT INTO app{i}.b VALUES (2)")
        backup, _ = await asyncio.gather(
            sql(client, f"BACKUP DATABASE app{i} TO 'race'"),
            sql(client, f"DROP NAMESPACE app{i} CASCADE"))
        status, body = backup
        if status != 200:
            assert body["error"]["code"] == "NOT_FOUND", body
            continue
        completed += 1
        result = body["results"][0]["rows"][0]
        assert result["tables"] == 2 and result["rows"] == 2, result
        (verify,) = await rows(client, f"VERIFY BACKUP '{result['backup_id']}' IN 'race'")
        assert verify["is_valid"] is True
        await ok(client, f"RESTORE DATABASE app{i} FROM 'race' AS back{i} "
                         f"WITH (backup_id = '{result['backup_id']}')")
        assert len(await rows(client, f"SHOW TABLES IN back{i}")) == 2
