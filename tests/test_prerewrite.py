"""tests/prerewrite.py: the rewrite cache the controller fills is the one
pytest's workers read, with the assertions rewritten."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.assertion import rewrite as rw

from tests import prerewrite


def test_it_finds_test_modules_and_conftests_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("test_a.py", "conftest.py", "helper.py", "sub/test_b.py", "sub/b_test.txt"):
        (tmp_path / name).write_text("x = 1\n")
    found = prerewrite.test_files(["."], tmp_path)
    assert found == sorted(str(tmp_path / n) for n in ("conftest.py", "sub/test_b.py", "test_a.py"))
    one = prerewrite.test_files(["sub/test_b.py::test_x"], tmp_path)
    assert one == [str(tmp_path / "sub/test_b.py")]


def test_the_cache_it_writes_is_read_by_pytest_with_asserts_rewritten(tmp_path: Path) -> None:
    mod = tmp_path / "test_one.py"
    mod.write_text("def f():\n    a = 1\n    assert a == 2\n")
    assert prerewrite.rewrite([str(mod)]) == 1
    assert prerewrite.rewrite([str(mod)]) == 0  # cached: not again
    pyc = rw.get_cache_dir(mod) / (mod.name[:-3] + rw.PYC_TAIL)
    co = rw._read_pyc(mod, pyc)
    assert co is not None
    ns: dict[str, object] = {}
    exec(co, ns)
    with pytest.raises(AssertionError) as err:
        ns["f"]()  # type: ignore[operator]
    assert "assert 1 == 2" in str(err.value)  # pytest's explanation: rewritten
    mod.write_text("def f():\n    assert 3 == 3\n")
    assert prerewrite.rewrite([str(mod)]) == 1  # the source changed: stale
