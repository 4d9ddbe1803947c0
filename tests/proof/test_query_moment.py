"""A statement sees every table it reads at one moment with respect to a
restore's install (storage/resolve.py): RESTORE … WITH (replace = true)
swaps namespace `rp` (tables m and n) between backup A (every v 'A') and
backup B (every v 'B'), and no reader sees a table empty or m from one
backup and n from the other. The interleavings are forced with a hook on the
engine's name resolution (the restore runs between two tables' resolution,
or between a table's resolution and its snapshot); a loop of restores beside
reading threads checks the same with real timing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from storage import fast
from storage.backup import Manifest, Repository, resolve_target, write_backup
from storage.backup.schema import FileEntry
from storage.buffer import TableState
from storage.engine import Engine
from storage.install import Restore
from tests.helpers import Quiet
from tests.storage.conftest import col, open_engine

pytestmark = pytest.mark.timeout(600)

BOTH = "SELECT (SELECT count(*) FROM rp.m), (SELECT min(v) FROM rp.m), " \
       "(SELECT count(*) FROM rp.n), (SELECT min(v) FROM rp.n)"


def run(engine: Engine, text: str, ns: str = "rp") -> Any:
    tree = sqlglot.parse_one(text, read="duckdb")
    if text.split()[0].upper() in ("INSERT", "UPDATE", "DELETE"):
        return engine.execute(tree, None, ns)
    table = engine.query(tree, None, ns)
    return list(zip(*(c.to_pylist() for c in table.columns), strict=True))


class Swapper:
    """Backups A and B of a namespace with tables m and n; `swap(x)` restores
    backup x over `rp` (replace = true), as RESTORE DATABASE … does."""

    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        engine.create_namespace("src")
        for t in ("m", "n"):
            engine.create_table("src", t, "shared",
                                [col("id", "BIGINT", primary_key=True), col("v", "TEXT")])
            run(engine, f"INSERT INTO src.{t} VALUES (1, 'A'), (2, 'A')", "src")
        self.repo = Repository(resolve_target("moment", [str(root)], {}), durable=False)
        self.manifests: dict[str, Manifest] = {"A": self.backup("bk-a")}
        for t in ("m", "n"):
            run(engine, f"UPDATE src.{t} SET v = 'B'", "src")
        self.manifests["B"] = self.backup("bk-b")
        engine.restore(Restore(self.manifests["A"], "rp"), self.fetch, Quiet())

    def backup(self, backup_id: str) -> Manifest:
        with self.engine.snapshot({"src": None}) as snap:
            (image,) = snap.namespaces
            return write_backup(self.repo, image, backup_id, snapshot_at=snap.snapshot_at,
                                label=None, work=Quiet())

    def fetch(self, f: FileEntry, dest: Path, on_bytes: Any) -> None:
        self.repo.read_object_to(f.oid, str(dest), f.size, on_bytes=on_bytes, sha256=f.sha256)

    def swap(self, which: str) -> None:
        self.engine.restore(Restore(self.manifests[which], "rp", replace=True), self.fetch,
                            Quiet())


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    catalog, eng = open_engine(tmp_path / "data")
    yield eng
    eng.close()
    catalog.close()


@pytest.fixture
def swapper(engine: Engine, tmp_path: Path) -> Swapper:
    return Swapper(engine, tmp_path / "backups")


def hook(engine: Engine, monkeypatch: pytest.MonkeyPatch, table: str, before: bool,
         swap: Callable[[], None]) -> list[int]:
    """Run `swap` once, at the first resolution of rp.`table`: `before` it is
    looked up (the tables resolved until then are the old ones) or after (the
    state handed back is the one the swap drops). Counts the resolutions."""
    real = engine.state
    calls = [0]

    def state(namespace: str, name: str) -> TableState:
        first = (namespace, name) == ("rp", table) and not calls[0]
        if (namespace, name) == ("rp", table):
            calls[0] += 1
        if first and before:
            swap()
        st = real(namespace, name)
        if first and not before:
            swap()
        return st

    monkeypatch.setattr(engine, "state", state)
    return calls


def test_a_table_replaced_after_its_lookup_is_not_read_empty(
        engine: Engine, swapper: Swapper, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = hook(engine, monkeypatch, "m", False, lambda: swapper.swap("B"))
    assert run(engine, "SELECT count(*), min(v) FROM rp.m") == [(2, "B")]  # was (0, None)
    assert calls[0] == 2  # looked up again


def test_two_tables_are_read_from_one_backup(
        engine: Engine, swapper: Swapper, monkeypatch: pytest.MonkeyPatch) -> None:
    hook(engine, monkeypatch, "n", True, lambda: swapper.swap("B"))
    assert run(engine, BOTH) == [(2, "B", 2, "B")]  # was m from A, n from B


def test_a_join_replaced_midway_reads_one_backup(
        engine: Engine, swapper: Swapper, monkeypatch: pytest.MonkeyPatch) -> None:
    hook(engine, monkeypatch, "n", False, lambda: swapper.swap("B"))
    assert run(engine, "SELECT m.id, m.v, n.v FROM rp.m JOIN rp.n USING (id) ORDER BY 1") \
        == [(1, "B", "B"), (2, "B", "B")]


def test_insert_select_and_update_read_one_backup(
        engine: Engine, swapper: Swapper, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_namespace("out")
    engine.create_table("out", "t", "shared",
                        [col("id", "BIGINT", primary_key=True), col("v", "TEXT")])
    hook(engine, monkeypatch, "n", True, lambda: swapper.swap("B"))
    run(engine, "INSERT INTO out.t SELECT m.id, m.v || n.v FROM rp.m JOIN rp.n USING (id)")
    assert run(engine, "SELECT id, v FROM out.t ORDER BY id") == [(1, "BB"), (2, "BB")]
    hook(engine, monkeypatch, "n", True, lambda: swapper.swap("A"))
    run(engine, "UPDATE out.t SET v = (SELECT min(v) FROM rp.m) || (SELECT max(v) FROM rp.n)")
    assert run(engine, "SELECT id, v FROM out.t ORDER BY id") == [(1, "AA"), (2, "AA")]


def test_point_selects_never_read_a_dropped_table(
        engine: Engine, swapper: Swapper, monkeypatch: pytest.MonkeyPatch) -> None:
    hook(engine, monkeypatch, "m", False, lambda: swapper.swap("B"))
    assert run(engine, "SELECT v FROM rp.m WHERE id = 1") == [("B",)]  # was no row
    run(engine, "INSERT INTO rp.m VALUES (3, 'buffered')")  # a row the snapshot answers
    hook(engine, monkeypatch, "m", False, lambda: swapper.swap("A"))
    got = fast.select(engine, "rp", "m", ["id", "v"], "id", "1", False, False, None, None)
    assert got is None  # the parser's fast path: the tree's path resolves it again
    assert run(engine, "SELECT id, v FROM rp.m WHERE id = 3") == []  # A has no row 3
    assert run(engine, "SELECT id, v FROM rp.m WHERE id = 1") == [(1, "A")]


def test_a_loop_of_restores_never_shows_readers_a_mix_or_an_empty_table(
        engine: Engine, swapper: Swapper) -> None:
    stop = threading.Event()
    bad: list[Any] = []
    seen = [0]

    def reader() -> None:
        while not stop.is_set():
            got = run(engine, BOTH)
            if got not in ([(2, "A", 2, "A")], [(2, "B", 2, "B")]):
                bad.append(got)
            one = run(engine, "SELECT v FROM rp.m WHERE id = 1")
            if one not in ([("A",)], [("B",)]):
                bad.append(one)
            seen[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            swapper.swap("AB"[i % 2])
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not bad, bad[:5]
    assert seen[0] > 0
