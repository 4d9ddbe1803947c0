"""Point lookups (`WHERE pk = literal`) cut the buffer to the key in Arrow and,
with no file to read, pick the newest version themselves (storage/query.py);
the buffer's cached conversion is extended with appends only (buffer.py).
Both must answer exactly what the general newest-version query answers: the
same question asked so that it is not a point lookup (`id + 0 = k`) is the
model."""

from __future__ import annotations

import random

import pyarrow as pa

from storage.batch import BatchMap, BufBatch
from storage.engine import Engine

from .conftest import Run, col


def _same_answers(run: Run, table: str, keys: list[int], user: str | None) -> None:
    for k in keys:
        for cols, extra in (("id, v", ""), ("id, v, _deleted", " AND _deleted")):
            point = run(f"SELECT {cols} FROM app.{table} WHERE id = {k}{extra}", user=user)
            model = run(f"SELECT {cols} FROM app.{table} WHERE id + 0 = {k}{extra}", user=user)
            assert point == model, (k, cols, extra)


def test_point_lookups_match_the_general_query(engine: Engine, run: Run) -> None:
    rng = random.Random(15)
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    engine.create_table("app", "u", "user", [col("id", "BIGINT", primary_key=True), col("v")])
    live: dict[tuple[str, str | None], set[int]] = {("t", None): set(), ("u", "ann"): set(),
                                                     ("u", "bo"): set()}
    for step in range(120):
        (table, user), keys = rng.choice(list(live.items()))
        k = rng.randrange(6)
        if k not in keys:
            run(f"INSERT INTO app.{table} VALUES ({k}, {step})", user=user)
            keys.add(k)
        elif rng.random() < 0.5:
            run(f"UPDATE app.{table} SET v = {step} WHERE id = {k}", user=user)
        else:
            run(f"DELETE FROM app.{table} WHERE id = {k}", user=user)
            keys.discard(k)
        if step % 40 == 39:
            engine.flush_table("app", table)
        if step % 7 == 0:
            _same_answers(run, table, list(range(7)), user)
    for (table, user), keys in live.items():
        _same_answers(run, table, list(range(7)), user)
        assert {r["id"] for r in run(f"SELECT id FROM app.{table}", user=user)} == keys


def test_buffer_conversion_follows_appends_and_removals(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    seen = []
    for i in range(30):
        run(f"INSERT INTO app.t VALUES ({i}, {i})")
        seen.append(i)
        if i % 10 == 9:
            engine.flush_table("app", "t")  # removes batches: the cache must notice
        assert sorted(r["id"] for r in run("SELECT id FROM app.t")) == seen
    st = engine.state("app", "t")
    with st.lock:
        assert st.buffer_table().num_rows == len(st.batches)


def test_batch_map_generation() -> None:
    def batch(i: int) -> BufBatch:
        return BufBatch(bytes([i]), 1, 0.0, None, pa.table({"a": [i]}))

    m = BatchMap({bytes([0]): batch(0)})
    m[bytes([1])] = batch(1)
    m[bytes([2])] = batch(2)
    assert m.generation == 0  # appends only
    assert [b.key for b in m.tail(2)] == [bytes([1]), bytes([2])]
    assert m.tail(0) == []
    m[bytes([1])] = batch(9)  # a replacement
    assert m.generation == 1
    m.pop(bytes([0]))
    assert m.generation == 2
    assert m.rows == 2 and m.first() is not None and m.first().key == bytes([9])
    del m[bytes([1])]
    m.update({bytes([7]): batch(7)})
    assert m.rows == 2 and m.generation == 4
    m.clear()
    assert m.rows == 0 and m.first() is None


def test_batch_map_counts_the_bytes_of_its_values() -> None:
    """`nbytes` follows every way entries come and go (the byte flush reads it)."""
    from storage.batch import batch_bytes

    def big(i: int, n: int) -> BufBatch:
        return BufBatch(bytes([i]), 1, 0.0, None, pa.table({"v": ["x" * n]}))

    m = BatchMap({bytes([0]): big(0, 1000)})
    m[bytes([1])] = big(1, 5000)
    m[bytes([1])] = big(1, 7000)  # replaced
    m.update({bytes([2]): big(2, 100)})
    assert m.nbytes == sum(batch_bytes(b) for b in m.values())
    assert 8100 <= m.nbytes < 8100 + 200  # the strings, and their offsets
    m.pop(bytes([1]))
    del m[bytes([0])]
    assert m.nbytes == batch_bytes(m[bytes([2])])
    m.popitem()
    assert m.nbytes == 0 and m.rows == 0


def test_batch_map_removes_a_flush_as_pops_would() -> None:
    """A flush takes its batches off with sizes reckoned before the table's
    lock: the counts end as one `pop` a key would leave them, also for a key
    replaced since (its new value's size counts) and one already gone."""
    from storage.batch import batch_bytes

    def big(i: int, n: int) -> BufBatch:
        return BufBatch(bytes([i]), 1, 0.0, None, pa.table({"v": ["x" * n] * (i + 1)}))

    flushed = [big(i, 100 * (i + 1)) for i in range(5)]
    popped = BatchMap({b.key: b for b in flushed})
    removed = BatchMap({b.key: b for b in flushed})
    for m in (popped, removed):
        m[bytes([2])] = big(2, 9000)  # replaced after the flush read it
        del m[bytes([3])]  # gone meanwhile
        m[bytes([9])] = big(9, 50)  # written after: stays
    generation = removed.generation
    for b in flushed:
        popped.pop(b.key, None)
    removed.remove_flushed(flushed, [batch_bytes(b) for b in flushed])
    assert list(removed) == list(popped) == [bytes([9])]
    left = (10, batch_bytes(big(9, 50)))
    assert (removed.rows, removed.nbytes) == (popped.rows, popped.nbytes) == left
    assert removed.generation > generation  # a cached conversion of it is stale
