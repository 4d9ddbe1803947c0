"""A restore to a time replays the archived changes beside the base's copy
(storage/install.py `Restore.beside`): the two overlap, a table the replay
drops leaves none of its fetched files behind, a failure of the replay
installs nothing and leaves nothing, and the restored row count (the base's
where the replay only added new keys, counted otherwise) is what a query sees."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from catalog import DataFile, Table
from server.config import Config
from storage.archive import store
from storage.backup.repository import Repository
from tests.helpers import err, ok, rows, state

from .test_archiving import segment_files, wait_shipped


def on_disk(cfg: Config) -> set[Path]:
    return {p for p in (Path(cfg.storage.data_dir) / "files").rglob("*") if p.is_file()}


def referenced(client: Any, namespace: str) -> set[Path]:
    """Files the catalog registers for the tables of `namespace`."""
    cairn = state(client)
    uids = {t.uid for t in cairn.catalog.scan(Table) if t.namespace == namespace}
    return {cairn.engine.files.abs(f.path) for f in cairn.catalog.scan(DataFile)
            if f.table_uid in uids}


async def live(client: Any, namespace: str) -> int:
    total = 0
    for t in await rows(client, f"SHOW TABLES IN {namespace}"):
        name = f"{namespace}.{t['table_name']}"
        total += (await rows(client, f"SELECT count(*) AS n FROM {name}"))[0]["n"]
    return total


async def archived_end(client: Any) -> str:
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    return str(points[0]["end_time"])


async def test_segments_are_read_while_the_base_is_copied(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the first segment waits until the base's first file is being
    fetched: a restore that replayed only before (or after) its copy would
    never let the two meet."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1), (2); FLUSH TABLE app.t")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (3)")
    end = await archived_end(client)
    fetching, met = threading.Event(), []
    read_object_to, read_segment = Repository.read_object_to, store.read_segment

    def fetch(self: Repository, *a: Any, **k: Any) -> Any:
        fetching.set()
        return read_object_to(self, *a, **k)

    def segment(*a: Any, **k: Any) -> Any:
        met.append(fetching.wait(30))  # never set: the copy waits for the replay
        return read_segment(*a, **k)

    monkeypatch.setattr(Repository, "read_object_to", fetch)
    monkeypatch.setattr(store, "read_segment", segment)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}')")
    assert met and all(met)
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}, {"id": 2}, {"id": 3}]


async def test_dropped_tables_counts_and_a_failed_replay(client: Any, cairn_config: Config) -> None:
    """The base holds t (with a delete: fewer live rows than versions), u and
    w; the archive drops u, drops and re-creates w, inserts into t and updates
    and deletes in v. The restore's row count is what queries see, only the
    restored tables' files are left on disk, and a damaged segment installs
    nothing and leaves nothing."""
    await ok(client, "CREATE NAMESPACE app;"
                     "CREATE TABLE app.t (id INT PRIMARY KEY, x TEXT);"
                     "CREATE TABLE app.u (id INT PRIMARY KEY);"
                     "CREATE TABLE app.v (id INT PRIMARY KEY, n INT);"
                     "CREATE TABLE app.w (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'), (3, 'c');"
                     "DELETE FROM app.t WHERE id = 2; INSERT INTO app.u VALUES (1), (2);"
                     "INSERT INTO app.v VALUES (1, 1), (2, 2), (3, 3);"
                     "INSERT INTO app.w VALUES (7), (8), (9);"
                     "FLUSH TABLE app.t; FLUSH TABLE app.u; FLUSH TABLE app.v; FLUSH TABLE app.w")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (4, 'd'), (5, 'e'); DROP TABLE app.u;"
                     "UPDATE app.v SET n = 20 WHERE id = 2; DELETE FROM app.v WHERE id = 3;"
                     "INSERT INTO app.v VALUES (3, 30), (4, 4);"
                     "DROP TABLE app.w; CREATE TABLE app.w (id INT PRIMARY KEY);"
                     "INSERT INTO app.w VALUES (1)")
    end = await archived_end(client)
    before = on_disk(cairn_config)
    got = (await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}')"))[0]
    got = got["rows"][0]
    tables = await rows(client, "SHOW TABLES IN r")
    assert sorted(t["table_name"] for t in tables) == ["t", "v", "w"]
    assert await rows(client, "SELECT id, x FROM r.t ORDER BY id") == [
        {"id": 1, "x": "a"}, {"id": 3, "x": "c"}, {"id": 4, "x": "d"}, {"id": 5, "x": "e"}]
    assert await rows(client, "SELECT id, n FROM r.v ORDER BY id") == [
        {"id": 1, "n": 1}, {"id": 2, "n": 20}, {"id": 3, "n": 30}, {"id": 4, "n": 4}]
    assert await rows(client, "SELECT id FROM r.w") == [{"id": 1}]
    assert got["rows"] == await live(client, "r") == 9
    assert got["tables"] == 3
    # u's and the first w's fetched files went; nothing unreferenced is left
    assert on_disk(cairn_config) - before == referenced(client, "r")
    # a damaged segment: refused, nothing installed, nothing left on disk
    seg = max(segment_files(Path(cairn_config.backup_roots[0])), key=lambda p: p.stat().st_size)
    data = bytearray(seg.read_bytes())
    data[len(data) - 3] ^= 0x10
    seg.write_bytes(bytes(data))
    before = on_disk(cairn_config)
    await err(client, f"RESTORE DATABASE app FROM 'arch' AS broken WITH (as_of = '{end}')",
              "BACKUP_INVALID")
    assert not [n for n in await rows(client, "SHOW NAMESPACES") if n["namespace"] == "broken"]
    assert on_disk(cairn_config) == before
