"""A backed-up file's rows must be row versions Cairn could have written: no
NULL in its own NOT NULL columns (`_ow`, `_deleted`, `_updated`), no two rows of
one row version (`_seq`: each row Cairn writes takes its own), no key with two
first versions (`_ow` false: every later version of a key is marked `_ow`),
and key values that do not decode to far more than the file holds. Each was
restored before (a NULL `_deleted` hid its key from SELECT while INSERT found
it; a key with two first versions was two rows of one PRIMARY KEY; a 13 KB
file of one 1 MiB key took 8.7 GB to check). VERIFY and RESTORE refuse with
the same message, and install nothing (tests/proof/manifest_fuzz.run_case)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from server.config import Config
from tests.helpers import sql
from tests.proof.manifest_fuzz import make_backups, read_doc, run_case, write_case
from tests.proof.test_backup_contents import _parquet, _swap


async def _messages(client: Any, root: Path, backup_id: str, doc: dict[str, Any],
                    objects: dict[str, bytes], n: int) -> tuple[str, str]:
    """VERIFY's and RESTORE's word on the plain target crafted as `doc`."""
    target = write_case(root, "plain", f"msg-{n}", backup_id, doc)
    for oid, data in objects.items():
        (root / target / "objects" / oid[:2]).mkdir(exist_ok=True)
        (root / target / "objects" / oid[:2] / oid).write_bytes(data)
    status, body = await sql(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'")
    assert status == 200, body
    verdict = body["results"][0]["rows"][0]
    verify = "" if verdict["is_valid"] else "; ".join(map(str, verdict["errors"]))
    status, body = await sql(client, f"RESTORE DATABASE app FROM '{target}' AS m{n} "
                                     f"WITH (backup_id = '{backup_id}')")
    restore = "" if status == 200 else body["error"]["message"]
    if status == 200:
        status, body = await sql(client, f"DROP NAMESPACE m{n} CASCADE")
        assert status == 200, body
    return verify, restore


async def _source(client: Any, cairn_config: Config) -> tuple[str, dict[str, Any], pa.Table]:
    """The plain backup's id, its manifest, and the rows of its first file of
    `items` (ids 1 and 2, the first version of each)."""
    root = Path(cairn_config.backup.roots[0])
    backup_id = (await make_backups(client))["plain"]
    doc = read_doc(root, "plain", backup_id)
    entry = next(t for t in doc["tables"] if t["name"] == "items")["files"][0]
    rows = pq.read_table(root / "src-plain" / "objects" / entry["oid"][:2] / entry["oid"])
    assert rows["id"].to_pylist() == [1, 2] and rows["_ow"].to_pylist() == [False, False]
    return backup_id, doc, rows


async def _check(client: Any, cairn_config: Config, backup_id: str, doc: dict[str, Any],
                 variants: dict[str, tuple[pa.Table | bytes, str]],
                 controls: dict[str, pa.Table | bytes], first: int) -> None:
    """Each variant refused by VERIFY and RESTORE with a message holding its
    text; each control restored."""
    root = Path(cairn_config.backup.roots[0])
    data_dir = Path(cairn_config.storage.data_dir)
    cases = {**{w: t for w, (t, _) in variants.items()}, **controls}
    for i, (what, table) in enumerate(cases.items()):
        data = table if isinstance(table, bytes) else _parquet(table)
        crafted, oid = _swap(doc, "items", data)
        outcome = await run_case(client, root, data_dir, "plain", backup_id, what, crafted,
                                 first + i, objects={oid: data})
        assert outcome.refused == (what in variants), (what, outcome)
        if what in variants:
            verify, restore = await _messages(client, root, backup_id, crafted,
                                              {oid: data}, first + i)
            assert variants[what][1] in verify and verify in restore, (what, verify, restore)


def _with(table: pa.Table, name: str, values: list[Any]) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


async def test_nulls_in_cairns_own_columns_are_refused(client: Any, cairn_config: Config) -> None:
    backup_id, doc, original = await _source(client, cairn_config)
    variants = {
        f"NULL {name}": (_with(original, name, [original[name][0].as_py(), None]),
                         f"holds NULL {name} values")
        for name in ("_deleted", "_ow", "_updated")
    }
    await _check(client, cairn_config, backup_id, doc, variants, {"unchanged": original}, 300)


async def test_a_commit_time_past_the_year_9999_is_named(
    client: Any, cairn_config: Config
) -> None:
    """An `_updated` of 2^63-1 µs (year 294247: a write refuses any date or
    time past 9999) was refused as "cannot be read (OverflowError)"; the
    archive's replay refuses it with the same words (test_replayed_rows.py)."""
    backup_id, doc, original = await _source(client, cairn_config)
    at = original.schema.get_field_index("_updated")
    times = original["_updated"].cast(pa.int64()).to_pylist()
    late = pa.array([2**63 - 1, times[1]], pa.int64()).view(original.schema.field(at).type)
    variants = {"_updated of 2^63-1": (original.set_column(at, original.schema.field(at), late),
                                       "holds a value of column '_updated' outside the years "
                                       "1-9999, which no TIMESTAMP column stores")}
    await _check(client, cairn_config, backup_id, doc, variants, {}, 340)


