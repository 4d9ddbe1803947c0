"""The data directory's disk refusing writes: a full disk, a quota, a file size
limit. A statement that meets it answers 503 UNAVAILABLE naming the data
directory (it was 500 INTERNAL), /health says so, SIGTERM still exits
cleanly and a start on such a disk says so in one line; nothing logs a trace.

A real refusal without root: RLIMIT_FSIZE (with SIGXFSZ ignored) makes every
write past the limit fail with EFBIG, RocksDB's write-ahead log's as any
other; RocksDB then refuses writes until it is reopened, as after ENOSPC on
a disk with less than its write buffer's size free (docs/http.md)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from tests.helpers import ServerProcess, free_port, ok, sql

BIG = "x" * (2 << 20)  # one value past the limit below: its log record cannot be written


@contextmanager
def file_size_limit(limit: int = 1 << 20) -> Iterator[None]:
    """Writes of this process past `limit` bytes into any file fail (EFBIG)."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def limited(limit: int) -> None:
    """preexec_fn: the child's files may not grow past `limit` bytes."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


async def refuse_writes(client: Any, table: str) -> dict[str, Any]:
    """Make the catalog's RocksDB refuse writes; the error answered."""
    with file_size_limit():
        status, body = await sql(client, f"INSERT INTO {table} VALUES (999, '{BIG}')")
    assert status == 503, body
    return dict(body["error"])


async def test_write_refused_is_unavailable_naming_the_data_dir(
    client: Any, cairn_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    error = await refuse_writes(client, "app.t")
    where = f"the data directory '{cairn_config.data_dir}'"
    assert error["code"] == "UNAVAILABLE"
    assert error["message"].startswith(f"file size limit reached on {where}"), error
    # RocksDB stays refusing: every write says so, reads go on, /health tells
    for text in ("INSERT INTO app.t VALUES (2, 'b')", "CREATE TABLE app.u (id BIGINT)"):
        status, body = await sql(client, text)
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
        assert where in body["error"]["message"]
    assert (await ok(client, "SELECT id FROM app.t"))[0]["rows"] == [{"id": 1}]
    resp = await client.get("/health")
    health = await resp.json()
    assert resp.status == 503 and health["status"] == "unavailable", health
    # /health answers anyone, without a token: no server path, as a role-user's 503
    assert health["error"].startswith(
        "file size limit reached on the data directory '<data dir>'"), health
    assert str(cairn_config.data_dir) not in health["error"]
    assert os.path.realpath(cairn_config.data_dir) not in health["error"]
    assert not [r for r in caplog.records if r.exc_info], "no trace for a full disk"


def test_sigterm_after_writes_were_refused_exits_cleanly(tmp_path: Path) -> None:
    """A real server whose RocksDB refuses writes: 503, SQLSTATE over pgwire,
    and SIGTERM exits 0 (catalog.close() raised RocksDB's error again: exit 1
    and a trace)."""
    import psycopg

    pg_port = free_port()
    srv = ServerProcess(tmp_path / "data", extra=["--pg-port", str(pg_port)])
    srv.proc = subprocess.Popen(
        srv.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path),
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=lambda: limited(1 << 20))
    try:
        assert srv.proc.stdout is not None
        assert srv.proc.stdout.readline().startswith("cairn listening on")
        srv.post("CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
        status, body = srv.post(f"INSERT INTO app.t VALUES (1, '{BIG}')")
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
        with psycopg.connect(f"host=127.0.0.1 port={pg_port} user=admin dbname=cairn",
                             autocommit=True) as conn, pytest.raises(psycopg.Error) as caught:
            conn.execute("INSERT INTO app.t VALUES (2, 'b')")
        assert caught.value.sqlstate == "54000", caught.value  # EFBIG: program_limit_exceeded
        assert "data directory" in str(caught.value)
        assert srv.stop() == 0
        assert srv.proc.stderr is not None
        assert "Traceback" not in srv.proc.stderr.read()
    finally:
        srv.kill()


def test_start_on_a_refusing_disk_says_so_in_one_line(tmp_path: Path) -> None:
    """RocksDB's bare Exception at open went past `except OSError`: a trace."""
    srv = ServerProcess(tmp_path / "data")
    proc = subprocess.run(srv.args, capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                          preexec_fn=lambda: limited(1000))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"cairn: cannot start: file size limit reached on the data "
                               f"directory '{tmp_path / 'data'}'"), lines
