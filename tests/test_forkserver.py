"""The tests' fork server (tests/forkserver.py) starts a module as `python -m`
would: its environment, working directory, argv, sys.path[0], output, session,
exit code and death by a signal are those of a fresh interpreter's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import forkserver

PROBE = """
import json, os, sys, time
if sys.argv[1] == "sleep":
    print("up", flush=True)
    time.sleep(60)
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "path0": sys.path[0],
                  "fault": os.environ.get("CAIRN_FAULTS"), "sid": os.getsid(0),
                  "pid": os.getpid(), "name": __name__}))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[2]))
"""


def probe_args(*argv: str) -> list[str]:
    return [sys.executable, "-m", "forkprobe", *argv]


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    (tmp_path / "forkprobe.py").write_text(PROBE)
    return tmp_path


@pytest.mark.parametrize("session", [False, True])
def test_a_child_is_what_python_dash_m_would_be(probe_dir: Path, session: bool) -> None:
    env = {**os.environ, "CAIRN_FAULTS": "x.y:kill"}
    args = probe_args("show", "3")
    forked = forkserver.spawn(args, str(probe_dir), env, session)
    assert forked.wait(60) == 3
    got = json.loads(forked.stdout.readline())
    real = subprocess.run(args, cwd=probe_dir, env=env, capture_output=True, text=True,
                          start_new_session=session, timeout=60)
    want = json.loads(real.stdout)
    assert real.returncode == 3
    assert got["argv"] == want["argv"] == ["show", "3"]
    assert got["cwd"] == want["cwd"] == str(probe_dir)
    assert got["path0"] == want["path0"]
    assert got["fault"] == want["fault"] == "x.y:kill"
    assert got["name"] == want["name"] == "__main__"
    assert (got["sid"] == got["pid"]) is session
    assert forked.stderr.read() == real.stderr == "to stderr\n"


def test_a_killed_child_says_so_and_wait_times_out_before(probe_dir: Path) -> None:
    forked = forkserver.spawn(probe_args("sleep", "0"), str(probe_dir), dict(os.environ))
    assert forked.stdout.readline() == "up\n"
    with pytest.raises(subprocess.TimeoutExpired):
        forked.wait(0.2)
    assert forked.poll() is None
    forked.send_signal(signal.SIGTERM)
    assert forked.wait(30) == -signal.SIGTERM
    forked.kill()  # ended: nothing is signalled
    assert forked.poll() == -signal.SIGTERM


def test_only_python_dash_m_is_forked() -> None:
    assert forkserver.usable([sys.executable, "-m", "server.cli", "serve"])
    assert not forkserver.usable([sys.executable, "server/cli.py", "serve"])
    assert not forkserver.usable(["/usr/bin/python3", "-m", "server.cli"])
