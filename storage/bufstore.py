"""Every table's write buffer in one RocksDB column family, `buffers`.

A buffer entry's key is its table's uid, a 0 byte, then the entry's 8-byte
sequence key (storage/buffer.py `seq_key`): a table's entries are one key
range, in the order of their sequence numbers, and a table's drop is one range
tombstone.

Until 2026-12-06 each table had a family of its own (`buf_<uid>`). RocksDB
rewrites its OPTIONS file, which lists every family (~4.7 KB each), whenever
one is created or dropped, and rocksdict holds the GIL meanwhile: N tables
cost O(N²) to create (0.07 s a CREATE TABLE at 0 tables, 0.67 s at 750) and a
DROP NAMESPACE of 1,000 tables took 519 s, every other statement waiting up to
11 s behind it. With one family, CREATE TABLE writes records only and DROP
writes one tombstone. A data directory in the old layout is moved into this
one when it is opened (`migrate`), once, and marked with its data format
(Meta `data_format`), which a release that reads an older one refuses. The
move cannot be undone: see docs/architecture.md, "One RocksDB for records
and rows", for what an older release does with such a directory."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from catalog import Catalog, Meta, Table
from catalog.errors import CannotStart
from catalog.records import prefix_upper_bound
from catalog.store import BUFFERS

FAMILY = BUFFERS  # opened with the catalog: made by no statement
LEGACY = "buf_"  # the old layout: one family a table, `buf_<uid>`
SEP = b"\x00"  # after the uid: no uid holds a 0 byte (catalog/ids.py)
MOVE_BYTES = 32 << 20  # a migration's batch: at most this many bytes of entries
RECLAIM_BYTES = 1 << 20  # deleted rows on disk a start-up compacts away (`sweep`)
# SST files of the family past which it is compacted into one (`tidy`): each
# flush's range tombstone was a file of its own, moved down the levels whole
# (its range overlaps no other) and never merged, each held open by RocksDB:
# one more descriptor a flush, for good (967 flushes of one table: out of
# descriptors, every write 503).
MAX_FILES = 32
# The data directory's format (Meta `data_format`): 1 (no record) a family a
# table, 2 this module's layout. A release refuses a format above its own.
DATA_FORMAT = 2
log = logging.getLogger("cairn.storage")


def prefix(uid: str) -> bytes:
    """The start of every key of table `uid`'s buffer."""
    return uid.encode() + SEP


def entries(catalog: Catalog, uid: str) -> Iterator[tuple[bytes, bytes]]:
    """Table `uid`'s buffer entries, (sequence key, value), oldest first."""
    start = prefix(uid)
    cut = len(start)
    for key, value in catalog.scan_raw(FAMILY, start):
        yield key[cut:], value


def drop(catalog: Catalog, uids: list[str]) -> None:
    """Remove the buffers of tables `uids`: a range tombstone each, in one
    batch, then one compaction of the span they cover, so that the dropped
    rows leave the disk now (as a family's drop did) and no later scan steps
    over them (a compaction a table: 7 ms each, 3 s for 400)."""
    if not uids:
        return
    batch = catalog.batch()
    spans = [(prefix(uid), _end(prefix(uid))) for uid in uids]
    for start, end in spans:
        batch.delete_range_raw(FAMILY, start, end)
    batch.commit()
    catalog.compact_deleted(FAMILY, 0, min(s for s, _ in spans), max(e for _, e in spans))


def uids(catalog: Catalog) -> Iterator[str]:
    """The uids with entries in the family: one seek each, not a scan of
    their entries."""
    start = b""
    while True:
        first = next(iter(catalog.scan_raw(FAMILY, b"", start)), None)
        if first is None:
            return
        uid, sep, _ = first[0].partition(SEP)
        if not sep:  # not a buffer key: step over it
            start = first[0] + SEP
            continue
        yield uid.decode(errors="replace")
        start = _end(uid + SEP)


