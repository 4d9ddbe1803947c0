"""A backed-up file's rows must be row versions Cairn could have written.

Every row Cairn writes takes its own sequence number (`catalog.next_seq(n)`
hands out `n` for `n` rows), and every version of a key but its first is
marked `_ow` (UPDATE, DELETE, an INSERT of a key that was deleted: dml.py);
queries rely on both (query.py keeps, of a key with `_ow` versions, the one
with the greatest `_seq`; of a key without, every row). So within one file:

- no two rows share a `_seq`: two `_ow` versions of one key with the same
  `_seq` were both the newest, two rows of one PRIMARY KEY;
- no key has two first versions (`_ow` false): both were shown, and an
  INSERT, UPDATE or DELETE then acted on a table holding two rows of one key.

`Versions` is fed the file batch by batch (contents.values_problem) and keeps
8 bytes a row of `_seq` (16 while they are sorted together at the end) and of
each first version's key: the key itself when it is one integer column, else
its 64-bit hash (DuckDB's `hash()`); two first versions of one hash are then
compared exactly, reading the file again for those alone (`confirm`). Across the
files of a table the same key could still have two first versions; that is not
checked (it would hold every key of the table at once).

The archive's replay (storage/archive/replay.py) feeds one `Versions` all the
rows it replays into a table, block by block, each naming its segment
(`source`): a repeat across blocks found by `done` names the segments that
hold it (`found_in`)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..types import OW, SEQ

if TYPE_CHECKING:
    import duckdb

SHOWN = 80  # characters of a key value a message shows


class Versions:
    """The `_seq`s and first-version keys of one file's rows so far."""

    def __init__(self, keys: list[str]) -> None:
        self.seqs: list[np.ndarray] = []  # sorted together at the end unless `apart`
        self.apart = True
        self.top: int | None = None
        self.keys = keys
        self.con: duckdb.DuckDBPyConnection | None = None  # for DuckDB's hash(), when needed
        self.ints: list[np.ndarray] = []  # the first versions' keys, when one integer column
        self.hashes: list[np.ndarray] = []  # else their 64-bit hashes (DuckDB's)
        self.suspects: set[int] = set()  # hashes of more than one first version
        # Where each of `seqs` and of `ints` or `hashes` came from (`add`'s
        # source), and what `done` found a repeat in.
        self.seqs_from: list[str] = []
        self.ints_from: list[str] = []
        self.hashes_from: list[str] = []
        self.found_in: list[str] = []

    def add(self, batch: pa.RecordBatch, source: str = "") -> str | None:
        """What is wrong with `batch` (no NULLs in `_seq`, `_ow` or the keys,
        and no more rows than the file's entry says: checked before), or
        None. A repeat within the batch is found at once."""
        seqs = np.sort(batch.column(SEQ).to_numpy())
        if len(seqs):
            # Cairn writes rows in `_seq` order: batches after one another
            # cannot repeat one, and need not be sorted together at the end.
            self.apart = self.apart and (self.top is None or int(seqs[0]) > self.top)
            self.top = int(seqs[-1]) if self.top is None else max(self.top, int(seqs[-1]))
            self.seqs.append(seqs)
            self.seqs_from.append(source)
        twice = _repeat(seqs)
        if twice is not None:
            return twice
        firsts = batch.select(self.keys).filter(pc.invert(batch.column(OW)))
        if not firsts.num_rows:
            return None
        if (wrong := _not_utf8(firsts)) is not None:
            return wrong
        if _integer(firsts):  # the common key: sorted as numbers, 20 times faster
            ints = np.sort(firsts.column(0).to_numpy())
            self.ints.append(ints)
            self.ints_from.append(source)
            return _two_ints(ints, self.keys[0])
        hashes = self._hashes(firsts)
        self.hashes.append(np.sort(hashes))
        self.hashes_from.append(source)
        same = _repeats(self.hashes[-1])
        if len(same):  # equal keys, or (one in 2^64) two keys of one hash
            self.suspects.update(same.tolist())
            return _two_firsts(_of(firsts, hashes, same), self.keys)
        return None

    def done(self) -> str | None:
        """What is wrong across the batches, or None (`found_in`: the sources
        of the batches holding the repeat, or of the suspects)."""
        if not self.apart:
            runs, self.seqs = self.seqs, []
            seqs = np.concatenate(runs)
            seqs.sort(kind="stable")  # sorted runs: merged
            value = _repeated(seqs)
            if value is not None:
                self.found_in = _holding(runs, self.seqs_from, np.array([value]))
                return _repeat(seqs)
            del runs
        if len(self.ints) > 1:
            runs, self.ints = self.ints, []
            ints = np.concatenate(runs)
            ints.sort(kind="stable")  # sorted runs: merged
            value = _repeated(ints)
            if value is not None:
                self.found_in = _holding(runs, self.ints_from, np.array([value]))
            return _two_ints(ints, self.keys[0])
        if len(self.hashes) > 1:
            runs, self.hashes = self.hashes, []
            hashes = np.concatenate(runs)
            hashes.sort(kind="stable")
            self.suspects.update(_repeats(hashes).tolist())
            if self.suspects:
                wanted = np.array(sorted(self.suspects), np.uint64)
                self.found_in = _holding(runs, self.hashes_from, wanted)
        return None

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def _hashes(self, firsts: pa.RecordBatch) -> np.ndarray:
        """A 64-bit hash of each row's key by DuckDB (any type; 4 times faster
        than keyfilter.py's numpy hashing of text)."""
        import duckdb

        if self.con is None:  # only for a key that is not one integer
            self.con = _cursor()
        try:
            self.con.register("__firsts", firsts)
            got = self.con.execute(f"SELECT hash({_terms(firsts)}) AS h FROM __firsts").fetchnumpy()
        except (duckdb.FatalException, duckdb.InternalException):
            # DuckDB invalidates its whole database on these (a `reverse` of
            # bytes that are no UTF-8 did): the process's one database would
            # fail every later file's check, a good backup called invalid.
            _forget()
            raise
        finally:
            with contextlib.suppress(duckdb.Error):
                self.con.unregister("__firsts")
        return np.asarray(got["h"], np.uint64)

    def confirm(self, batches: Iterable[pa.RecordBatch]) -> str | None:
        """After `done` left `suspects`: the file's batches again, and whether
        the first versions of those hashes are one key twice (else hashes of
        different keys: nothing wrong)."""
        wanted = np.array(sorted(self.suspects), np.uint64)
        found = []
        try:
            for batch in batches:
                firsts = batch.select(self.keys).filter(pc.invert(batch.column(OW)))
                if firsts.num_rows:
                    found.append(_of(firsts, self._hashes(firsts), wanted))
        finally:
            self.close()
        return _two_firsts(pa.concat_tables(found), self.keys) if found else None


