"""Helpers for tests: `sql()`/`ok()` speak the HTTP API; `ServerProcess` runs
`cairn serve` the way a user does."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from multidict import CIMultiDict

from tests import forkserver


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


def state(client: Any) -> Any:
    """The server state (`Cairn`) behind an `aiohttp_client` of `create_app`."""
    from server.app import CAIRN

    return client.server.app[CAIRN]


async def ok(client: Any, text: str, **kw: Any) -> list[dict[str, Any]]:
    """Run SQL that must succeed; returns its results."""
    status, body = await sql(client, text, **kw)
    assert status == 200, body
    assert body["status"] == "success", body
    return body["results"]


class Quiet:
    """A storage Work (storage/work.py) that never cancels and records nothing."""

    cancelled = False
    pause_requested = False

    def check_cancelled(self) -> None:
        pass

    def progress(self, **_: Any) -> None:
        pass

    def fault(self, point: str, **info: Any) -> None:
        pass

    def give_way(self) -> None:
        pass

    def waiting(self, what: str | None) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _drain(pipe: Any, into: list[str]) -> None:
    for line in pipe:
        into.append(line)


class ServerProcess:
    """`cairn serve` started the way a user starts it."""

    def __init__(self, data_dir: Path, extra: list[str] | None = None, config: Path | None = None,
                 env: dict[str, str] | None = None, new_session: bool = False):
        """`env` adds variables to the process's environment, e.g.
        `{"CAIRN_FAULTS": "backup.before_manifest:kill"}`; `new_session`: a
        session and process group of its own, as a terminal's foreground job.
        Started by this worker's fork server (tests/forkserver.py: the libraries
        imported once) unless CAIRN_TEST_FORK=0."""
        self.data_dir = data_dir
        self.env = env or {}
        self.new_session = new_session
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data_dir),
                     "--port", str(self.port), *(extra or [])]
        if "--pg-port" not in self.args:
            self.args += ["--pg-port", "0"]
        if config is not None:
            self.args += ["--config", str(config)]
        self.proc: subprocess.Popen[str] | forkserver.Forked | None = None
        self.first_line = ""
        self._output: list[str] = []
        self._drains: list[threading.Thread] = []

    def start(self, timeout: float = 90.0) -> ServerProcess:
        """Start the server; it must say it listens within `timeout` s (90: a
        loaded 2-core CI machine took over 30 to start one beside CPU hogs)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        if forkserver.usable(self.args):
            self.proc = forkserver.spawn(self.args, str(self.data_dir.parent), env,
                                         self.new_session)
        else:
            self.proc = subprocess.Popen(
                self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                cwd=str(self.data_dir.parent), env=env, start_new_session=self.new_session,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        self.first_line = self.proc.stdout.readline().strip()
        if not self.first_line.startswith("cairn listening on"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"server did not start: {self.first_line!r} {err[-2000:]}")
        assert time.monotonic() < deadline
        # Read what the server writes from now on, so a busy server's log never
        # fills the pipe (~250 jobs' lines at INFO did, and it stopped answering).
        self._drains = [threading.Thread(target=_drain, args=(pipe, self._output), daemon=True)
                        for pipe in (self.proc.stderr, self.proc.stdout) if pipe is not None]
        for drain in self._drains:
            drain.start()
        return self

    def log(self) -> str:
        """Everything the server wrote to stderr (and stdout) after its first line,
        once it has exited (call after stop/kill)."""
        for drain in self._drains:
            drain.join(30)
        return "".join(self._output)

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




# --- jobs, fault points and targets (backup operation tests) ------------------


class Gate:
    """A fault-point action (`faults.register(point, gate)`) that parks the job's
    thread at that point until the test opens it, or until the job is cancelled:
    then the job goes on and meets the cancel at its next check. Only the first
    hit that `match`es parks; later hits pass."""

    def __init__(self, cairn: Any = None, match: Any = None) -> None:
        self.cairn = cairn
        self.match = match or (lambda info: True)
        self.reached = threading.Event()
        self.opened = threading.Event()
        self.info: dict[str, Any] = {}

    @classmethod
    def signal(cls, match: Any = None) -> Gate:
        """A gate that is open from the start: it only records that it was reached."""
        gate = cls(match=match)
        gate.opened.set()
        return gate

    def __call__(self, info: dict[str, Any]) -> None:
        if self.reached.is_set() or not self.match(info):
            return
        self.info = dict(info)
        self.reached.set()
        deadline = time.monotonic() + 120  # the test's steps to open it, on a loaded machine
        while not self.opened.wait(0.005):
            if self.cairn is not None and self.cairn.jobs.is_cancelled(info.get("job_id", "")):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("test gate was never opened")

    async def reach(self, timeout: float = 60.0) -> dict[str, Any]:
        # A job's start (its helper process, the first files) took over 5 s, the
        # bound this had, in 7 runs of 10 with -n 2 on a loaded 2-core machine.
        reached = await asyncio.get_running_loop().run_in_executor(
            None, self.reached.wait, timeout)
        assert reached, "the job never reached the fault point"
        return self.info


async def job_row(client: Any, job_id: str) -> dict[str, Any]:
    rows = (await ok(client, f"SELECT * FROM system.jobs WHERE job_id = '{job_id}'"))[0]["rows"]
    assert len(rows) == 1, rows
    return rows[0]


async def wait_job(client: Any, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The job's row once it has ended."""
    deadline = time.monotonic() + timeout
    while True:
        row = await job_row(client, job_id)
        if row["status"] not in ("queued", "running"):
            return row
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.02)


async def fill(client: Any, ns: str = "app", table: str = "blobs", files: int = 2,
               rows: int = 100, width: int = 200, start: int = 0) -> int:
    """`files` flushed Parquet files of hard-to-compress rows in ns.table (made
    if missing); returns the next free id."""
    await ok(client, f"CREATE NAMESPACE IF NOT EXISTS {ns};"
                     f"CREATE TABLE IF NOT EXISTS {ns}.{table} (id BIGINT PRIMARY KEY, data TEXT)")
    n = start
    for _ in range(files):
        values = ", ".join(f"({n + i}, '{os.urandom(width).hex()}')" for i in range(rows))
        n += rows
        await ok(client, f"INSERT INTO {ns}.{table} VALUES {values}; FLUSH TABLE {ns}.{table}")
    return n


def target_files(target: Path) -> dict[str, set[str]]:
    """What a backup target holds, by part: manifests (backup ids), objects
    (oids), locks, prunes and tmp (file names)."""
    def names(part: str, strip: str = "") -> set[str]:
        base = target / part
        found = {p.name.removesuffix(strip) for p in base.rglob("*") if p.is_file()}
        return found if base.exists() else set()

    return {"manifests": names("manifests", ".json"), "objects": names("objects"),
            "locks": names("locks"), "prunes": names("prunes"), "tmp": names("tmp")}


async def err(client: Any, text: str, code: str, **kw: Any) -> str:
    """Run SQL that must fail with `code`; returns the error message."""
    status, body = await sql(client, text, **kw)
    assert body["status"] == "error", body
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


async def rows(client: Any, text: str, **kw: Any) -> list[dict[str, Any]]:
    """The rows of the last statement of SQL that must succeed."""
    return list((await ok(client, text, **kw))[-1]["rows"])


def reseal(path: Path, change: Any) -> None:
    """What anyone who can write a target can do to a plain manifest (written
    with compression = 'none'): `change(doc)`, then its checksum recomputed."""
    import json

    from storage.backup.manifest import canonical, checksum

    doc = json.loads(path.read_bytes())
    change(doc)
    doc.pop("manifest_sha256")
    doc["manifest_sha256"] = checksum(doc)
    path.write_bytes(canonical(doc) + b"\n")


def replace_file(target: Path, table: str, change: Any) -> None:
    """What anyone who can write a plain target (compression = 'none') can do
    to a table's first file: its bytes through `change(bytes) -> bytes`,
    stored under their own sha256, and the manifest re-sealed to name them."""
    import hashlib

    def swap(doc: dict[str, Any]) -> None:
        entry = next(t for t in doc["tables"] if t["name"] == table)["files"][0]
        old = entry["oid"]
        data = change((target / "objects" / old[:2] / old).read_bytes())
        new = hashlib.sha256(data).hexdigest()
        (target / "objects" / new[:2]).mkdir(exist_ok=True)
        (target / "objects" / new[:2] / new).write_bytes(data)
        delta = len(data) - entry["size"]
        entry.update(oid=new, size=len(data))
        entry.pop("sha256", None)
        for o in doc["objects"]:
            if o["oid"] == old:
                o.update(oid=new, size=len(data))
        doc["totals"]["bytes"] += delta
        doc["totals"]["object_bytes"] += delta

    reseal(next((target / "manifests").glob("*.json")), swap)


@contextmanager
def no_descriptor_left() -> Iterator[None]:
    """This process's open-files limit lowered to the lowest descriptor free
    now: the next file opened fails with EMFILE, as when a server's
    connections and tables hold every descriptor its limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def idle_schedule_loop(cairn: Any, period: float = 1.0) -> None:
    """Stands in for the server's schedule loop in tests that pass their own
    `now` to run_due: the loop's real clock would see their next runs far
    ahead of it and compute them again (schedules.set_back)."""
    await asyncio.Event().wait()


def raw_http(port: int, request: bytes) -> tuple[int, CIMultiDict[str], bytes]:
    """One HTTP request written as is (no body follows its head); the
    answer's status, headers (any case) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        out = b""
        while b"\r\n\r\n" not in out and (chunk := sock.recv(65536)):
            out += chunk
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = CIMultiDict(line.split(": ", 1) for line in lines[1:])
        while len(body) < int(headers.get("Content-Length", 0)) and (chunk := sock.recv(65536)):
            body += chunk
    return int(lines[0].split()[1]), headers, body
