"""`cairn serve` stopping with PostgreSQL clients connected: each is told
FATAL 57P01 (admin_shutdown), as PostgreSQL tells them, and the log stays
quiet (an idle client's cancelled task was an asyncio ERROR with a trace)."""

from __future__ import annotations

import signal
from pathlib import Path

import psycopg
import pytest

from tests.helpers import ServerProcess, free_port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_tells_idle_clients_admin_shutdown(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    srv = ServerProcess(tmp_path / "data", extra=["--pg-port", str(port)]).start()
    try:
        dsn = f"host=127.0.0.1 port={port} user=alice dbname=cairn connect_timeout=10"
        idle = [psycopg.connect(dsn, autocommit=True) for _ in range(2)]
        for conn in idle:
            assert conn.execute("SELECT 1").fetchall() == [(1,)]
        assert srv.proc is not None
        srv.proc.send_signal(sig)
        assert srv.proc.wait(30) == 0
        for conn in idle:
            with pytest.raises(psycopg.OperationalError) as info:
                conn.execute("SELECT 1")
            assert info.value.sqlstate == "57P01", info.value
            assert "administrator command" in str(info.value)
            conn.close()
        log = srv.log()
        assert "Traceback" not in log and " ERROR " not in log, log
    finally:
        srv.kill()