def files(catalog: Catalog) -> int:
    """The family's SST files, on every level."""
    fam = catalog.family(FAMILY)
    return sum(int(fam.property_int_value(f"rocksdb.num-files-at-level{n}") or 0)
               for n in range(7))


def tidy(catalog: Catalog, at_least: int) -> bool:
    """Compact the family if `at_least` bytes of its files are deleted rows
    (Catalog.compact_deleted), or if it has more than MAX_FILES files. True
    if it ran."""
    if catalog.compact_deleted(FAMILY, at_least):
        return True
    return files(catalog) > MAX_FILES and catalog.compact_deleted(FAMILY, 0)


def sweep(catalog: Catalog, live: set[str]) -> int:
    """Start-up: drop the buffers of tables that no longer exist (a crash
    between a DROP's catalog batch and its `drop`), and compact the family if
    RECLAIM_BYTES or more of its files are rows deleted (a crash between a
    DROP's tombstones and its compaction left them on disk, until a flush
    compacted: never, with STREAM tables only). How many tables' buffers went."""
    gone = [uid for uid in uids(catalog) if uid not in live]
    drop(catalog, gone)
    try:
        catalog.flush_family(FAMILY)  # tombstones the log replayed count once on disk
        tidy(catalog, RECLAIM_BYTES)
    except Exception as exc:  # noqa: BLE001 - a full disk: the server still starts
        log.warning("the write buffers were not compacted at start (a later flush "
                    "compacts them): %s", exc)
    return len(gone)


def migrate(catalog: Catalog) -> int:
    """Move every old-layout family (`buf_<uid>`) into this one: each live
    table's (read from the catalog only when there is one to move) entries are copied (keys and values as they are, in batches of at
    most MOVE_BYTES), the write-ahead log is synced (the copies were ordinary
    writes, and a family's drop is synced at once: a power loss right after
    the drops lost rows that were on disk before the upgrade), then every old
    family is dropped. A crash midway leaves old families in place and the
    copy runs again, writing the same keys with the same values. Then the
    data directory is marked as of DATA_FORMAT. How many families went.

    Each drop rewrites RocksDB's OPTIONS file for the families left (no call
    drops several at once): 400 tables take ~30-40 s once, before the server
    listens (progress in the log)."""
    marked = catalog.get(Meta, "data_format")
    if marked is not None and not (isinstance(marked.value, int) and marked.value <= DATA_FORMAT):
        raise CannotStart(
            f"the data directory was written by a newer release of Cairn (data format "
            f"{marked.value!r}; this release reads up to {DATA_FORMAT}): start that release, "
            f"or restore its namespaces from their backups into a new data directory")
    old = [name for name in catalog.families() if name.startswith(LEGACY)]
    if old:
        log.info("moving the write buffers of %d tables into one column family "
                 "(once, for this data directory)", len(old))
        live = {t.uid for t in catalog.scan(Table)}
        for name in old:
            if name[len(LEGACY):] in live:
                _copy(catalog, name, prefix(name[len(LEGACY):]))
        catalog.flush_wal()
    for done, name in enumerate(old, 1):
        catalog.drop_family(name)
        if done % 100 == 0:
            log.info("moved %d of %d tables' write buffers", done, len(old))
    if marked is None or marked.value != DATA_FORMAT:
        catalog.put(Meta("data_format", DATA_FORMAT))
    return len(old)


def _copy(catalog: Catalog, name: str, start: bytes) -> None:
    batch, size = catalog.batch(), 0
    for key, value in catalog.scan_raw(name):
        batch.put_raw(FAMILY, start + key, value)
        size += len(key) + len(value)
        if size >= MOVE_BYTES:
            batch.commit()
            batch, size = catalog.batch(), 0
    batch.commit()


def _end(start: bytes) -> bytes:
    end = prefix_upper_bound(start)
    assert end is not None  # a prefix ending in SEP is never all 0xff
    return end
