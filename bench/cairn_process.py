"""`cairn serve` as a separate process, started and killed the way a user
(or a crash) does: for the crash-injection campaign and the load test."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# How a server of this checkout is started, if not by subprocess.Popen: the
# tests put their fork server here (tests/conftest.py, tests/forkserver.py),
# called as SPAWN(args, cwd, env, stderr=fd) and returning a Popen-like handle.
SPAWN: Any = None


class CairnProcess:
    """`cairn serve` as a user runs it; stderr goes to a log file (never a pipe
    nobody reads, which would stall a chatty server)."""

    def __init__(self, data_dir: Path, config: Path, log_path: Path,
                 env: dict[str, str] | None = None, root: Path = ROOT) -> None:
        self.data_dir, self.config, self.log_path = data_dir, config, log_path
        self.root = root  # the checkout the server runs from (another one for A/B runs)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if root != ROOT:
            self.env["PYTHONPATH"] = str(root)
        self.proc: Any = None  # a subprocess.Popen, or what SPAWN returns
        self.port = 0
        self.url = ""

    def start(self, timeout: float = 60.0) -> CairnProcess:
        args = [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(self.data_dir),
                "--config", str(self.config), "--port", "0", "--pg-port", "0",
                "--log-level", "INFO"]
        with open(self.log_path, "ab") as log:
            if SPAWN is not None and self.root == ROOT:
                self.proc = SPAWN(args, str(self.root), self.env, stderr=log.fileno())
            else:
                self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True,
                                             cwd=str(self.root), env=self.env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline().strip()
        if not line.startswith("cairn listening on") or time.monotonic() > deadline:
            self.kill()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server did not start: {line!r}\n{tail}")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def post(self, text: str, timeout: float = 60.0,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            self.url + "/api/sql", data=json.dumps({"sql": text}).encode(), method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def ok(self, text: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        status, body = self.post(text, timeout)
        if status != 200:
            raise RuntimeError(f"{text[:200]!r} failed: {status} {body.get('error')}")
        return list(body["results"])

    def rows(self, text: str) -> list[dict[str, Any]]:
        return list(self.ok(text)[-1]["rows"])

    def send(self, text: str) -> http.client.HTTPConnection:
        """Send a request without waiting for the answer (the caller may kill us)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("POST", "/api/sql", json.dumps({"sql": text}),
                     {"Content-Type": "application/json"})
        return conn

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs in the server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def write_config(path: Path, root: Path, throttle: int) -> Path:
    path.write_text(f'[backup]\nroots = ["{root}"]\nthrottle_bytes_per_second = {int(throttle)}\n')
    return path


