"""A job process whose server dies while the job process is still importing
ends then, not once its imports are done. The imports take ~1 s, and minutes
under SCHED_IDLE beside busy CPUs: with the death signal set after them, 31
job processes of servers already gone were importing at once in one run of
the suite (~250 MB each, and the idle CPU time the live ones wait for)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_job_process import _alive

ROOT = Path(__file__).resolve().parents[2]

# The job process, held as it is about to import the first of the project's
# modules that storage/jobchild.py imports, until the file `release` exists.
CHILD = r"""
import importlib.abc, os, runpy, sys, time
held, release = sys.argv[1], sys.argv[2]
class Hold(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "storage.priority":
            open(held, "w").close()
            while not os.path.exists(release):
                time.sleep(0.01)
        return None
sys.meta_path.insert(0, Hold())
sys.argv = ["jobchild", "0", "idle", str(os.getppid()), "30", "t"]
runpy.run_module("storage.jobchild", run_name="__main__", alter_sys=True)
"""

# The server: starts the job process as storage/jobproc.py does (-P -m), says its pid, waits.
SERVER = r"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-P", "-c", *sys.argv[1:]], stdin=subprocess.DEVNULL)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_job_process_dies_with_its_server_before_its_imports(tmp_path: Path) -> None:
    held, release = tmp_path / "held", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", SERVER, CHILD, str(held), str(release)],
                              stdout=subprocess.PIPE, env=env)
    child = 0
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        deadline = time.monotonic() + 60
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert held.exists(), "the job process never reached its imports"
        assert _alive(child)  # held, with its server alive
        server.kill()
        server.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child), "the job process outlived its server while importing"
    finally:
        release.touch()
        server.kill()
        server.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
