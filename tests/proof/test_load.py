"""Load (issue 8, part 5), the short version of `bench/load.py`: 8 clients doing
INSERT and SELECT for 10 s against a real `cairn serve` while BACKUP, VERIFY
BACKUP and RESTORE run back to back. Zero errors, and every acknowledged INSERT
is in the source and survives a final backup and restore. (Latency is reported
by the bench, not asserted here: it depends on the machine.)"""

from __future__ import annotations

from pathlib import Path

from bench.load import run_load


def test_no_errors_and_no_lost_insert_under_load(tmp_path: Path) -> None:
    report = run_load(tmp_path / "load", clients=8, seconds=10, preload=20_000, seed=8)
    summary = report.table()
    assert report.error_count == 0, summary
    assert report.acked > 100, summary
    assert any(s.op == "select" and s.ok for s in report.samples), summary
    assert min(report.jobs[j] for j in ("backup", "verify", "restore")) >= 1, summary
    assert report.missing_in_source == 0, summary
    assert report.missing_in_restore == 0, summary
    assert report.final_rows >= report.acked, summary
