"""lark's grammar cache is a pickle: only a file of this user's alone, in a folder
of this user's alone, is ever read back (sqlgrammar/grammar_cache.py)."""

from __future__ import annotations

import os
import pickle
import stat
import tempfile
from pathlib import Path

import pytest
from lark import Lark

from sqlgrammar import ast, parser
from sqlgrammar.grammar_cache import cache_path


class _Payload:
    """Unpickled, makes the folder `marker`: proof that the file was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _plant(path: Path, marker: Path) -> None:
    path.write_bytes(b"0" * 64 + b"\n" + pickle.dumps(_Payload(marker)))


@pytest.fixture
def shared_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A temp dir like /tmp (world-writable, sticky) standing for the machine's."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(shared))
    return shared


def test_a_file_at_larks_own_name_in_the_shared_temp_dir_is_never_loaded(
    shared_tmp: Path, tmp_path: Path
) -> None:
    # The name lark itself would read with cache=True, found by letting it write once.
    Lark.open("commands.lark", rel_to=parser.__file__, cache=True, parser="lalr",
              propagate_positions=True, postlex=parser._AlwaysName(), transformer=parser.ToAst(),
              maybe_placeholders=True)  # the options, in their order, of lark's own default
    names = [p.name for p in shared_tmp.glob(".lark_cache_*")]
    assert names, "lark's own cache name was not found"
    for name in names:
        _plant(shared_tmp / name, tmp_path / "ran")
    lark = parser._load_grammar()
    assert not (tmp_path / "ran").exists()
    assert lark.parse("SHOW TABLES IN app") == ast.ShowTables("app")


def test_the_cache_is_written_in_a_folder_of_this_users_alone_and_read_back(
    shared_tmp: Path
) -> None:
    parser._load_grammar()
    folder = shared_tmp / f"cairn-{os.geteuid()}"
    st = folder.lstat()
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
    assert stat.S_IMODE(st.st_mode) == 0o700
    cached = Path(cache_path())
    assert cached.parent == folder and cached.stat().st_size > 1000
    written = cached.stat().st_mtime_ns
    assert parser._load_grammar().parse("SHOW SCHEDULES") == ast.ShowSchedules()
    assert cached.stat().st_mtime_ns == written  # read, not built and written again


def test_a_folder_others_may_write_is_not_used(shared_tmp: Path, tmp_path: Path) -> None:
    folder = shared_tmp / f"cairn-{os.geteuid()}"
    folder.mkdir()
    folder.chmod(0o777)  # made before us, or loosened: anyone could have put a file in it
    with pytest.raises(PermissionError):
        cache_path()
    folder.chmod(0o700)
    planted = Path(cache_path())
    folder.chmod(0o777)
    _plant(planted, tmp_path / "ran")
    lark = parser._load_grammar()
    assert not (tmp_path / "ran").exists()
    assert lark.parse("SHOW TABLES IN app") == ast.ShowTables("app")


def test_a_link_in_place_of_the_folder_is_not_followed(shared_tmp: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    (shared_tmp / f"cairn-{os.geteuid()}").symlink_to(theirs)
    with pytest.raises(PermissionError):
        cache_path()
    assert parser._load_grammar().parse("SHOW SCHEDULES") == ast.ShowSchedules()


def test_a_cache_file_others_may_write_is_not_loaded(shared_tmp: Path, tmp_path: Path) -> None:
    planted = Path(cache_path())
    _plant(planted, tmp_path / "ran")
    planted.chmod(0o666)
    with pytest.raises(PermissionError):
        cache_path()
    lark = parser._load_grammar()
    assert not (tmp_path / "ran").exists()
    assert lark.parse("SHOW SCHEDULES") == ast.ShowSchedules()
