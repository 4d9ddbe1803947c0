"""A restore to a time holds its archive's segments (storage/archive/holds.py)
while a DROP BACKUP of its base goes on beside it; it prunes them as it ends.
When the server dies (kill -9) in the middle, the start-up clean-up removes
its lock and now prunes them too.

Before, they stayed until another drop into the target (never, for a stopped
archive nobody drops into again), and VERIFY ARCHIVE said INVALID and SHOW
RESTORE POINTS showed an error row, "no base backup of its changes … they
cannot be restored", for changes the user had dropped."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from tests.helpers import ServerProcess


def _rows(srv: ServerProcess, sql: str) -> list[dict[str, Any]]:
    status, body = srv.post(sql)
    assert status == 200, body
    return list(body["results"][-1]["rows"])


def _wait(what: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout  # generous: a loaded machine
    while not (found := what()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return found


def test_a_crashed_restore_to_a_time_leaves_no_held_run(
        server_process: Any, tmp_path: Path) -> None:
    data, target = tmp_path / "data", tmp_path / "backups" / "arch"
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n')
    srv = server_process(data, config=config,
                         env={"CAIRN_FAULTS": "restore.before_install:sleep=120"})
    _rows(srv, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
               "INSERT INTO app.t VALUES (1, 'a')")
    (start,) = _rows(srv, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    (base,) = _rows(srv, f"SELECT backup_id FROM system.jobs WHERE job_id = '{start['job_id']}'")
    for n in range(3):
        _rows(srv, f"INSERT INTO app.t VALUES ({10 + n}, 'archived')")
        time.sleep(0.3)
    _wait(lambda: [r for r in _rows(srv, "SELECT * FROM system.archives")
                   if r["lag_ms"] == 0 and r["segments"] > 1])
    _rows(srv, "STOP ARCHIVING DATABASE app")
    end = [p for p in _rows(srv, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
           if not p["error"]][-1]["end_time"]
    _rows(srv, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}', detached = true)")
    _wait(lambda: list((target / "locks").glob("rs-*.json")))
    _rows(srv, f"DROP BACKUP '{base['backup_id']}' IN 'arch'")
    assert list((target / "archives").rglob("*.seg"))  # held for the restore
    srv.kill()  # the restore dies holding them

    srv = server_process(data, config=config)
    _wait(lambda: not list((target / "locks").glob("*.json")))  # start-up's clean-up
    _wait(lambda: not list((target / "archives").rglob("*.seg")))
    (report,) = _rows(srv, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'")
    assert not any("no base backup" in e for e in report["errors"]), report
    assert _rows(srv, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'") == []
    srv.stop()


def test_a_drop_killed_before_its_archive_prune_leaves_no_baseless_run(
        server_process: Any, tmp_path: Path) -> None:
    """kill -9 of the server after a DROP BACKUP removed an archive's base (its
    manifest and objects), before it pruned the archived changes that base
    was for: start-up's sweep of the drop prunes them. They stayed until
    another drop into the target: VERIFY ARCHIVE INVALID ("gap" or "no base
    backup"), an error row in SHOW RESTORE POINTS, for changes the user dropped."""
    data, target = tmp_path / "data", tmp_path / "backups" / "arch"
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n')
    srv = server_process(data, config=config,
                         env={"CAIRN_FAULTS": "drop.before_archive_prune:kill"})
    _rows(srv, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
               "INSERT INTO app.t VALUES (1, 'a')")
    (start,) = _rows(srv, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    (base,) = _rows(srv, f"SELECT backup_id FROM system.jobs WHERE job_id = '{start['job_id']}'")
    for n in range(2):
        _rows(srv, f"INSERT INTO app.t VALUES ({10 + n}, 'archived')")
        time.sleep(0.3)
    _wait(lambda: [r for r in _rows(srv, "SELECT * FROM system.archives")
                   if r["lag_ms"] == 0 and r["segments"] > 1])
    _rows(srv, "STOP ARCHIVING DATABASE app")
    assert list((target / "archives").rglob("*.seg"))
    with contextlib.suppress(OSError):  # the server dies at the fault point
        srv.post(f"DROP BACKUP '{base['backup_id']}' IN 'arch'")
    assert srv.proc is not None
    srv.proc.wait(60)
    assert not (target / "manifests" / f"{base['backup_id']}.json").exists()

    srv = server_process(data, config=config)
    _wait(lambda: not list((target / "archives").rglob("*.seg")))  # start-up's sweep
    (report,) = _rows(srv, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'")
    assert not any("no base backup" in e or "gap" in e for e in report["errors"]), report
    assert _rows(srv, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'") == []
    srv.stop()
