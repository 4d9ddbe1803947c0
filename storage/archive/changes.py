"""The change log: every committed change of an archived namespace, in commit order.

While a namespace is archived, each commit that changes it (a write statement's
rows, CREATE TABLE, ALTER TABLE, DROP TABLE, CREATE NAMESPACE) also puts one entry into the
`changes` family, in the SAME RocksDB WriteBatch as the change itself: the entry
exists exactly when the change does. The entry's key is the namespace and a log
sequence number (lsn) taken from the catalog's sequence under the namespace's
commit lock, together with its commit time, so within a namespace lsn order,
time order and commit order are one order. A flush moves rows from the buffer to
Parquet but changes nothing logical, so it logs nothing, and the log keeps the
rows until the archiver has shipped them, whatever flush does meanwhile.

The log's unshipped end is also kept in memory (`_Ns.tail`, up to TAIL_BYTES),
appended under the commit lock once written, dropped once shipped: the
archiver reads it there, not by iterating RocksDB (~3 ms of GIL a cycle at
~1,000 writes/s). Entries from before the tail began (START ARCHIVING, a
restart, a tail dropped: too big, or a commit failed after its write) are read
from RocksDB, the record.

The same lock gives BACKUP its cut (`cut`): taken while the snapshot holds the
tables' locks, it says which lsn and which instant the snapshot is exact to, so
archived changes continue a base backup with no gap and no overlap.

Commit times never go back, whatever the wall clock does: each commit's is at
least the previous one plus 1 µs, and every change of one commit (the drops of
DROP NAMESPACE CASCADE) has that one time (and, after a restart, after everything shipped). While
the clock is behind (set back by hand, a bad NTP step), changes are stamped
1 µs apart from the last time handed out until the clock catches up, and a
warning is logged once per jump of more than a second."""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import msgspec

from catalog import Catalog
from catalog.records import SEP
from catalog.store import CHANGES
from storage import timing

from .rawlog import RawChanges, upto
from .steps import PACE_EVERY, pace

log = logging.getLogger("cairn.archive")

FAMILY = CHANGES  # opened with the catalog: made by no statement
CLOCK_WARN_US = 1_000_000

ROWS = "rows"
CREATE = "create_table"
ALTER = "alter_table"
DROP = "drop_table"
NAMESPACE = "create_namespace"  # the name archived again after a DROP NAMESPACE (its created_at)
NAMESPACE_TABLE = "_namespace"  # a namespace change's `table` (it has none)
KINDS = (ROWS, CREATE, ALTER, DROP, NAMESPACE)
DDL_KINDS = (CREATE, ALTER, DROP, NAMESPACE)
MAX_LSN = (1 << 63) - 1
READ_RUN = 4 * PACE_EVERY  # entries the log read takes from RocksDB between two pace()s
TAIL_BYTES = 32 << 20  # the most of a namespace's unshipped entries kept in memory


class Change(msgspec.Struct, array_like=True, frozen=True):
    """One committed change. `data`: for rows, the statement's Arrow IPC stream
    exactly as the write buffer stores it (schema version, time and user in its
    metadata); for DDL, the canonical JSON of the records it wrote."""

    lsn: int
    at_us: int  # commit time, microseconds since the Unix epoch (UTC)
    kind: str
    table: str
    data: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Change)


def ddl(**parts: Any) -> bytes:
    """The data of a DDL change: its catalog records (or values) as canonical JSON."""
    doc = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type)
           else v for k, v in parts.items()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()


def now_us() -> int:
    return time.time_ns() // 1000


def wait_for(at: int) -> None:
    """Until the wall clock reaches `at` (µs): at most ~1 ms, for a cut. A
    clock further behind (set back) is not waited for: times go on from the
    newest handed out, as ns.now warns."""
    end = time.monotonic() + 0.003
    while (left := at - now_us()) > 0 and left <= 2000 and time.monotonic() < end:
        time.sleep(left / 1e6)


_lsn_bytes = struct.Struct(">Q").pack


def key_of(namespace: str, lsn: int) -> bytes:
    return namespace.encode() + SEP.encode() + _lsn_bytes(lsn)


