"""`_deleted` is named in any case, quoted or not (DuckDB folds both): a WHERE
naming `_DELETED` or `"_Deleted"` lists the deleted rows as `_deleted` does."""

from __future__ import annotations

import pytest

from storage.engine import Engine

from .conftest import Run, col


@pytest.mark.parametrize("name", ["_deleted", "_DELETED", '"_Deleted"', '"_DELETED"', "_Deleted"])
def test_deleted_named_in_any_case(engine: Engine, run: Run, name: str) -> None:
    engine.create_table("app", "a", "shared", [col("k", primary_key=True), col("v")])
    engine.create_table("app", "arch", "shared", [col("k", primary_key=True), col("v")])
    run("INSERT INTO app.a VALUES (1, 1), (2, 2)")
    run("DELETE FROM app.a WHERE k = 2")
    assert run(f"SELECT k FROM app.a WHERE {name} = true") == [{"k": 2}]
    assert run(f"SELECT k FROM app.a WHERE {name}") == [{"k": 2}]
    assert run(f"SELECT k FROM app.a WHERE k = 2 AND {name}") == [{"k": 2}]
    assert run(f"INSERT INTO app.arch SELECT k, v FROM app.a WHERE {name}") == 1
    assert run("SELECT k, v FROM app.arch") == [{"k": 2, "v": 2}]
