"""A statement naming a target opens its repository on a server thread
(server/repos.py `repository`), where each system call is a take of the GIL
beside the statements on the event loop (docs/performance.md). The data
directory is the one resolved at start and this server's mark on its temp
files is made once: resolved again each time, they were ~18 system calls a
BACKUP (an lstat a component of the data directory's path, three times)."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from server.repos import repository, writer_of
from tests.helpers import sql, state


async def test_a_target_is_opened_without_resolving_the_data_directory_again(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cairn = state(client)
    await sql(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT); "
                      "INSERT INTO app.t VALUES (1); BACKUP DATABASE app TO 'main'")
    first = repository(cairn, "main")
    calls: list[str] = []

    def counting(name: str, real: Any) -> Any:
        def call(*args: Any, **kw: Any) -> Any:
            calls.append(name)
            return real(*args, **kw)
        return call

    for name in ("stat", "lstat"):
        monkeypatch.setattr(os, name, counting(name, getattr(os, name)))
    monkeypatch.setattr(socket, "gethostname", counting("gethostname", socket.gethostname))
    again = repository(cairn, "main")
    monkeypatch.undo()
    # The root (a stat), the target (an lstat), its config.json (an lstat):
    # what resolve_target itself asks (tests/storage_backup/test_links.py).
    assert calls == ["stat", "lstat", "lstat"], calls
    assert again.target.base == first.target.base
    assert again.target.writer == first.target.writer == writer_of(str(cairn.data_dir))
