"""A RESTORE's check of the files it fetched (storage/backup/fetched_checks.py,
in a job process) moves the job's fraction as the transfer does: it stood at
the transfer's end (0.99) for as long as the check of every file took."""

from __future__ import annotations

from typing import Any

import pytest

from server import faults
from server.config import Config
from tests.helpers import fill, ok, rows, state


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "nice"  # not starved by the suite's other worker
    return cairn_config


async def test_the_check_of_the_fetched_files_moves_the_restores_fraction(
        client: Any) -> None:
    await fill(client, files=4, rows=50)
    backup_id = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
    cairn = state(client)
    seen: list[tuple[int, float, int]] = []  # (file index, fraction, bytes_done)

    def at_check(info: dict[str, Any]) -> None:
        (job,) = [j for j in cairn.jobs.live() if j.job_type == "restore"]
        seen.append((info["index"], job.fraction_completed, job.bytes_done))

    faults.register("restore.check_file", at_check)
    try:
        await ok(client, f"RESTORE DATABASE app FROM 'nightly' AS copy WITH "
                         f"(backup_id = '{backup_id}')")
    finally:
        faults.clear()
    assert [i for i, _, _ in seen] == [0, 1, 2, 3], seen
    fractions = [f for _, f, _ in seen]
    # The transfer is half the job, the check the other half, each by bytes.
    assert fractions[0] == pytest.approx(0.5), seen
    assert fractions == sorted(set(fractions)) and fractions[-1] < 0.99, seen
    done = {b for _, _, b in seen}
    assert len(done) == 1 and done.pop() > 0, seen  # the bytes moved stay the transfer's
    (job,) = await rows(client, "SELECT status, fraction_completed FROM system.jobs "
                                "WHERE job_type = 'restore'")
    assert job == {"status": "completed", "fraction_completed": 1.0}, job
    assert (await rows(client, "SELECT count(*) AS n FROM copy.blobs"))[0]["n"] == 200
