"""The catalog: one RocksDB (through rocksdict) holding every kind of record in
its own column family, plus raw data families (every table's write buffer).
Keeping records and write buffers in one database is what makes Cairn's
promises cheap: a flush registers its Parquet file and removes the rows from
the buffer in one atomic `WriteBatch`, and one RocksDB checkpoint is a
consistent copy of the whole server (records and buffered rows) at an instant."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from rocksdict import (
    BottommostLevelCompaction,
    Checkpoint,
    CompactOptions,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
)

from .diskerrors import (
    CatalogLocked,
    DataDirUnavailable,
    from_rocksdb,
    half_made,
    names_disk_cause,
    open_failed,
)
from .ids import new_id
from .records import RECORD_TYPES, Meta, R, Record, prefix_upper_bound
from .unsaved import Unsaved

SEQ_BLOCK = 100_000
log = logging.getLogger("cairn.catalog")


MAX_TOTAL_WAL_BYTES = 64 << 20  # logs any family's unflushed write holds (were unbounded)
MEMTABLE_BYTES = 128 << 20  # every family's memtables together (a STREAM's evicted rows)
# RocksDB's own info logs (LOG, and LOG.old.<time>: one more every open, up to
# 1,000 by its default, 0.1-0.7 MB each): a few kept, the live one rolled.
INFO_LOGS_KEPT = 5
INFO_LOG_BYTES = 16 << 20
BUFFERS = "buffers"  # every table's write buffer (storage/bufstore.py): opened with the rest
CHANGES = "changes"  # the change log (storage/archive/changes.py): too (see `family`)


def _options() -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES)
    opts.set_db_write_buffer_size(MEMTABLE_BYTES)
    opts.set_keep_log_file_num(INFO_LOGS_KEPT)
    opts.set_max_log_file_size(INFO_LOG_BYTES)
    return opts


class Batch:
    """Writes collected and applied atomically across families by `commit()`."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._wb = WriteBatch(raw_mode=True)
        self.count = 0
        self._kept: list[tuple[str, bytes]] = []  # keys of records kept in memory, put anew
        self._touched: set[str] = set()  # families written: their `Catalog.writes` go up

    def put(self, record: Record) -> Batch:
        self._touched.add(record.FAMILY)
        key = record.key().encode()
        self._wb.put(key, record.dumps(), self._catalog._handle(record.FAMILY))
        if self._catalog._unsaved:
            self._kept.append((record.FAMILY, key))
        self.count += 1
        return self

    def delete(self, kind: type[Record], key: str) -> Batch:
        self._touched.add(kind.FAMILY)
        self._wb.delete(key.encode(), self._catalog._handle(kind.FAMILY))
        if self._catalog._unsaved:  # a record kept in memory is not written after this
            self._kept.append((kind.FAMILY, key.encode()))
        self.count += 1
        return self

    def put_raw(self, family: str, key: bytes, value: bytes) -> Batch:
        self._wb.put(key, value, self._catalog._handle(family))
        self.count += 1
        return self

    def delete_raw(self, family: str, key: bytes) -> Batch:
        self._wb.delete(key, self._catalog._handle(family))
        self.count += 1
        return self

    def delete_range_raw(self, family: str, begin: bytes, end: bytes) -> Batch:
        """Delete every key in [begin, end) of a raw family (one range tombstone)."""
        self._wb.delete_range(begin, end, self._catalog._handle(family))
        self.count += 1
        return self

    def commit(self) -> None:
        """Apply the batch. rocksdict holds the GIL for the whole write, so off
        the event loop keep batches small (bench/rocksdict_gil.py). A write the
        disk refuses raises DataDirUnavailable; the batch is dropped."""
        if self.count:
            catalog = self._catalog
            # Under the lock `_save_unsaved` writes under: a record kept in
            # memory and written anew here was otherwise written over by its
            # older kept value when the two raced (rocksdict holds the GIL for
            # the whole write anyway, so no write waits longer).
            with catalog._lock:
                try:
                    catalog._db.write(self._wb)
                except Exception as exc:  # rocksdict raises a bare Exception for IO errors
                    self._wb = WriteBatch(raw_mode=True)
                    self.count = 0
                    raise catalog.disk_error(exc) from None
                if catalog.write_error is not None:
                    catalog.write_error = None
                    log.warning("the data directory takes writes again")
                for family in self._touched:
                    catalog.writes[family] += 1
                for kept in self._kept:
                    catalog._unsaved.pop(kept, None)
                if catalog._unsaved:
                    catalog._save_unsaved()
        self._wb = WriteBatch(raw_mode=True)
        self.count = 0
        self._kept = []
        self._touched = set()


