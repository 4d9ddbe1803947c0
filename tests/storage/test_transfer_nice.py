"""The transfer threads of a backup whose copies run in copier processes start
at normal priority even though the job thread that starts them is lowered
(storage/inflight.py, issue 15: at nice 10 they were preempted holding the GIL
the event loop waited for). Where the copy, hash, compression or upload runs on
the transfer thread itself, that thread is lowered as before."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import priority
from storage.backup import Repository, copier, fastcopy, resolve_target
from storage.backup.objects import ObjectStore
from storage.engine import Engine
from storage.inflight import InFlight

from .test_parallel_transfer import app, backup  # noqa: F401 (a fixture)

LEVEL = 10


@pytest.fixture(autouse=True)
def level() -> Iterator[None]:
    before = priority.background_nice()
    priority.set_background_nice(LEVEL)
    yield
    priority.set_background_nice(before)


def nice_in_proc() -> int:
    """This thread's nice value as the kernel shows it (/proc/self/task/<tid>/stat)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of stat; fields[0] is field 3


def lowered_job(fn: Callable[[], Any]) -> tuple[Any, int]:
    """`fn()` on a job thread that lowered itself; its result and the job
    thread's nice value afterwards."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def body() -> None:
        assert priority.lower_this_thread()
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 (raised below, in the test)
            errors.append(exc)
        out.append(nice_in_proc())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0], out[1]


def test_a_normal_pool_started_from_a_lowered_thread() -> None:
    normal = nice_in_proc()
    assert normal < LEVEL

    def run(flag: bool) -> list[tuple[str, int, int]]:
        seen: list[tuple[str, int, int]] = []
        gate = threading.Barrier(3)

        def one(index: int, _: int) -> None:
            if index < 3:
                gate.wait(10)  # three threads at once: the pool started three
            before = nice_in_proc()
            priority.lower_if_started_normal()  # CPU work on this thread next
            seen.append((threading.current_thread().name, before, nice_in_proc()))

        InFlight(3, normal=flag).run(list(range(9)), one)
        return seen

    seen, job = lowered_job(lambda: run(True))
    assert job == LEVEL
    assert len({name for name, _, _ in seen}) == 3
    assert all(name.startswith("cairn-transfer") for name, _, _ in seen)
    # Each thread starts at normal priority; once lowered it stays lowered.
    firsts: dict[str, int] = {}
    for name, before, after in seen:
        firsts.setdefault(name, before)
        assert after == LEVEL
    assert set(firsts.values()) == {normal}
    seen, job = lowered_job(lambda: run(False))
    assert job == LEVEL and {(b, a) for _, b, a in seen} == {(LEVEL, LEVEL)}
    # Threads that did not start for a lowered job are never lowered by it.
    assert in_thread_lower_if_started_normal() == normal


def in_thread_lower_if_started_normal() -> int:
    out: list[int] = []

    def body() -> None:
        priority.lower_if_started_normal()
        out.append(nice_in_proc())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    return out[0]


@pytest.mark.parametrize("case", ["copiers", "zstd", "no copier"])
def test_backup_transfer_threads(app: Engine, tmp_path: Path,  # noqa: F811
                                 monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """Observed while each object is stored, on the thread storing it."""
    assert copier.enabled()
    normal = nice_in_proc()
    puts: list[tuple[str, int]] = []
    copies: list[int] = []
    put_file = Repository.put_file
    copy_checked = fastcopy.copy_checked

    def watched_put(self: Repository, *args: Any, **kwargs: Any) -> Any:
        puts.append((threading.current_thread().name, nice_in_proc()))
        return put_file(self, *args, **kwargs)

    def watched_copy(*args: Any, **kwargs: Any) -> Any:
        copies.append(nice_in_proc())  # the in-process copy and hash
        return copy_checked(*args, **kwargs)

    encoded: list[int] = []
    upload_encoded = ObjectStore._upload_encoded

    def watched_encode(self: ObjectStore, *args: Any, **kwargs: Any) -> Any:
        out = upload_encoded(self, *args, **kwargs)
        encoded.append(nice_in_proc())  # after zstd on this thread
        return out

    monkeypatch.setattr(ObjectStore, "_upload_encoded", watched_encode)
    monkeypatch.setattr(Repository, "put_file", watched_put)
    monkeypatch.setattr(fastcopy, "copy_checked", watched_copy)
    if case == "no copier":  # none can start (or it died): the copy runs here
        monkeypatch.setattr(copier, "copy", lambda *a, **k: None)
    compression = "zstd" if case == "zstd" else "none"
    repo = Repository(resolve_target("t", [str(tmp_path / "b")], {}), compression=compression)
    m, job = lowered_job(lambda: backup(app, repo, "bk-1"))
    assert job == LEVEL and len(m.tables[0].files) > 1
    assert puts and all(name.startswith("cairn-transfer") for name, _ in puts)
    # Started at normal priority (zstd is chosen per file).
    assert puts[0][1] == normal
    firsts: dict[str, int] = {}
    for name, nice in puts:
        firsts.setdefault(name, nice)
    # Each transfer thread stores its first object at normal priority.
    assert set(firsts.values()) == {normal}
    if case == "zstd":  # compressed on the transfer thread: lowered first
        assert encoded and set(encoded) == {LEVEL} and copies == []
    elif case == "copiers":  # no CPU work of its own: never lowered
        assert {n for _, n in puts} == {normal} and encoded == []
    else:  # it copied and hashed an object itself, lowered for that, and
        # stays lowered for any later object it takes
        assert encoded == []
    if case == "copiers":
        assert copies == []  # every copy ran in a copier process
    if case == "no copier":
        assert copies and set(copies) == {LEVEL}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == normal
