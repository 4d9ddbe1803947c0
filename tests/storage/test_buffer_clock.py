"""Buffered rows age by a clock that does not jump (storage/bufclock.py): a
step of the wall clock evicts no stream row early nor keeps one late, and a
restart with the clock set back does not hold buffered rows past their flush
interval."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Namespace
from storage import bufclock

from .conftest import open_engine, runner


@pytest.fixture
def fresh_clock() -> Iterator[None]:
    """The clock as a new process starts it (reloaded), put back afterwards."""
    yield
    importlib.reload(bufclock)


def test_a_wall_clock_step_moves_no_stream_rows_age(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog, engine = open_engine(tmp_path / "data")
    catalog.put(Namespace("app"))
    run = runner(engine)
    engine.create_table("app", "s", "stream", [{"name": "a", "type": "BIGINT"}],
                        {"ttl_seconds": 60})
    run("INSERT INTO app.s VALUES (1)")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 120)  # stepped 2 minutes on
    assert engine.evict_streams() == 0
    assert run("SELECT a FROM app.s") == [{"a": 1}]
    engine.close()
    catalog.close()


def test_a_restart_with_the_clock_set_back_keeps_the_flush_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_clock: None) -> None:
    catalog, engine = open_engine(tmp_path / "data")
    catalog.put(Namespace("app"))
    engine.create_table("app", "t", "shared", [{"name": "a", "type": "BIGINT"}],
                        {"flush_interval_seconds": 0.01})
    runner(engine)("INSERT INTO app.t VALUES (1)")
    engine.close()
    catalog.close()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # set back an hour
    importlib.reload(bufclock)  # as a new process reads it
    catalog, engine = open_engine(tmp_path / "data")
    engine.tables_needing_flush()  # the tables load (the server's loop does at once)
    time.sleep(0.05)
    assert engine.tables_needing_flush() == [("app", "t")]
    engine.close()
    catalog.close()
