"""The test modules' assertions rewritten once, by the controller, before
xdist's workers start (tests/conftest.py, `pytest_configure`).

pytest rewrites the asserts of every test module and conftest.py it imports
and caches the result in `__pycache__` (a pyc checked by the source's hash).
Each worker imports every test module to collect it, and in a fresh clone
the cache is empty: the four workers, collecting in the same order at the
same moment, each rewrote all ~400 modules, ~13 s of CPU a worker on a
2-CPU machine (`pytest --collect-only`: 18.2 s of CPU with an empty cache,
5.3 s with a full one). Here the controller fills the cache first, the files
split across the CPUs, and the workers read it.

It uses pytest's own rewriting (`_pytest.assertion.rewrite`), with the
settings this project runs it with (assert mode "rewrite", no assertion pass
hook); a pytest whose internals differ, or any error, leaves the cache as it
is, and the workers rewrite as they always did: what runs is the same either
way, only who compiles it first.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class _Quiet:
    def trace(self, *args: Any) -> None:
        pass


def rewrite(paths: list[str]) -> int:
    """Rewrite the files whose cached code is missing or stale; how many."""
    from _pytest.assertion import rewrite as rw

    done = 0
    for name in paths:
        fn = Path(name)
        pyc = rw.get_cache_dir(fn) / (fn.name[:-3] + rw.PYC_TAIL)
        if rw._read_pyc(fn, pyc, _Quiet().trace) is not None:
            continue
        if not rw.try_makedirs(pyc.parent):
            continue
        try:
            source_hash, co = rw._rewrite_test(fn, None)  # type: ignore[arg-type]
        except SyntaxError:
            continue  # the worker's own import says what is wrong
        if rw._write_pyc(_Quiet(), co, source_hash, pyc):  # type: ignore[arg-type]
            done += 1
    return done


def test_files(args: Iterable[str], rootdir: Path) -> list[str]:
    """The test modules and conftest.py files under the paths pytest was given."""
    found: set[str] = set()
    for arg in args:
        path = (rootdir / arg.split("::", 1)[0]).resolve()
        if path.is_file() and path.suffix == ".py":
            found.add(str(path))
        elif path.is_dir():
            for f in path.rglob("*.py"):
                if (f.name.startswith("test_") or f.name == "conftest.py") and \
                        "__pycache__" not in f.parts:
                    found.add(str(f))
    return sorted(found)


def before_workers(config: Any) -> None:
    """In the controller of an xdist run of more than one worker: fill the
    rewrite cache of the test files it will collect, on every CPU."""
    if hasattr(config, "workerinput") or sys.dont_write_bytecode:
        return
    workers = config.getoption("numprocesses", None)
    if not isinstance(workers, int) or workers < 2:
        return
    if config.getoption("assertmode", "rewrite") != "rewrite" or \
            config.getini("enable_assertion_pass_hook"):
        return  # code these settings would rewrite otherwise: left to pytest
    if threading.active_count() > 1:
        return  # forking a process with threads: not worth it for a cache
    args = config.args or config.getini("testpaths") or ["."]
    files = test_files(args, Path(config.invocation_params.dir))
    cpus = min(len(os.sched_getaffinity(0)), workers)
    if len(files) < 20 or cpus < 2:
        return
    try:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        files.sort(key=lambda f: -os.path.getsize(f))  # the largest first, dealt out
        chunks = [files[i::cpus] for i in range(cpus)]
        with ProcessPoolExecutor(cpus, mp_context=multiprocessing.get_context("fork")) as pool:
            list(pool.map(rewrite, chunks))
    except Exception:  # noqa: BLE001 - a cache: the workers rewrite what is missing
        return
