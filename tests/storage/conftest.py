"""An Engine over a Catalog in a temp data dir, and a `run(sql)` helper that
parses like the server does (sqlglot, DuckDB dialect)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from catalog import Catalog, Namespace
from storage.engine import Engine


@dataclass
class Cfg:
    flush_rows: int = 10_000
    flush_bytes: int = 64 << 20
    flush_interval_seconds: float = 300.0
    duckdb_memory_limit: str = "1GB"
    duckdb_spill_limit: str = "4GB"
    duckdb_threads: int = 2
    duckdb_release_memory: bool = True
    duckdb_wide_row_bytes: int = 512
    point_cache_mb: int = 32


def col(name: str, typ: str = "INT", *params: int, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": {"name": typ, "params": params}, **kw}


def open_engine(data_dir: Path) -> tuple[Catalog, Engine]:
    catalog = Catalog(data_dir / "catalog")
    return catalog, Engine(catalog, data_dir, Cfg())


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    catalog, eng = open_engine(tmp_path / "data")
    catalog.put(Namespace("app"))
    yield eng
    eng.close()
    catalog.close()


Run = Callable[..., Any]


def runner(engine: Engine) -> Run:
    """`run(sql)`: a DML statement through `Engine.execute`, anything else through
    `Engine.query` (rows as dicts)."""
    def run(text: str, user: str | None = None, namespace: str | None = "app") -> Any:
        e = sqlglot.parse_one(text, read="duckdb")
        if isinstance(e, exp.Insert | exp.Update | exp.Delete):
            return engine.execute(e, user, namespace)
        return engine.query(e, user, namespace).to_pylist()

    return run


@pytest.fixture
def run(engine: Engine) -> Run:
    return runner(engine)
