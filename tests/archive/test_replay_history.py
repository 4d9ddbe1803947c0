"""Replayed ALTERs are checked one version at a time (storage/archive/history.py).

Each replayed ALTER checked the table's whole schema history again (every
version's columns, re-converted): a window of V versions visited ~V^2/2
versions, 20-29 s for a RESTORE ... WITH (as_of) of 800 versions and 26-39 s
for VERIFY ARCHIVE (bench/bench_replay_alters.py). Now each new version is
visited once, and a history check_table refuses is still refused with
check_table's own message."""

from __future__ import annotations

import copy
import json
from typing import Any

import pyarrow as pa
import pytest

from catalog.errors import BackupInvalid
from storage.archive import replay
from storage.archive.blocks import Rows
from storage.archive.changes import ALTER, Change
from storage.backup import schema
from storage.schema import system_column

AT = "2026-12-01T00:00:00+00:00"


def column(name: str, since: int, typ: str = "INT", key: bool = False) -> dict[str, Any]:
    return {"name": name, "type": typ, "params": [], "not_null": key, "primary_key": key,
            "has_default": False, "default": None, "system": False, "since": since}


def version(v: int, *extra: dict[str, Any]) -> dict[str, Any]:
    return {"version": v, "created_at": AT, "columns": [
        column("id", 1, "BIGINT", key=True), *extra,
        system_column("_updated"), system_column("_deleted")]}


def table() -> dict[str, Any]:
    return {"name": "t", "table_type": "shared", "schema_version": 1, "primary_key": ["id"],
            "options": {}, "created_at": AT, "schemas": [version(1)], "files": [], "rows": 0,
            "max_seq": 0}


def alter(lsn: int, schema: dict[str, Any]) -> Change:
    doc = {"table": {"name": "t", "table_type": "shared", "schema_version": schema["version"],
                     "primary_key": ["id"], "options": {}, "created_at": AT},
           "schema": schema}
    return Change(lsn, 1_000_000 + lsn, ALTER, "t", json.dumps(doc).encode())


def add_drop(n: int) -> list[dict[str, Any]]:
    """Versions 2..n+1: column c<i> added (at an even version), dropped at the next."""
    out = []
    for v in range(2, n + 2):
        out.append(version(v, column(f"c{v}", v)) if v % 2 == 0 else version(v))
    return out


def rows_at(v: int, first: int) -> Rows:
    n = 2
    rows = pa.table({"_seq": pa.array(range(first, first + n), pa.int64()),
                     "_ow": pa.array([False] * n),
                     "id": pa.array(range(first, first + n), pa.int64()),
                     **({f"c{v}": pa.array([7] * n, pa.int32())} if v % 2 == 0 else {}),
                     "_updated": pa.array([1_000_000] * n, pa.timestamp("us")),
                     "_deleted": pa.array([False] * n)})
    strict = pa.schema([pa.field(f.name, f.type, nullable=f.name.startswith("c"))
                        for f in rows.schema])
    return Rows("t", v, None, [first], [1_000_000 + first], [0, n], rows.cast(strict))


def test_each_replayed_alter_visits_one_schema_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """60 ALTERs (30 ADD / DROP COLUMN pairs) with rows written under every
    other version: each version's columns are checked once (the base's when
    its first ALTER comes). Before: every ALTER visited every version again,
    and so did the rows of each new version (1,890 + 480 visits here)."""
    visits: list[str] = []
    real = schema._check_columns

    def counted(where: str, t: schema.TableEntry, s: schema.SchemaEntry) -> None:
        visits.append(where)
        real(where, t, s)

    monkeypatch.setattr(schema, "_check_columns", counted)
    n = 60
    changes: list[Any] = []
    for i, s in enumerate(add_drop(n)):
        changes.append(alter(10 + 10 * i, s))
        if s["version"] % 4 == 0:
            changes.append(rows_at(s["version"], 10 + 10 * i + 1))
    out = replay.replay([table()], [("s", changes)], "x")["t"]
    assert out.entry["schema_version"] == n + 1
    assert [s["version"] for s in out.entry["schemas"]] == list(range(1, n + 2))
    assert len(out.batches) == n // 4
    assert len(visits) <= n + 1, len(visits)
    schema.check_table(out.entry)  # what the replay kept is a table check_table takes


def forged(*versions: dict[str, Any]) -> list[dict[str, Any]]:
    return list(versions)


CASES = {
    # version 4 says x has been there since version 2; versions 2 and 3 lack it
    "since_before_it_was_added": forged(
        version(2, column("a", 2)), version(3), version(4, column("x", 2))),
    # x of version 2 was INT; version 3's x (since 2) is TEXT
    "since_with_another_type": forged(
        version(2, column("x", 2)), version(3, column("x", 2, "TEXT"))),
    # x dropped at version 3, back at 4 claiming its old since
    "dropped_and_back_with_its_old_since": forged(
        version(2, column("x", 2)), version(3), version(4, column("x", 2))),
    # a column after its version, a key column that is not NOT NULL, an unknown type
    "since_after_the_version": forged(version(2, column("x", 3))),
    "key_not_null": forged(version(2, {**column("id", 1, "BIGINT", key=True),
                                       "not_null": False})),
    "unknown_type": forged(version(2, column("x", 2, "BOGUS"))),
    "no_time_zone": forged({**version(2), "created_at": "2026-12-01T00:00:00"}),
    "field_of_the_wrong_type": forged(version(2, {**column("x", 2), "params": ["a"]})),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_history_check_table_refuses_is_refused_with_its_message(case: str) -> None:
    versions = CASES[case]
    whole = copy.deepcopy(table())
    whole["schemas"] += copy.deepcopy(versions)
    whole["schema_version"] = versions[-1]["version"]
    with pytest.raises(BackupInvalid) as expected:
        schema.check_table(whole)
    changes = [alter(10 * (i + 1), s) for i, s in enumerate(versions)]
    with pytest.raises(BackupInvalid) as got:
        replay.replay([table()], [("seg", changes)], "x")
    last = changes[-1].lsn
    assert got.value.message == (f"x: segment seg: change {last} (alter_table t) is corrupt: "
                                 f"{expected.value.message}")


def test_a_column_kept_through_versions_replays() -> None:
    """x since 2, in every version from 2 on as INT: taken (the counting
    agrees with check_table both ways)."""
    versions = [version(2, column("x", 2)), version(3, column("x", 2), column("y", 3)),
                version(5, column("x", 2)), version(6, column("x", 2), column("y", 6, "TEXT"))]
    out = replay.replay([table()], [("s", [alter(10 * (i + 1), s)
                                           for i, s in enumerate(versions)])], "x")["t"]
    assert out.entry["schema_version"] == 6
    schema.check_table(out.entry)
