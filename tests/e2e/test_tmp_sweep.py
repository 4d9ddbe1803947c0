"""A target's `tmp/` after a process of this server died mid-write. A temp
file (`<writer>-<tag><random>.tmp`) went only with an interrupted BACKUP's
clean-up at start-up: one a kill -9 left in the middle of a DROP BACKUP (its
prune marker), a RESTORE (its hold lock) or archiving (a segment), or a job
process killed mid-BACKUP (a half-written object), stayed for good. Now each
goes: at start-up, for every interrupted job's target and every archive's, and
after a job that failed or was cancelled; a file of a process of this server
that still runs (its tag) stays, as do other servers' fresh ones."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.app import create_app
from server.config import Config
from server.repos import writer_of
from storage import jobproc
from storage.backup.layout import temp_path
from tests.e2e.test_backup_resume import config_of
from tests.helpers import ServerProcess, fill, ok, rows, sql, state


def post_ok(srv: ServerProcess, text: str) -> dict[str, Any]:
    status, body = srv.post(text)
    assert status == 200, body
    return body["results"][-1]


def plant(tmp: Path, data_dir: Path) -> dict[str, str]:
    """What a server killed mid-write leaves in `tmp`, beside another server's
    write in flight: {"dead": the killed process's file, "other": the other's}."""
    tmp.mkdir(parents=True, exist_ok=True)
    names = {"dead": f"{writer_of(str(data_dir))}-{'a' * 32}.tmp",
             "other": f"{writer_of(str(data_dir) + '-other')}-{'b' * 32}.tmp"}
    for name in names.values():
        (tmp / name).write_bytes(b"half-written")
    return names


def crashed(tmp_path: Path, server_process: Any, point: str, statement: str) -> str:
    """A real server with two backups of app in 'bk' dies (kill -9 at `point`)
    running `statement` (`{newest}` is the newer backup's id); its job id."""
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n')
    srv = server_process(config=config, env={"CAIRN_FAULTS": f"{point}:kill"})
    post_ok(srv, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT)")
    for i in range(2):
        post_ok(srv, f"INSERT INTO app.t VALUES ({i}); FLUSH TABLE app.t")
        newest = post_ok(srv, "BACKUP DATABASE app TO 'bk'")["rows"][0]["backup_id"]
    job = post_ok(srv, statement.format(newest=newest) + " WITH (detached = true)")
    assert srv.proc is not None
    srv.proc.wait(15)
    return str(job["rows"][0]["job_id"])


@pytest.mark.parametrize(("point", "statement"), [
    ("prune.before_delete", "DROP BACKUP '{newest}'"),
    ("restore.before_object", "RESTORE DATABASE app FROM 'bk' AS copy"),
])
async def test_a_drop_or_restore_killed_mid_write_leaves_no_temp_file(
        tmp_path: Path, server_process: Any, aiohttp_client: Any, point: str,
        statement: str) -> None:
    job_id = crashed(tmp_path, server_process, point, statement)
    tmp = tmp_path / "backups" / "bk" / "tmp"
    names = plant(tmp, tmp_path / "data")
    client = await aiohttp_client(create_app(config_of(tmp_path)))
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["status"] == "failed" and "interrupted by server restart" in job["error_message"]
    assert os.listdir(tmp) == [names["other"]]


async def test_a_segment_a_killed_server_was_writing_goes_when_archiving_resumes(
        tmp_path: Path, server_process: Any, aiohttp_client: Any) -> None:
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n')
    srv = server_process(config=config)
    post_ok(srv, "CREATE NAMESPACE arc; CREATE TABLE arc.a (id INT); INSERT INTO arc.a VALUES (1)")
    post_ok(srv, "START ARCHIVING DATABASE arc TO 'arct' WITH (interval = '200ms')")
    srv.kill()
    tmp = tmp_path / "backups" / "arct" / "tmp"
    names = plant(tmp, tmp_path / "data")
    client = await aiohttp_client(create_app(config_of(tmp_path)))
    deadline = time.monotonic() + 10
    while os.listdir(tmp) != [names["other"]]:
        assert time.monotonic() < deadline, os.listdir(tmp)
        await asyncio.sleep(0.05)
    (archive,) = await rows(client, "SHOW ARCHIVES")
    assert archive["status"] == "running", archive


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "idle"
    return cairn_config


async def test_a_job_process_killed_mid_object_leaves_no_temp_file(
        client: Any, tmp_path: Path) -> None:
    """The lost process's half-written object goes when its job fails; a temp
    file of a process of this server that runs (a job of its own writing into
    the same target now: here, this process's tag) stays."""
    assert jobproc.mode() == "idle"
    await fill(client, table="t", files=2)
    await ok(client, "BACKUP DATABASE app TO 'bk'")
    await fill(client, table="u", files=1)
    tmp = tmp_path / "backups" / "bk" / "tmp"
    running = Path(temp_path(str(tmp.parent), writer_of(str(state(client).config.data_dir))))
    running.write_bytes(b"in flight")
    lost: list[int] = []

    def lose(info: dict[str, Any]) -> None:
        if not lost and len(os.listdir(tmp)) > 1:  # its object is half-written there
            lost.extend(jobproc.busy())
            for pid in lost:
                os.kill(pid, signal.SIGKILL)

    faults.register("backup.mid_object", lose)
    status, body = await sql(client, "BACKUP DATABASE app TO 'bk'")
    assert lost, "the job process was never killed mid-object"
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert "the job process ended in the middle of its work" in body["error"]["message"]
    assert os.listdir(tmp) == [running.name]


async def test_a_first_backup_whose_job_process_is_lost_leaves_no_target(
        client: Any, tmp_path: Path) -> None:
    """The first backup into a target: with the lost process's temp file gone
    first, the target it made goes too (its config, key and empty folders),
    as after any failed first backup. The temp file kept the skeleton."""
    await fill(client, table="t", files=2)
    target = tmp_path / "backups" / "fresh"
    lost: list[int] = []

    def lose(info: dict[str, Any]) -> None:
        if not lost and (target / "tmp").exists() and os.listdir(target / "tmp"):
            lost.extend(jobproc.busy())
            for pid in lost:
                os.kill(pid, signal.SIGKILL)

    faults.register("backup.mid_object", lose)
    status, body = await sql(client, "BACKUP DATABASE app TO 'fresh'")
    assert lost and (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert not target.exists(), sorted(str(p) for p in target.rglob("*"))
