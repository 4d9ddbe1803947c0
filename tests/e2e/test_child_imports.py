"""The server's child processes (a job process, the archive helper, the NaN
reader) were started with `python -m`, which puts the working directory
first on their import path: started from a directory holding a `json.py`
(as the installed `cairn` command may be, which itself does not import from
there), every BACKUP, VERIFY and RESTORE answered 500 ("module 'json' has no
attribute 'dumps'"), and the NaN reader failed on every older file, which
the start-up pass then took for damage. They start with `-P` now."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import ServerProcess


def test_no_child_process_imports_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text("raise ImportError('the working directory json.py')\n")
    server = ServerProcess(tmp_path / "data")
    server.args.insert(1, "-P")  # the server itself as `cairn` starts it: not from there
    server.start()
    try:
        for text in ["CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY, x DOUBLE); "
                     "INSERT INTO app.t VALUES (1, 1.5), (2, 'NaN'::DOUBLE); FLUSH TABLE app.t",
                     "BACKUP DATABASE app TO 'here'"]:
            status, body = server.post(text)
            assert status == 200, body
        backup_id = body["results"][0]["rows"][0]["backup_id"]
        status, body = server.post(f"VERIFY BACKUP '{backup_id}' IN 'here'")
        assert status == 200 and body["results"][0]["rows"][0]["is_valid"] is True, body
        status, body = server.post("RESTORE DATABASE app FROM 'here' AS back")
        assert status == 200, body
        status, body = server.post("SELECT k FROM back.t WHERE isnan(x)")
        assert (status, body["results"][0]["rows"]) == (200, [{"k": 2}]), body
    finally:
        server.kill()