def _lsn_of(key: bytes) -> int:
    return int(struct.unpack(">Q", key[-8:])[0])


@dataclass
class _Ns:
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: bool = False
    last_lsn: int = 0  # newest lsn committed for this namespace (0: none since start)
    last_us: int = 0  # newest commit time or cut handed out: the next is later
    snap_us: int = 0  # newest snapshot's time: the next is later (storage/clock_floor.py)
    pending_us: int | None = None  # commit time of the oldest change not yet shipped
    clock_behind: bool = False  # warned that the wall clock is behind last_us
    prefix: bytes = b""  # the namespace's keys' prefix (key_of without the lsn)
    # The unshipped end of the log in memory: every entry committed with
    # lsn > tail_from, oldest first (None: read RocksDB). Under `lock`.
    tail: list[bytes] | None = None
    tail_lsns: list[int] = field(default_factory=list)
    tail_from: int = MAX_LSN
    tail_bytes: int = 0

    def start_tail(self, from_lsn: int | None) -> None:
        """Keep the entries committed from now on (each has lsn > from_lsn);
        None: drop the tail, read RocksDB (too big, or it may miss an entry)."""
        self.tail, self.tail_lsns, self.tail_bytes = None if from_lsn is None else [], [], 0
        self.tail_from = MAX_LSN if from_lsn is None else from_lsn

    def keep(self, lsn: int, entry: bytes) -> None:
        """An entry whose batch is written (under `lock`)."""
        tail = self.tail
        if tail is None:
            return
        self.tail_bytes += len(entry)
        if self.tail_bytes > TAIL_BYTES:
            self.start_tail(None)
            return
        tail.append(entry)
        self.tail_lsns.append(lsn)

    def now(self, namespace: str) -> int:
        """The wall clock, noticing (and logging once) when it is behind the
        times already handed out; callers keep times monotonic with max()."""
        now = now_us()
        behind = now < self.last_us - CLOCK_WARN_US
        if behind and not self.clock_behind:
            log.warning("the wall clock is %.3f s behind the newest commit time of "
                        "namespace '%s'; archived times go on from that time until the "
                        "clock catches up", (self.last_us - now) / 1e6, namespace)
        self.clock_behind = behind
        return now


class Recorder:
    """Adds change entries to one commit's batch (held under the namespace lock)."""

    def __init__(self, log: ChangeLog, namespace: str, ns: _Ns) -> None:
        self._log, self._namespace, self._ns = log, namespace, ns
        self.changes: list[Change] = []
        self.entries: list[bytes] = []
        self.at_us: int | None = None  # the commit's time (its first change's)

    def add(self, batch: Any, kind: str, table: str, data: bytes) -> Change:
        """Log a change of the commit, stamped with the commit's one time: a
        restore holds all of a DROP NAMESPACE CASCADE's drops or none."""
        ns = self._ns
        lsn = self._log.catalog.next_seq(1)
        if self.at_us is None:
            self.at_us = ns.last_us = max(ns.now(self._namespace), ns.last_us + 1)
        at = self.at_us
        change = Change(lsn, at, kind, table, data)
        entry = _encoder.encode(change)
        batch.put_raw(FAMILY, ns.prefix + _lsn_bytes(lsn), entry)
        self.changes.append(change)
        self.entries.append(entry)
        return change

    def committed(self) -> None:
        """The batch is written: the namespace's clock and lsn move on."""
        ns = self._ns
        for c, entry in zip(self.changes, self.entries, strict=True):
            ns.last_lsn = max(ns.last_lsn, c.lsn)
            if ns.pending_us is None:
                ns.pending_us = c.at_us
            ns.keep(c.lsn, entry)


class _Committing:
    """`ChangeLog.committing` for a namespace: its commit lock around the
    `with` body; the Recorder's changes count as committed only if the body
    ends without an exception (the batch was written)."""

    __slots__ = ("_log", "_namespace", "_ns", "_rec")

    def __init__(self, log: ChangeLog, namespace: str, ns: _Ns) -> None:
        self._log, self._namespace, self._ns = log, namespace, ns
        self._rec: Recorder | None = None

    def __enter__(self) -> Recorder | None:
        ns = self._ns
        if timing.waiting_allowed():
            ns.lock.acquire()
        elif not ns.lock.acquire(False):
            raise timing.WouldWait("the archive commit lock is held")
        self._rec = Recorder(self._log, self._namespace, ns) if ns.active else None
        return self._rec

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self._rec is not None:
                if exc_type is None:
                    self._rec.committed()
                elif self._rec.changes:  # written or not: RocksDB knows
                    self._ns.start_tail(None)
        finally:
            self._ns.lock.release()


