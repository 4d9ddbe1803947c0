"""`cairn serve` on a data directory it must not open as it is: a lost or
damaged catalog beside the tables' Parquet files. It started on a new, empty
catalog and its start-up sweep deleted every data file ("recovery removed 2
stray files"), or refused with a Python trace and RocksDB's raw text. Now it
refuses in one line, exit 1, and every file stays."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ServerProcess


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with two flushed tables, the server stopped."""
    data = tmp_path_factory.mktemp("pristine") / "data"
    srv = ServerProcess(data).start()
    try:
        status, body = srv.post(
            "CREATE NAMESPACE a; CREATE TABLE a.t (k BIGINT PRIMARY KEY, v TEXT); "
            "CREATE TABLE a.u (k BIGINT PRIMARY KEY); INSERT INTO a.t VALUES (1, 'x'); "
            "INSERT INTO a.u VALUES (2); FLUSH TABLE a.t; FLUSH TABLE a.u")
        assert status == 200, body
        assert srv.stop() == 0
    finally:
        srv.kill()
    return data


def parquet(data: Path) -> list[str]:
    return sorted(p.relative_to(data).as_posix() for p in (data / "files").rglob("*.parquet"))


def refused(data: Path) -> str:
    """The one line a start on `data` prints; it must exit 1 without a trace."""
    srv = ServerProcess(data)
    proc = subprocess.run(srv.args, capture_output=True, text=True, timeout=60,
                          cwd=str(data.parent))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cairn: cannot start: "), lines
    return lines[0]


def _catalog_gone(catalog: Path) -> None:
    shutil.rmtree(catalog)


def _catalog_emptied(catalog: Path) -> None:
    shutil.rmtree(catalog)
    catalog.mkdir()  # a mount point whose disk did not come up


def _current_deleted(catalog: Path) -> None:
    (catalog / "CURRENT").unlink()


@pytest.mark.parametrize(("damage", "why"), [
    (_catalog_gone, "has no catalog/"),
    (_catalog_emptied, "has an empty catalog/"),
    (_current_deleted, "has a catalog/ with no CURRENT file"),
])
def test_lost_catalog_beside_data_files_is_refused(
        pristine: Path, tmp_path: Path, damage: Callable[[Path], None], why: str) -> None:
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    before = parquet(data)
    assert len(before) == 2
    damage(data / "catalog")
    line = refused(data)
    assert f"the data directory '{data}' {why} but files/ holds 2 entries" in line, line
    assert "a new catalog would delete them" in line
    assert parquet(data) == before  # nothing swept
    assert not (data / "catalog" / "CURRENT").exists()  # and no new catalog made


def _current_emptied(catalog: Path) -> None:
    (catalog / "CURRENT").write_bytes(b"")


def _manifest_deleted(catalog: Path) -> None:
    for p in catalog.glob("MANIFEST-*"):
        p.unlink()


def _sst_deleted(catalog: Path) -> None:
    next(iter(sorted(catalog.glob("*.sst")))).unlink()


@pytest.mark.parametrize("damage", [_current_emptied, _manifest_deleted, _sst_deleted])
def test_damaged_catalog_is_one_line(
        pristine: Path, tmp_path: Path, damage: Callable[[Path], None]) -> None:
    """A trace ending in `Exception: Corruption: …` (or, for a MANIFEST gone,
    'the data directory cannot be written'): one line naming the catalog."""
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    before = parquet(data)
    damage(data / "catalog")
    line = refused(data)
    assert line.startswith(f"cairn: cannot start: the catalog '{data / 'catalog'}' is damaged "
                           f"(RocksDB: "), line
    assert "cannot be written" not in line
    assert parquet(data) == before


def test_folder_not_yet_a_data_dir_keeps_the_users_files(tmp_path: Path) -> None:
    """A folder that already holds someone's tmp/ and files/ (a typo for the
    data directory, or `--data-dir ""` from an unset variable: the working
    directory) was adopted in silence, and the sweep deleted their files."""
    folder = tmp_path / "home"
    theirs = [folder / "tmp" / "notes.txt", folder / "tmp" / "mystuff" / "a.txt",
              folder / "files" / "reports" / "q3.parquet", folder / "files" / "q4.parquet"]
    for p in theirs:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("precious")
    line = refused(folder)
    assert (f"the data directory '{folder}' has no catalog/ but files/ holds 2 entries "
            f"(q4.parquet, reports) and tmp/ holds 2 entries (mystuff, notes.txt)") in line, line
    assert all(p.read_text() == "precious" for p in theirs)
    assert not (folder / "catalog").exists()

    srv = ServerProcess(folder)
    args = [*srv.args[:srv.args.index("--data-dir") + 1], "", *srv.args[srv.args.index(
        "--data-dir") + 2:]]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=str(folder))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("cairn: --data-dir must not be empty (use '.' for the "
                                   "working directory)")
    assert all(p.read_text() == "precious" for p in theirs)


@pytest.mark.parametrize("own", ["tmp", "files"])
def test_linked_tmp_or_files_is_refused(pristine: Path, tmp_path: Path, own: str) -> None:
    """tmp/ or files/ replaced by a link to a folder outside: the start-up
    sweep followed it and deleted every file in that folder."""
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    outside = tmp_path / "outside"
    shutil.copytree(data / own, outside)
    (outside / "a.txt").write_text("precious")
    (outside / "c.parquet").write_text("precious")
    shutil.rmtree(data / own)
    (data / own).symlink_to(outside)
    before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    line = refused(data)
    assert line == (f"cairn: cannot start: '{data / own}' is a symbolic link: Cairn does not "
                    f"follow links in its data directory (its start-up clean-up would delete "
                    f"files where it points); make it a directory (mount another disk there, "
                    f"or move the whole data directory)")
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == before