class Catalog(Unsaved):
    """Typed access to the metadata families and raw access to data families."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        opts = _options()
        try:
            existing = Rdict.list_cf(str(self.path), Options(raw_mode=True))
        except Exception:
            existing = ["default"]
        wanted = set(existing) | {cls.FAMILY for cls in RECORD_TYPES} | {BUFFERS, CHANGES}
        cfs = {name: Options(raw_mode=True) for name in wanted if name != "default"}
        self.write_error: str | None = None  # why the last write failed, until one succeeds
        try:
            self._db = Rdict(str(self.path), opts, column_families=cfs)
        except Exception as exc:  # rocksdict raises a bare Exception for IO errors
            if "lock" in str(exc).lower() and not names_disk_cause(str(exc)):
                raise CatalogLocked(
                    f"data directory {self.path.parent} is in use by another Cairn server"
                ) from exc
            raise open_failed(self.path, exc) from None
        self._families: dict[str, Rdict] = {}
        self._handles: dict[str, Any] = {}
        self._created: set[str] = set()  # families created since the catalog opened
        self._files, self._files_at = 0, 0.0  # data files, when counted (`descriptors`)
        # Records `keep` could not write: (family, key) -> value, read as written
        self._unsaved: dict[tuple[str, bytes], bytes | None] = {}  # None: forgotten
        self.writes: Counter[str] = Counter()  # typed writes committed, by family
        self._lock = threading.RLock()
        for name in wanted:
            if name != "default":
                self._open_family(name)
        self._seq_next = self._seq_high = 0
        meta = self.get(Meta, "seq_high")
        if meta is not None:
            self._seq_next = self._seq_high = int(meta.value)

    def server_id(self) -> str:
        """This data directory's id (`sv-…`), made once: backups name it
        (`namespace_record.server`) so that servers sharing a target tell their
        namespaces of one name apart (keep_last, RESTORE)."""
        with self._lock:
            meta = self.get(Meta, "server_id")
            if meta is None:
                meta = Meta("server_id", new_id("sv"))
                self.put(meta)
            return str(meta.value)

    # --- families -------------------------------------------------------

    def _open_family(self, name: str) -> Rdict:
        try:
            fam = self._db.get_column_family(name)
        except Exception:  # RocksDB made it, then a full disk refused its OPTIONS file
            raise half_made(self.path.parent, name) from None  # (so Cairn's are made at open)
        self._families[name] = fam
        self._handles[name] = self._db.get_column_family_handle(name)
        return fam

    def _handle(self, family: str) -> Any:
        handle = self._handles.get(family)
        if handle is None:
            self.family(family)
            handle = self._handles[family]
        return handle

    def family(self, name: str) -> Rdict:
        """The raw family `name`, created if missing."""
        with self._lock:
            fam = self._families.get(name)
            if fam is None:
                try:
                    self._db.create_column_family(name, Options(raw_mode=True))
                    self._created.add(name)
                except Exception as exc:
                    if "already exists" not in str(exc):  # not created by a racing caller
                        raise self.disk_error(exc) from None
                fam = self._open_family(name)
            return fam

    def has_family(self, name: str) -> bool:
        return name in self._families

    def families(self) -> list[str]:
        return sorted(self._families)

    def descriptors(self) -> int:
        """File descriptors the catalog holds for good, as server/limits.py
        keeps them from connections: RocksDB opens the directory again for
        each column family created while it runs, until it is dropped, and
        keeps every data (SST) file open (not bounded: a read that had to open
        one could fail, and its scans end early without a word). The files
        are counted at most once a second."""
        now = time.monotonic()
        if now - self._files_at > 1.0:
            self._files_at = now
            with suppress(Exception):  # closed: the last count
                self._files = len(self._db.live_files())
        return len(self._created) + self._files

    def flush_family(self, name: str) -> None:
        """Write the family's memtable out now (waiting for it), so its memory
        goes: a table's buffer family holds every row written since the last
        memtable flush (up to 64 MB per family by default) even after a Cairn
        flush deleted them. What is deleted in the same memtable is dropped on
        the way, so the file written is small."""
        with self._lock:
            fam = self._families.get(name)
        if fam is not None:
            with self._disk():
                fam.flush(True)

    def compact_deleted(self, name: str, at_least: int, begin: bytes | None = None,
                        end: bytes | None = None) -> bool:
        """Compact the family (its keys in [begin, end) if given) if its SST
        files hold `at_least` bytes more than RocksDB's estimate of its live
        data: rows a Cairn flush deleted after RocksDB had written them to disk
        stay there, under tombstones, until a compaction, and every scan of the
        family (a table's first load after a start) steps over them (78 MB of
        them: 138 ms to find 10 live rows, 0.3 ms after). With `at_least` 0,
        files already on the last level are compacted too (RocksDB skips them
        by default: a flush's tombstone moved there whole stayed a file for
        good). The compaction runs on RocksDB's threads, not holding the GIL.
        True if it ran."""
        with self._lock:
            fam = self._families.get(name)
        if fam is None:
            return False
        total = fam.property_int_value("rocksdb.total-sst-files-size") or 0
        live = fam.property_int_value("rocksdb.estimate-live-data-size") or 0
        if at_least and total - live < at_least:  # 0: always
            return False
        last = CompactOptions()
        if not at_least:
            last.set_bottommost_level_compaction(BottommostLevelCompaction.force_optimized())
        fam.compact_range(begin, end, last)
        return True

    def drop_family(self, name: str) -> None:
        with self._lock:
            if name not in self._families:
                return
            try:
                self._db.drop_column_family(name)
            except Exception as exc:
                raise self.disk_error(exc) from None
            del self._families[name]
            del self._handles[name]
            self._created.discard(name)

    # --- typed records --------------------------------------------------

    def get(self, kind: type[R], key: str) -> R | None:
        raw = self._families[kind.FAMILY].get(key.encode())
        if self._unsaved:
            raw = self._unsaved.get((kind.FAMILY, key.encode()), raw)
        return None if raw is None else kind.loads(raw)

    def scan(self, kind: type[R], prefix: str = "") -> list[R]:
        return [kind.loads(v) for _, v in self.scan_raw(kind.FAMILY, prefix.encode())]

    def put(self, record: Record) -> None:
        self.batch().put(record).commit()

    def delete(self, kind: type[Record], key: str) -> None:
        self.batch().delete(kind, key).commit()

    def batch(self) -> Batch:
        return Batch(self)

    @contextmanager
    def atomic(self) -> Iterator[Batch]:
        """`with catalog.atomic() as b: ...` commits on success, drops on error."""
        b = Batch(self)
        yield b
        b.commit()

    # --- raw data -------------------------------------------------------

    def scan_raw(
        self, family: str, prefix: bytes = b"", start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys with `prefix`, in order, from `start` (inclusive) if given.

        rocksdict ignores `set_iterate_lower_bound`, so we seek with `from_key`
        and stop with an upper bound. This is a generator on purpose: the
        ReadOptions holding the bound must outlive the iterator (rocksdict does
        not keep it alive, and a freed bound silently cuts the scan short)."""
        fam = self._families.get(family)
        if fam is None:
            return
        ro = ReadOptions()
        upper = prefix_upper_bound(prefix) if prefix else None
        if upper is not None:
            ro.set_iterate_upper_bound(upper)
        first = start if start is not None else prefix
        kept = self._kept_in(family, prefix, first) if self._unsaved else None
        if kept:
            found: dict[bytes, bytes | None] = {}
            for key, value in fam.items(from_key=first, read_opt=ro):
                if isinstance(key, bytes):  # raw families: bytes
                    found[key] = value
            found.update(kept)
            yield from sorted((k, v) for k, v in found.items() if v is not None)
        else:
            yield from fam.items(from_key=first, read_opt=ro)
        del ro

    def values_raw(self, family: str, start: bytes, end: bytes) -> Generator[bytes, None, None]:
        """The values of the keys in [start, end), in key order. RocksDB stops
        at `end` itself (the read's upper bound) and rocksdict's iterator hands
        out values only, so a caller that takes them in bulk
        (`itertools.islice`) runs no Python per key. A generator for the same
        reason as `scan_raw`: the bound must outlive the iterator."""
        fam = self._families.get(family)
        if fam is None:
            return
        ro = ReadOptions()
        ro.set_iterate_upper_bound(end)
        yield from fam.values(from_key=start, read_opt=ro)
        del ro

    def last_raw(self, family: str, prefix: bytes, upto: bytes) -> tuple[bytes, bytes] | None:
        """The greatest key <= `upto` that starts with `prefix` (`upto` itself
        starting with it), with its value; None if there is none. One seek
        backwards: the keys before it are never stepped over."""
        fam = self._families.get(family)
        if fam is None:
            return None
        for key, value in fam.items(backwards=True, from_key=upto):
            if isinstance(key, bytes) and key.startswith(prefix):  # raw families: bytes
                return key, value
            return None
        return None

    def get_raw(self, family: str, key: bytes) -> bytes | None:
        fam = self._families.get(family)
        return None if fam is None else fam.get(key)

    # --- sequences and checkpoints -------------------------------------

    def next_seq(self, n: int = 1) -> int:
        """Reserve `n` consecutive sequence numbers and return the first.

        Numbers are reserved in blocks whose high-water mark is written before
        any number of the block is handed out, so they never repeat across
        restarts (a crash only skips the unused rest of a block)."""
        with self._lock:
            first = self._seq_next + 1
            last = self._seq_next + n
            if last > self._seq_high:
                self._seq_high = last + SEQ_BLOCK
                self.put(Meta("seq_high", self._seq_high))
            self._seq_next = last
            return first

    def last_seq(self) -> int:
        """The highest sequence number handed out or restored (every later one is larger)."""
        with self._lock:
            return self._seq_next

    def ensure_seq_above(self, value: int) -> None:
        """Make every later `next_seq` larger than `value` (a restore brings row
        versions numbered by another server; newer writes must sort after them)."""
        with self._lock:
            if value > self._seq_next:
                self._seq_next = value
            if self._seq_next > self._seq_high:
                self._seq_high = self._seq_next + SEQ_BLOCK
                self.put(Meta("seq_high", self._seq_high))

    def checkpoint(self, directory: str | Path) -> None:
        """A consistent copy of every family (hard links). It first flushes every
        memtable, holding the GIL meanwhile (180 ms with 60 MB in memtables,
        bench/rocksdict_gil.py), so the server itself takes none."""
        with self._disk():
            Checkpoint(self._db).create_checkpoint(str(directory))

    def property_totals(self, names: list[str]) -> dict[str, int]:
        """Integer RocksDB properties (e.g. `rocksdb.estimate-live-data-size`)
        summed over every family; a property RocksDB does not know is left out."""
        totals: dict[str, int] = {}
        with self._lock:
            families = [self._db, *self._families.values()]
            for name in names:
                for fam in families:
                    value = fam.property_int_value(name)
                    if value is not None:
                        totals[name] = totals.get(name, 0) + int(value)
        return totals

    def flush_wal(self) -> None:
        with self._disk():
            self._db.flush_wal(True)

    @contextmanager
    def _disk(self) -> Iterator[None]:
        """rocksdict's IO errors inside the block as `disk_error`s."""
        try:
            yield
        except DataDirUnavailable:
            raise
        except Exception as exc:  # rocksdict raises a bare Exception for IO errors
            raise self.disk_error(exc) from None

    def disk_error(self, exc: Exception) -> Exception:
        """What to raise for rocksdict's error `exc`: DataDirUnavailable for an
        IO error (remembered in `write_error`), `exc` itself otherwise."""
        mapped = from_rocksdb(self.path.parent, exc)
        if mapped is None:
            return exc
        if self.write_error is None:
            log.warning("the data directory refuses writes: %s", mapped.message)
        self.write_error = mapped.message
        return mapped

    def probe_writes(self) -> str | None:
        """While writes fail: try one small write (RocksDB resumes by itself
        once the disk has room again, see docs/http.md); why it still fails,
        or None when writes work."""
        if self.write_error is not None or self._unsaved:
            with suppress(DataDirUnavailable):
                self.put(Meta("write_probe", 0))  # writes what is kept in memory too
        return self.write_error

    def close(self) -> None:
        """Close the database. After a write error RocksDB's close reports it
        again (`Writer has previous error`) but closes all the same: what was
        acknowledged is in the write-ahead log. What is kept in memory is
        written first if the disk takes it now."""
        if self._unsaved:
            self._save_unsaved()  # still refused: start-up's recovery then looks
        self._families.clear()
        self._handles.clear()
        try:
            self._db.close()
        except Exception as exc:  # rocksdict raises a bare Exception for IO errors
            if from_rocksdb(self.path.parent, exc) is None:
                raise
            log.warning("closing the catalog after a write error: %s", exc)
