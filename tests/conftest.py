"""Fixtures shared by every test: a temp config, an in-process server and a real
`cairn serve` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from tests.helpers import ServerProcess


@pytest.fixture
def cairn_config(tmp_path: Path) -> Config:
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path / "data")
    cfg.backup.roots = [str(tmp_path / "backups")]
    cfg.server.port = 0
    cfg.pgwire.port = 0
    return cfg


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config) -> Any:
    from server.app import create_app

    return await aiohttp_client(create_app(cairn_config))


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Any]:
    """A factory: `server_process()` starts `cairn serve` on tmp_path/data."""
    started: list[ServerProcess] = []

    def start(data_dir: Path | None = None, **kw: Any) -> ServerProcess:
        proc = ServerProcess(data_dir or tmp_path / "data", **kw).start()
        started.append(proc)
        return proc

    yield start
    for p in started:
        p.kill()