_base: tuple[int, Any] | None = None  # (pid, connection): one database a process
_base_lock = threading.Lock()


def _cursor() -> duckdb.DuckDBPyConnection:
    """A cursor of this process's one private database for `hash()`. A
    connection of its own a file cost 60-85 ms (opened, then closed) on a
    loaded machine: 1,000 one-row files of a USER table (its key is the user
    and the key) took VERIFY 115 s, 85 of them here; a cursor costs under 1 ms."""
    global _base
    import duckdb  # here: only for keys that are not one integer

    from storage.sandbox import scratch_config

    with _base_lock:
        if _base is None or _base[0] != os.getpid():  # never a parent's after a fork
            _base = (os.getpid(), duckdb.connect(":memory:", config=scratch_config()))
        return _base[1].cursor()


def _forget() -> None:
    """The process's database is invalidated: the next cursor is of a new one
    (the old one goes with its last cursor; another thread's may be in use)."""
    global _base
    with _base_lock:
        _base = None


def _not_utf8(firsts: pa.RecordBatch) -> str | None:
    """What is wrong with a text key whose bytes are no UTF-8 (the file's
    reader does not check them; its statistics can say valid bounds), or
    None: DuckDB's `reverse` of them failed in a way that invalidated the
    process's one database (`_cursor`), and every later file's check."""
    for name, column in zip(firsts.schema.names, firsts.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            try:
                column.validate(full=True)
            except pa.ArrowInvalid as exc:
                return f"holds {name} values that are not UTF-8 ({exc})"
    return None


def _repeated(sorted_values: np.ndarray) -> Any:
    """The first value of `sorted_values` that is there twice, or None."""
    same = np.flatnonzero(sorted_values[1:] == sorted_values[:-1])
    return sorted_values[same[0]] if len(same) else None


def _repeat(sorted_seqs: np.ndarray) -> str | None:
    value = _repeated(sorted_seqs)
    if value is not None:
        return f"holds two rows of one row version (_seq {int(value)})"
    return None


def _holding(runs: list[np.ndarray], sources: list[str], wanted: np.ndarray) -> list[str]:
    """The sources (each once, in order) of the sorted `runs` holding one of `wanted`."""
    out = []
    for run, source in zip(runs, sources, strict=True):
        if len(run):
            at = np.searchsorted(run, wanted).clip(0, len(run) - 1)
            if bool(np.any(run[at] == wanted)):
                out.append(source)
    return list(dict.fromkeys(out))


def _integer(firsts: pa.RecordBatch) -> bool:
    return bool(firsts.num_columns == 1 and pa.types.is_integer(firsts.schema.field(0).type))


def _two_ints(sorted_keys: np.ndarray, name: str) -> str | None:
    value = _repeated(sorted_keys)
    if value is None:
        return None
    count = int(np.count_nonzero(sorted_keys == value))
    return (f"holds {count} first versions (_ow false) of one key ({name} = {int(value)}): "
            "every later version of a key is marked _ow")


def _terms(firsts: pa.RecordBatch) -> str:
    """hash()'s arguments: DuckDB's hash of text is weak (37,000 repeats in 2
    million keys like 'customer-000000001@example.com'), that of the text and
    of its reverse together is not (none there); a repeat only costs `confirm`."""
    out = []
    for field in firsts.schema:
        name = '"' + field.name.replace('"', '""') + '"'
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            out += [name, f"reverse({name})"]
        else:
            out.append(name)
    return ", ".join(out)


def _repeats(sorted_hashes: np.ndarray) -> np.ndarray:
    return np.unique(sorted_hashes[1:][sorted_hashes[1:] == sorted_hashes[:-1]])


def _of(firsts: pa.RecordBatch, hashes: np.ndarray, wanted: np.ndarray) -> pa.Table:
    """The rows of `firsts` whose hash is one of `wanted`."""
    return pa.Table.from_batches([firsts]).filter(pa.array(np.isin(hashes, wanted)))


def _two_firsts(firsts: pa.Table, keys: list[str]) -> str | None:
    for k in keys:  # as DuckDB compares keys: -0.0 is 0.0, and every NaN one NaN (an
        # older Cairn stored NaN keys; group_by tells their bits apart)
        if pa.types.is_floating(firsts.schema.field(k).type):
            at, col = firsts.schema.get_field_index(k), firsts.column(k)
            one_nan = pa.scalar(float("nan"), col.type)
            firsts = firsts.set_column(at, k, pc.if_else(pc.is_nan(col), one_nan,
                                                         pc.add(col, 0.0)))
    counts = firsts.group_by(keys, use_threads=False).aggregate([([], "count_all")])
    many = counts.filter(pc.greater(counts.column("count_all"), 1))
    if not many.num_rows:
        return None
    key = ", ".join(f"{k} = {_show(many.column(k)[0].as_py())}" for k in keys)
    return (f"holds {many.column('count_all')[0].as_py()} first versions (_ow false) of one "
            f"key ({key}): every later version of a key is marked _ow")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"
