"""`cairn serve` as a user runs it: a real process on a real port."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ServerProcess


@pytest.fixture(autouse=True)
def fresh_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """These servers start as `python -m server.cli`, not forked from the
    worker's fork server (tests/forkserver.py): the command itself is tested here."""
    monkeypatch.setenv("CAIRN_TEST_FORK", "0")


def test_serve_prints_its_address_and_answers(server_process: Any) -> None:
    srv = server_process()
    assert srv.first_line == f"cairn listening on http://127.0.0.1:{srv.port}"
    status, body = srv.post("CREATE NAMESPACE app; SHOW NAMESPACES")
    assert status == 200, body
    assert body["results"][1]["rows"][0]["namespace"] == "app"


def test_sigterm_stops_cleanly_and_releases_the_lock(server_process: Any, tmp_path: Path) -> None:
    srv = server_process()
    srv.post("CREATE NAMESPACE kept")
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0
    again = server_process(tmp_path / "data")  # same data dir: the lock was released
    status, body = again.post("SHOW NAMESPACES")
    assert [r["namespace"] for r in body["results"][0]["rows"]] == ["kept"]


def test_sigint_stops_cleanly(server_process: Any) -> None:
    srv = server_process()
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(30) == 0


def test_second_server_on_same_data_dir_refuses_in_one_line(
    server_process: Any, tmp_path: Path
) -> None:
    server_process()
    second = ServerProcess(tmp_path / "data")
    proc = subprocess.run(second.args, capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "in use by another Cairn server" in lines[0]
    assert "Traceback" not in proc.stderr


def test_namespace_survives_sigkill(server_process: Any, tmp_path: Path) -> None:
    srv = server_process()
    status, _ = srv.post("CREATE NAMESPACE durable")
    assert status == 200
    srv.kill()
    again = server_process(tmp_path / "data")
    _, body = again.post("SELECT namespace FROM system.namespaces")
    assert body["results"][0]["rows"] == [{"namespace": "durable"}]


def test_flags_override_config_file(tmp_path: Path, server_process: Any) -> None:
    cfg = tmp_path / "cairn.toml"
    cfg.write_text('[server]\nport = 1\n[storage]\ndata_dir = "/nonexistent/should/not/be/used"\n')
    srv = server_process(tmp_path / "flagdata", config=cfg)
    assert srv.first_line.endswith(f":{srv.port}")
    assert (tmp_path / "flagdata" / "catalog").is_dir()


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nprot = 8080\n")
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "cairn: unknown config key [server] prot"
