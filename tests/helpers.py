"""Helpers for tests: `sql()`/`ok()` speak the HTTP API; `ServerProcess` runs
`cairn serve` the way a user does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


async def sql(
    client: Any,
    text: str,
    *,
    user: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST one request to /api/sql; returns (HTTP status, JSON body)."""
    headers = {}
    if user is not None:
        headers["X-User-Id"] = user
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body: dict[str, Any] = {"sql": text}
    if namespace is not None:
        body["namespace"] = namespace
    resp = await client.post("/api/sql", json=body, headers=headers)
    return resp.status, await resp.json()


async def ok(client: Any, text: str, **kw: Any) -> list[dict[str, Any]]:
    """Run SQL that must succeed; returns its results."""
    status, body = await sql(client, text, **kw)
    assert status == 200, body
    assert body["status"] == "success", body
    return body["results"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`cairn serve` started the way a user starts it."""

    def __init__(self, data_dir: Path, extra: list[str] | None = None, config: Path | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data_dir),
                     "--port", str(self.port), *(extra or [])]
        if config is not None:
            self.args += ["--config", str(config)]
        self.proc: subprocess.Popen[str] | None = None
        self.first_line = ""

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=str(self.data_dir.parent),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        self.first_line = self.proc.stdout.readline().strip()
        if not self.first_line.startswith("cairn listening on"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"server did not start: {self.first_line!r} {err[-2000:]}")
        assert time.monotonic() < deadline
        return self

    def post(self, text: str, **headers: str) -> tuple[int, dict[str, Any]]:
        import json
        import urllib.error
        import urllib.request

        req = urllib.request.Request(
            self.url + "/api/sql", data=json.dumps({"sql": text}).encode(),
            headers={"Content-Type": "application/json", **headers}, method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        return self.proc.returncode


