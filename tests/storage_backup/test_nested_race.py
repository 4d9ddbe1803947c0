"""Two servers creating nested repositories at the same moment (`n0` and
`n0/locks` under one root): each resolved its target while neither
`config.json` existed, so the nesting rule passed for both, both became
repositories, and `n0`'s prunes then read the inner config as a damaged lock.
The rule is asked again once a config is written: the one that finds the other
backs out, so they never both succeed."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import PermissionDenied
from storage.backup import Repository, resolve_target


@pytest.mark.parametrize("first", ["outer", "inner"])
def test_nested_repositories_created_at_once_never_both_succeed(tmp_path: Path,
                                                                first: str) -> None:
    root = str(tmp_path / "root")
    (tmp_path / "root").mkdir()
    # Both resolved (and checked) before either is a repository, as two servers racing.
    targets = {"outer": resolve_target("n0", [root], {}),
               "inner": resolve_target("n0/locks", [root], {})}
    second = "inner" if first == "outer" else "outer"
    Repository(targets[first]).init()
    with pytest.raises(PermissionDenied, match="internal folder 'locks'"):
        Repository(targets[second]).init()
    config = {"outer": tmp_path / "root" / "n0" / "config.json",
              "inner": tmp_path / "root" / "n0" / "locks" / "config.json"}
    assert config[first].is_file() and not config[second].exists()
    if first == "outer":  # its prunes see no config.json in locks/ as a damaged lock
        outer = Repository(resolve_target("n0", [root], {}))
        outer.check_prunable()
        assert outer.list_locks() == []
    else:  # n0 stays refused, holding the repository made first
        with pytest.raises(PermissionDenied, match="internal folder 'locks'"):
            resolve_target("n0", [root], {})