async def test_two_rows_of_one_key_or_version_are_refused(
    client: Any, cairn_config: Config
) -> None:
    backup_id, doc, original = await _source(client, cairn_config)
    seq = original["_seq"].to_pylist()
    variants = {
        "key 1 twice, both first versions": (
            _with(original, "id", [1, 1]), "first versions (_ow false) of one key (id = 1)"),
        "two newest versions of key 1": (
            _with(_with(_with(original, "id", [1, 1]), "_seq", [seq[0]] * 2), "_ow", [True] * 2),
            f"two rows of one row version (_seq {seq[0]})"),
        "two keys of one row version": (
            _with(original, "_seq", [seq[1]] * 2), f"(_seq {seq[1]})"),
    }
    controls = {"later versions of key 1": _with(_with(original, "id", [1, 1]), "_ow",
                                                [False, True])}
    await _check(client, cairn_config, backup_id, doc, variants, controls, 320)


async def test_what_cairn_writes_passes(client: Any, cairn_config: Config) -> None:
    """Versions of keys deleted, inserted again and updated, in flushed files
    and in the buffer a backup writes: valid, restored, the same rows."""
    script = """
        CREATE NAMESPACE v;
        CREATE TABLE v.t (k TEXT PRIMARY KEY, n INT);
        CREATE USER TABLE v.u (k BIGINT PRIMARY KEY, n INT);
        INSERT INTO v.t VALUES ('a', 1), ('b', 2), ('c', 3);
        DELETE FROM v.t WHERE k = 'a';
        INSERT INTO v.t VALUES ('a', 4);
        UPDATE v.t SET n = n + 1;
        UPDATE v.t SET n = n + 1 WHERE k = 'b';
        FLUSH TABLE v.t;
        DELETE FROM v.t WHERE k = 'b';
        INSERT INTO v.t VALUES ('b', 9);
        UPDATE v.t SET n = n + 10 WHERE k = 'c';
    """
    status, body = await sql(client, script)
    assert status == 200, body
    for user in ("u1", "u2"):
        status, body = await sql(client, "INSERT INTO v.u VALUES (1, 1), (2, 2); "
                                         "DELETE FROM v.u WHERE k = 1; "
                                         "INSERT INTO v.u VALUES (1, 3); "
                                         "UPDATE v.u SET n = 5 WHERE k = 2", user=user)
        assert status == 200, body
    status, body = await sql(client, "BACKUP DATABASE v TO 'versions'")
    assert status == 200, body
    backup_id = body["results"][0]["rows"][0]["backup_id"]
    status, body = await sql(client, f"VERIFY BACKUP '{backup_id}' IN 'versions'")
    assert status == 200 and body["results"][0]["rows"][0]["is_valid"], body
    status, body = await sql(client, "RESTORE DATABASE v FROM 'versions' AS w")
    assert status == 200, body
    status, body = await sql(client, "SELECT k, n FROM w.t ORDER BY k")
    assert status == 200, body
    assert body["results"][0]["rows"] == [{"k": "a", "n": 5}, {"k": "b", "n": 9},
                                          {"k": "c", "n": 14}]
