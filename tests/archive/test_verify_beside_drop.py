"""VERIFY ARCHIVE beside a DROP BACKUP (or a keep_last) of one of the bases it
reads: what the drop's prune removed under it (the base's objects, the
segments only that base needed) is no damage. The VERIFY answers for the
target as the drop left it, as one run after the drop does.

Before, it reported the archive INVALID ("archived segment … does not exist",
"base backup …: object … is missing") and recorded a finding, for an archive
whose every window still restored (2 of 12 natural races beside `BACKUP …
WITH (keep_last = 1)`). Here the VERIFY is parked exactly, at its first
segment read (a gate; the real read after it)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from storage.archive import store
from tests.helpers import fill, job_row, ok, rows, sql

from .test_archiving import FAST, wait_shipped


async def until(what: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout  # seconds under load
    while not what():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_a_base_dropped_beside_verify_archive_is_no_damage(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await fill(client, files=2)
    (start,) = await rows(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    first = (await job_row(client, start["job_id"]))["backup_id"]
    for n in range(3):
        await ok(client, f"INSERT INTO app.blobs VALUES ({100000 + n}, 'archived')")
        await wait_shipped(client)
    await ok(client, "BACKUP DATABASE app TO 'arch'")  # a second base of the running archive
    await ok(client, "INSERT INTO app.blobs VALUES (200000, 'after')")
    await wait_shipped(client)

    at, go = threading.Event(), threading.Event()
    read_segment = store.read_segment

    def gated(*a: Any, **k: Any) -> Any:  # the VERIFY's job thread, at its first read
        if not at.is_set():
            at.set()
            assert go.wait(120)
        return read_segment(*a, **k)

    monkeypatch.setattr(store, "read_segment", gated)
    verifying = asyncio.create_task(sql(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))
    try:
        await until(at.is_set)
        monkeypatch.setattr(store, "read_segment", read_segment)
        # The first base and the segments only it needed go under the VERIFY.
        await ok(client, f"DROP BACKUP '{first}' IN 'arch'")
    finally:
        go.set()
    status, body = await verifying
    assert status == 200, body
    (row,) = body["results"][0]["rows"]
    assert row["errors"] == [] and row["is_valid"] is True, row
    # The same answer as a VERIFY after the drop.
    (after,) = await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'")
    assert after["is_valid"] is True and after["windows"] == row["windows"], (after, row)
