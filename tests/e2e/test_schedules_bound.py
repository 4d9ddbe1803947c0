"""`[backup] max_schedules` bounds the schedules a server keeps. Nothing did:
each schedule is read by the schedule loop every second, so an admin script
(or a typo in a loop) could create them by the hundred thousand. Past the
bound CREATE SCHEDULE is 400 INVALID_ARGUMENT naming the key; IF NOT EXISTS
of a schedule that exists is still "skipped", and DROP SCHEDULE frees a place."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from catalog import Schedule
from server import schedules
from server.config import Config
from tests.helpers import ServerProcess, err, idle_schedule_loop, ok, rows, state

CREATE = "CREATE SCHEDULE {} FOR BACKUP DATABASE app TO 'n' EVERY '1d'"


def test_a_schedule_past_max_schedules_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "cairn.toml"
    cfg.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\nmax_schedules = 3\n')
    proc = ServerProcess(tmp_path / "data", config=cfg).start()
    try:
        def post(text: str) -> tuple[int, dict[str, Any]]:
            return proc.post(text)

        assert post("CREATE NAMESPACE app")[0] == 200
        for name in ("a", "b", "c"):
            status, body = post(CREATE.format(name))
            assert status == 200, body
        status, body = post(CREATE.format("d"))
        assert status == 400, body
        assert body["error"]["code"] == "INVALID_ARGUMENT", body
        message = body["error"]["message"]
        assert "3 schedules" in message and "[backup] max_schedules (3)" in message, message
        assert "raise max_schedules" in message and "DROP SCHEDULE" in message, message
        # IF NOT EXISTS of one that exists: skipped, not refused.
        status, body = post("CREATE SCHEDULE IF NOT EXISTS a FOR BACKUP DATABASE app TO 'n' "
                            "EVERY '1d'")
        assert status == 200 and "already exists, skipped" in body["results"][0]["message"]
        status, body = post("SELECT name FROM system.schedules ORDER BY name")
        assert [r["name"] for r in body["results"][0]["rows"]] == ["a", "b", "c"]
        # A dropped one frees its place.
        assert post("DROP SCHEDULE b")[0] == 200
        assert post(CREATE.format("d"))[0] == 200
        assert post(CREATE.format("e"))[0] == 400
    finally:
        proc.kill()


@pytest.fixture
def cairn_config(cairn_config: Config, monkeypatch: pytest.MonkeyPatch) -> Config:
    cairn_config.backup.max_schedules = 3
    monkeypatch.setattr(schedules, "schedule_loop", idle_schedule_loop)
    return cairn_config


async def test_two_creates_at_the_bound_less_one_never_both_pass(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each CREATE counts and stores its schedule under the schedules' lock: the
    first one's record is held back until the second has passed its checks
    (its target is resolved), so a count outside the lock would let both in."""
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, CREATE.format("a") + "; " + CREATE.format("b"))
    cairn = state(client)
    checked = threading.Semaphore(0)
    real_repository, real_put = schedules.repository, cairn.catalog.put

    def repository(*args: Any, **kwargs: Any) -> Any:
        checked.release()
        return real_repository(*args, **kwargs)

    def put(record: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(record, Schedule):  # both CREATEs are past their checks
            for _ in range(2):
                assert checked.acquire(timeout=60)
        return real_put(record, *args, **kwargs)

    monkeypatch.setattr(schedules, "repository", repository)
    monkeypatch.setattr(cairn.catalog, "put", put)
    answers = await asyncio.gather(*(client.post("/api/sql", json={"sql": CREATE.format(n)})
                                     for n in ("c", "d")))
    bodies = [await a.json() for a in answers]
    assert sorted(a.status for a in answers) == [200, 400], bodies
    (refused,) = [b for b in bodies if b["status"] == "error"]
    assert refused["error"]["code"] == "INVALID_ARGUMENT"
    assert "max_schedules (3)" in refused["error"]["message"]
    monkeypatch.setattr(cairn.catalog, "put", real_put)
    assert len(await rows(client, "SHOW SCHEDULES")) == 3
    await err(client, CREATE.format("e"), "INVALID_ARGUMENT")
