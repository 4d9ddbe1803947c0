"""bench/load.py's figure of what a job cost the statements in all: the
requests its windows did not serve, against the quiet windows' rate."""

from __future__ import annotations

from bench.load import LoadReport, Sample


def _samples(start: float, end: float, n: int) -> list[Sample]:
    step = (end - start) / n
    return [Sample("select", start + i * step, start + i * step + step / 2, True)
            for i in range(n)]


def test_requests_lost_a_backup_is_the_rate_gap_times_its_window() -> None:
    r = LoadReport(clients=1, seconds=2.0, preload=0)
    r.windows = {"idle": [(0.0, 1.0)], "backup": [(1.0, 1.5), (1.5, 2.0)]}
    r.samples = _samples(0.0, 1.0, 100) + _samples(1.0, 2.0, 80)  # 100/s quiet, 80/s backing up
    (line,) = r.lost_lines()
    assert line.endswith(": 10.0, over 500 ms"), line  # (100 - 80) x 1 s / 2 BACKUPs
    r.alternate = False  # back to back: no quiet windows to compare with
    assert r.lost_lines() == []
