"""The archiver's pacing (storage/archive/steps.py): inside `pacing()` the
cycle's loops nap between short pieces of work, outside it nothing changes,
and a paced cycle writes the same bytes as an unpaced one."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from storage.archive import segment, steps
from storage.archive.blocks import encode_body
from storage.archive.changes import READ_RUN, ChangeLog
from storage.archive.segment import SegmentName
from tests.archive.test_blocks import AID, NS, log, reference
from tests.archive.test_changes import _log


def test_pace_does_nothing_outside_pacing() -> None:
    for _ in range(100):
        steps.pace()
    assert steps.naps() == 0


def test_pacing_naps_after_each_slice_and_restores_the_outer_state() -> None:
    with steps.pacing(slice_s=1e-9, nap_s=0.0):
        for _ in range(5):
            steps.pace()
        assert steps.naps() == 5
        with steps.pacing(slice_s=0):  # never
            steps.pace()
            assert steps.naps() == 0
        steps.pace()
        assert steps.naps() == 6
    assert steps.naps() == 0


def test_pacing_is_per_thread() -> None:
    seen: list[int] = []

    def other() -> None:
        steps.pace()
        seen.append(steps.naps())

    with steps.pacing(slice_s=1e-9, nap_s=0.0):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        steps.pace()
        assert steps.naps() == 1
    assert seen == [0]


def test_a_paced_segment_is_the_unpaced_segment() -> None:
    """Byte for byte (blocks, DDL closing blocks, zstd, checksums), and the
    encoding naps at least once per PACE_EVERY changes when every slice is
    spent."""
    cs = log(random.Random(7), 200)
    name = SegmentName(cs[0].lsn - 1, cs[-1].lsn, cs[0].at_us - 1, cs[-1].at_us)
    plain = segment.encode(NS, AID, name, cs, True, None)
    with steps.pacing(slice_s=1e-9, nap_s=0.0):
        body = encode_body(cs)
        assert steps.naps() >= len(cs) // steps.PACE_EVERY
        paced = segment.encode(NS, AID, name, cs, True, None)
    assert body == reference(cs)
    assert paced == plain


def test_a_paced_read_returns_the_same_changes(tmp_path: Path) -> None:
    """A read from RocksDB (after a restart: the changes are not in the
    in-memory tail) naps once per run of READ_RUN entries."""
    catalog, changes_log, done = _log(tmp_path, 150)
    try:
        changes_log = ChangeLog(catalog)  # a restart
        changes_log.activate("app")
        hi = done[-1][0]
        plain = changes_log.read("app", done[4][0], hi)
        with steps.pacing(slice_s=1e-9, nap_s=0.0):
            paced = changes_log.read("app", done[4][0], hi)
            assert steps.naps() == -(-len(paced) // READ_RUN)  # once per run read
        assert paced == plain
        assert [(c.lsn, c.at_us) for c in paced] == done[5:]
    finally:
        catalog.close()
