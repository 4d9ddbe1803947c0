"""The budget of a target's manifests read at once (scan.Budget): a wait for it
ends when nothing of it is let go for `STALL_SECONDS`."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from catalog.errors import Unavailable
from storage.backup import scan


def test_a_wait_behind_a_read_that_never_ends_fails_unavailable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A store dripping a large manifest holds a target's whole budget: every
    other scan of that target waited for it for good (a job process until
    KILL JOB; a statement's abandoned call kept one of the target's call
    slots). Past STALL_SECONDS without any read let go, the wait fails."""
    monkeypatch.setattr(scan, "STALL_SECONDS", 0.3)
    uri = "s3://bucket/stalled-scan-test"
    budget = scan.budget_of(uri)
    ended: dict[str, Any] = {}

    def listing() -> None:
        try:
            ended["value"] = scan.scan_manifests(
                ["bk-1", "bk-2"], lambda backup_id, limit: b"{}", lambda data, backup_id: {},
                uri, parallel=True, sizes={"bk-1": scan.FREE + 1, "bk-2": scan.FREE + 1})
        except Unavailable as exc:
            ended["error"] = exc.message

    with budget.held(budget.total):  # the drip: held until this test lets go
        scanning = threading.Thread(target=listing, daemon=True)
        scanning.start()
        scanning.join(60)
        assert not scanning.is_alive(), "the scan still waits for the budget"
    assert "is busy" in ended.get("error", ""), ended
    assert "s3://bucket/stalled-scan-test" in ended["error"] and budget.used == 0
    assert budget.stalls <= 2
    # once let go, the same listing reads (each held and given back)
    listing()
    assert "value" in ended and budget.used == 0


def test_a_stalled_scan_ends_without_each_of_its_manifests_waiting_in_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """100 large manifests listed behind a drip: once one wait stalled, each
    of the others waited its own STALL_SECONDS as a scan thread came free
    (100 / 16 threads: ~7 x 300 s). Only the waits already under way stall."""
    monkeypatch.setattr(scan, "STALL_SECONDS", 0.3)
    uri = "s3://bucket/stalled-many-test"
    budget = scan.budget_of(uri)
    ids = [f"bk-{i:03d}" for i in range(100)]
    with budget.held(budget.total), pytest.raises(Unavailable, match="is busy"):
        scan.scan_manifests(ids, lambda backup_id, limit: b"{}", lambda data, backup_id: {},
                            uri, parallel=True, sizes=dict.fromkeys(ids, scan.FREE + 1))
    assert 1 <= budget.stalls <= scan.SCAN_THREADS, budget.stalls