class ChangeLog:
    """Per namespace: is it archived, its commit lock, lsn and clock."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog  # its family is opened with the catalog
        self._lock = threading.Lock()
        self._ns: dict[str, _Ns] = {}

    def _state(self, namespace: str) -> _Ns:
        with self._lock:
            ns = self._ns.get(namespace)
            if ns is None:
                ns = self._ns[namespace] = _Ns(prefix=namespace.encode() + SEP.encode())
            return ns

    def active(self, namespace: str) -> bool:
        ns = self._ns.get(namespace)
        return ns is not None and ns.active

    def activate(self, namespace: str, floor_us: int = 0, floor_lsn: int = 0) -> None:
        """From now on every change of `namespace` is logged. `floor_us` and
        `floor_lsn` (the end of what the target already holds) keep commit times
        after it and a cut taken before the next write at or past it."""
        ns = self._state(namespace)
        with ns.lock:
            if not ns.active:
                last = self._last_entry(namespace)
                if last is not None:
                    ns.last_lsn = max(ns.last_lsn, last.lsn)
                    ns.last_us = max(ns.last_us, last.at_us)
                # everything up to floor_lsn is shipped (trimmed, or trimmed next)
                first = self._first_entry(namespace, min(floor_lsn, MAX_LSN))
                ns.pending_us = first.at_us if first is not None else None
            ns.last_us = max(ns.last_us, floor_us)
            ns.last_lsn = max(ns.last_lsn, floor_lsn)
            if not ns.active:  # every stored entry has lsn <= last_lsn
                ns.start_tail(ns.last_lsn)
            ns.active = True

    def deactivate(self, namespace: str) -> tuple[int, int]:
        """Stop logging; returns the final mark (see `mark`), taken atomically
        with the stop so no change falls between the two."""
        ns = self._state(namespace)
        with ns.lock:
            cut = self.cut(ns, ns.now(namespace))  # before writers may pass unlogged
            ns.active = False
            ns.start_tail(None)
            return cut

    def lag_ms(self, namespace: str) -> int:
        """How long the oldest change not yet shipped has waited, rounded up
        (0 only when none waits: one committed this very millisecond is 1)."""
        pending = self.pending_since(namespace)
        return 0 if pending is None else max(1, -((pending - now_us()) // 1000))

    def committing(self, namespace: str) -> _Committing:
        """`with` it around a DDL batch commit: holds the namespace's commit
        lock (always, so a snapshot's cut sees a stable set of tables) and
        gives a Recorder when the namespace is archived, else None. Row writes
        take `commit_rows`. Inside `timing.no_waiting` a lock another thread
        holds raises WouldWait instead of blocking (as `timing.taking`)."""
        return _Committing(self, namespace, self._state(namespace))

    def commit_rows(self, namespace: str, batch: Any, table: str, data: bytes | None,
                    write: Callable[[Any], None]) -> None:
        """`write(batch)` for a row write of `namespace`'s `table`. While the
        namespace is archived: under its commit lock, with `data`'s change entry
        (None: not logged, a stream table's rows) put into the batch first,
        the same entry as `committing` and `Recorder.add` make. The one-row
        INSERT's path, so one call: no context manager, Recorder or list
        (bench/archive_write_path.py)."""
        ns = self._ns.get(namespace)  # no lock: a dict read (see activate)
        if ns is None or not ns.active:
            write(batch)
            return
        lock = ns.lock
        if timing.waiting_allowed():
            lock.acquire()
        elif not lock.acquire(False):
            raise timing.WouldWait("the archive commit lock is held")
        try:
            if data is None or not ns.active:
                write(batch)
                return
            lsn = self.catalog.next_seq(1)
            at = ns.now(namespace)
            if at <= ns.last_us:
                at = ns.last_us + 1
            ns.last_us = at
            entry = _encoder.encode(Change(lsn, at, ROWS, table, data))
            batch.put_raw(FAMILY, ns.prefix + _lsn_bytes(lsn), entry)
            try:
                write(batch)
            except BaseException:  # written or not: RocksDB knows
                ns.start_tail(None)
                raise
            if lsn > ns.last_lsn:
                ns.last_lsn = lsn
            if ns.pending_us is None:
                ns.pending_us = at
            ns.keep(lsn, entry)
        finally:
            lock.release()

    @contextmanager
    def holding(self, namespace: str) -> Iterator[_Ns]:
        ns = self._state(namespace)
        with ns.lock:
            yield ns

    @staticmethod
    def cut(ns: _Ns, now: int | None = None, wait: bool = True) -> tuple[int, int]:
        """(lsn, time) a snapshot taken under `holding` is exact to: it holds every
        change with lsn <= the first and time <= the second, and no other. The
        time is a whole millisecond (backups show snapshot_at in ms); changes
        committed after it are stamped later. `now`: the clock, if read already.

        The millisecond is the one begun, when nothing committed in it yet;
        else the next, and the cut waits (holding the commit lock) until the
        clock reaches it. Rounding up without waiting stamped the next commits
        up to 1 ms past the clock, so a write answered before T was missing
        from a restore as of T, and a STOP's window end held writes it had not
        archived. `wait=False`: the caller calls `wait_for(at)` before it lets
        go of the commit lock (one wait for several namespaces' cuts)."""
        now = now_us() if now is None else now
        at = now - now % 1000
        if at < ns.last_us:
            at = -(-ns.last_us // 1000) * 1000
            if wait:
                wait_for(at)
        ns.last_us = max(ns.last_us, at)
        return ns.last_lsn, at

    def mark(self, namespace: str) -> tuple[int, int]:
        """(lsn, time): every change of `namespace` up to that time is committed and
        has lsn <= that lsn; later changes get later times. A whole ms, as shown."""
        ns = self._state(namespace)
        with ns.lock:
            return self.cut(ns, ns.now(namespace))  # ns.now: warns of a clock gone back

    def pending_since(self, namespace: str) -> int | None:
        ns = self._ns.get(namespace)
        return None if ns is None else ns.pending_us

    # --- reading and trimming -------------------------------------------------

    def _entries(self, namespace: str, after_lsn: int, upto_lsn: int,
                 max_bytes: int | None = None) -> list[bytes]:
        """The committed entries with after_lsn < lsn <= upto_lsn, oldest
        first, stopping once about `max_bytes` are collected (the entry that
        crosses it is the last; at least one): those in the tail from memory,
        the older ones from RocksDB (`_stored`)."""
        ns = self._ns.get(namespace)
        tail_from, kept = MAX_LSN, []
        if ns is not None and ns.tail is not None:
            with ns.lock:
                if ns.tail is not None:
                    lsns, tail_from = ns.tail_lsns, ns.tail_from
                    kept = ns.tail[bisect.bisect_right(lsns, max(after_lsn, tail_from)):
                                   bisect.bisect_right(lsns, upto_lsn)]
        if after_lsn >= tail_from:
            return upto(kept, 0, max_bytes)[0]
        out = self._stored(namespace, after_lsn, min(upto_lsn, tail_from), max_bytes)
        size = sum(map(len, out))
        if not kept or (out and max_bytes is not None and size >= max_bytes):
            return out
        return out + upto(kept, size, max_bytes)[0]

    def _stored(self, namespace: str, after_lsn: int, upto_lsn: int,
                max_bytes: int | None = None) -> list[bytes]:
        """`_entries` as RocksDB holds them.
        Taken from RocksDB READ_RUN at a time with no Python per entry
        (the read's upper bound stops the scan; `islice` pulls the values in
        C), pacing between the runs (steps.pace): ~0.3 us per entry against
        ~1.1 us when each went through two generators and a key compare."""
        begin = key_of(namespace, after_lsn + 1)
        end = key_of(namespace, min(upto_lsn, MAX_LSN)) + b"\x00"  # keys are fixed-size
        values = self.catalog.values_raw(FAMILY, begin, end)
        out: list[bytes] = []
        size = 0
        try:
            while True:
                run = list(islice(values, READ_RUN))
                if not run:
                    return out
                taken, size = upto(run, size, max_bytes)
                out += taken
                if max_bytes is not None and size >= max_bytes:
                    return out
                pace()
        finally:
            values.close()

    def read(self, namespace: str, after_lsn: int, upto_lsn: int,
             max_bytes: int = 16 << 20) -> list[Change]:
        """Logged changes with after_lsn < lsn <= upto_lsn, oldest first, stopping
        once about `max_bytes` of entries are collected (at least one change).
        In the archiver's cycle it paces itself (steps.pace)."""
        decode = _decoder.decode
        return [decode(value) for value in
                self._entries(namespace, after_lsn, upto_lsn, max_bytes)]

    def read_raw(self, namespace: str, after_lsn: int, upto_lsn: int,
                 max_bytes: int = 16 << 20) -> RawChanges | None:
        """As `read`, but the entries as stored (msgpack), undecoded but for the
        last: what the archiver hands to its helper process (helper.py), which
        decodes them. None when there are none."""
        out = self._entries(namespace, after_lsn, upto_lsn, max_bytes)
        if not out:
            return None
        newest = _decoder.decode(out[-1])
        while newest.lsn < upto_lsn:  # cut by size: never inside a commit
            more = self._entries(namespace, newest.lsn, upto_lsn, 1)
            if not more or (nxt := _decoder.decode(more[0])).at_us != newest.at_us:
                break
            out.append(more[0])
            newest = nxt
        return RawChanges(out, newest.lsn, newest.at_us)

    def trim(self, namespace: str, upto_lsn: int, batch: Any) -> None:
        """Delete logged changes with lsn <= upto_lsn (shipped) in `batch`: one
        range tombstone, so the log's head never fills with point tombstones."""
        batch.delete_range_raw(FAMILY, key_of(namespace, 0),
                               key_of(namespace, min(upto_lsn, MAX_LSN) + 1))

    def shipped(self, namespace: str, upto_lsn: int) -> None:
        """After a trim of the changes up to `upto_lsn`: drop them from the
        tail, and note the oldest change still waiting, for lag: the tail's
        first, or a seek that starts after the trimmed range (from the log's
        head it would step over every trimmed change RocksDB still keeps, up
        to ~100,000, holding the GIL 25-45 ms; docs/performance.md)."""
        ns = self._state(namespace)
        with ns.lock:
            tail = ns.tail
            if tail is None and ns.active:  # dropped: start again from here
                ns.start_tail(self.catalog.next_seq(1))
            elif tail is not None:
                k = bisect.bisect_right(ns.tail_lsns, upto_lsn)
                if k:
                    ns.tail_bytes -= sum(map(len, tail[:k]))
                    del tail[:k], ns.tail_lsns[:k]
                if upto_lsn >= ns.tail_from:  # every later entry is in the tail
                    ns.pending_us = _decoder.decode(tail[0]).at_us if tail else None
                    return
        first = self._first_entry(namespace, min(upto_lsn, MAX_LSN))
        with ns.lock:
            ns.pending_us = first.at_us if first is not None else None

    def _first_entry(self, namespace: str, after_lsn: int = 0) -> Change | None:
        """The oldest logged change with lsn > after_lsn."""
        prefix = namespace.encode() + SEP.encode()
        start = key_of(namespace, after_lsn + 1) if after_lsn else None
        for _, value in self.catalog.scan_raw(FAMILY, prefix, start):
            return _decoder.decode(value)
        return None

    def _last_entry(self, namespace: str) -> Change | None:
        """The newest logged change: one seek from the log's end (a scan from
        its head stepped over every change of the namespace, and, once
        trimmed, every change RocksDB still keeps under the range tombstone,
        holding the commit lock at START ARCHIVING and at start-up)."""
        prefix = namespace.encode() + SEP.encode()
        found = self.catalog.last_raw(FAMILY, prefix, key_of(namespace, MAX_LSN))
        return None if found is None else _decoder.decode(found[1])
