"""An UPDATE or DELETE names one table, by name and an alias. sqlglot hangs a
JOIN, a comma's second table, TABLESAMPLE, time travel, ... on the target
table's node, not on the statement, so the statement's own refusals never saw
them: `UPDATE app.t AS x RIGHT JOIN range(2) r(i) ON false SET ...` stored
two rows with a NULL key ("2 rows updated"), a DELETE with a JOIN counted each
row once per joined row, and `UPDATE app.t, app.t AS y` wrote n² versions.
Each is INVALID_ARGUMENT now, naming the part, and writes nothing."""

from __future__ import annotations

import pyarrow as pa
import pytest

from catalog.errors import InvalidArgument
from storage import dml
from storage.engine import Engine

from .conftest import Run, col

ROWS = [{"id": 1, "v": 10}, {"id": 2, "v": 20}, {"id": 3, "v": 30}]

REFUSED = [
    ("UPDATE {t} AS x RIGHT JOIN range(2) r(i) ON false SET v = r.i", "UPDATE ... JOIN"),
    ("UPDATE {t} AS x LEFT JOIN app.o AS o ON o.id = x.id SET v = 0", "UPDATE ... JOIN"),
    ("UPDATE {t} CROSS JOIN range(3) r(i) SET v = 0", "UPDATE ... JOIN"),
    ("UPDATE {t}, {t} AS y SET v = 0", "UPDATE ... a second table after a comma"),
    ("UPDATE {t}, LATERAL (SELECT 1 AS one) s SET v = 0",
     "UPDATE ... a second table after a comma"),
    ("UPDATE {t} TABLESAMPLE (50 PERCENT) SET v = 0", "UPDATE ... TABLESAMPLE"),
    ("UPDATE ONLY {t} SET v = 0", "UPDATE ... ONLY"),
    ("UPDATE {t} WITH (NOLOCK) SET v = 0", "UPDATE ... WITH (hints)"),
    ("UPDATE {t} AT (TIMESTAMP => '2020-01-01') SET v = 0", "UPDATE ... AT / BEFORE"),
    ("DELETE FROM {t} AS x JOIN range(5) r(i) ON true WHERE x.id = 1", "DELETE ... JOIN"),
    ("DELETE FROM {t} AS x POSITIONAL JOIN app.o", "DELETE ... JOIN"),
    ("DELETE FROM {t}, app.o WHERE true", "DELETE ... a second table after a comma"),
    ("DELETE FROM {t} TABLESAMPLE (50 PERCENT)", "DELETE ... TABLESAMPLE"),
    ("DELETE FROM ONLY {t}", "DELETE ... ONLY"),
    ("DELETE FROM {t} FOR SYSTEM_TIME AS OF '2020-01-01'",
     "DELETE ... FOR SYSTEM_TIME / VERSION AS OF"),
    ("DELETE FROM {t} VERSION AS OF 3", "DELETE ... FOR SYSTEM_TIME / VERSION AS OF"),
    ("DELETE FROM {t} CHANGES (INFORMATION => DEFAULT)", "DELETE ... CHANGES"),
    ("DELETE FROM {t} WITH ORDINALITY", "DELETE ... WITH ORDINALITY"),
    ("DELETE x FROM {t} AS x", "DELETE ... TABLES"),
    ("UPDATE {t} SET v = 0 FROM app.o WHERE app.o.id = {t}.id", "UPDATE ... FROM"),
    ("DELETE FROM {t} USING app.o WHERE app.o.id = {t}.id", "DELETE ... USING"),
]


def _setup(engine: Engine, run: Run, kind: str) -> tuple[str, str | None]:
    engine.create_table("app", "t", kind, [col("id", primary_key=True, not_null=True),
                                           col("v")])
    engine.create_table("app", "o", "shared", [col("id", primary_key=True), col("v")])
    user = "alice" if kind == "user" else None
    run("INSERT INTO app.t VALUES (1, 10), (2, 20), (3, 30)", user=user)
    run("INSERT INTO app.o VALUES (1, 100)")
    return "app.t", user


@pytest.mark.parametrize("kind", ["shared", "user"])
@pytest.mark.parametrize("text,refused", REFUSED, ids=[t for t, _ in REFUSED])
def test_a_second_table_or_a_clause_on_the_target_is_refused(
        engine: Engine, run: Run, kind: str, text: str, refused: str) -> None:
    table, user = _setup(engine, run, kind)
    before = engine.state("app", "t").buffered_rows()
    with pytest.raises(InvalidArgument, match=f"^{refused.replace('(', '.').replace(')', '.')}"
                                              " is not supported"):
        run(text.format(t=table), user=user)
    assert engine.state("app", "t").buffered_rows() == before  # nothing written
    assert run("SELECT id, v FROM app.t ORDER BY id", user=user) == ROWS


def test_the_plain_forms_still_run(engine: Engine, run: Run) -> None:
    _setup(engine, run, "shared")
    assert run("UPDATE app.t AS x SET v = x.v + 1 WHERE x.id = 1") == 1
    assert run("UPDATE app.t x SET v = (SELECT o.v FROM app.o o WHERE o.id = x.id) "
               "WHERE EXISTS (SELECT 1 FROM app.o o WHERE o.id = x.id)") == 1
    assert run("UPDATE t SET v = 0 WHERE id IN (SELECT id + 1 FROM app.o)") == 1
    assert run("SELECT id, v FROM app.t ORDER BY id") == [
        {"id": 1, "v": 100}, {"id": 2, "v": 0}, {"id": 3, "v": 30}]
    assert run("DELETE FROM app.t WHERE id IN (SELECT id FROM app.o)") == 1
    assert run("DELETE FROM app.t AS x WHERE x.v = 30") == 1
    assert run("SELECT id, v FROM app.t ORDER BY id") == [{"id": 2, "v": 0}]


def test_new_versions_with_a_null_key_are_never_stored(engine: Engine, run: Run) -> None:
    # the write path's own check, whatever finds the rows (an UPDATE's rows found
    # through a join brought NULL keys here)
    _setup(engine, run, "shared")
    st = engine.state("app", "t")
    before = st.buffered_rows()
    data = {"id": pa.array([1, None], pa.int32()), "v": pa.array([7, 7], pa.int32()),
            "_deleted": pa.array([False, False])}
    with st.writing(), pytest.raises(InvalidArgument, match="'id' is part of the primary key "
                                                            "and would be NULL in 1 row"):
        dml._append(engine, st, data, 2, None, check_keys=False, overwrite=True)
    assert st.buffered_rows() == before
    assert run("SELECT id, v FROM app.t ORDER BY id") == ROWS
