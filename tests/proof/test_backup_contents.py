"""A file's bytes match their sha256 and still are not the file the manifest
describes (issue 11: everything read back from a target is hostile). Whoever can
write a target can rename a column in a manifest and re-seal it, or store a
Parquet file of other rows under a fresh, valid sha256. VERIFY must call each
such backup invalid and RESTORE must refuse it with 422, installing nothing
(storage/backup/contents.py; the fuzzer found the renamed column: a restore
that succeeded and left a table no SELECT could read)."""

from __future__ import annotations

import copy
import hashlib
import io
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq

from server.config import Config
from tests.proof.manifest_fuzz import KINDS, all_cases, make_backups, read_doc, run_case


def _swap(doc: dict[str, Any], table: str, data: bytes) -> tuple[dict[str, Any], str]:
    """`doc` whose first file of `table` is now `data` (a raw object), every
    size, list and total made consistent so only the content can be wrong."""
    doc = copy.deepcopy(doc)
    t = next(t for t in doc["tables"] if t["name"] == table)
    old = t["files"][0]
    oid = hashlib.sha256(data).hexdigest()
    used = [f["oid"] for tt in doc["tables"] for f in tt["files"]]
    assert used.count(old["oid"]) == 1  # so its object goes with it
    stored = next(o for o in doc["objects"] if o["oid"] == old["oid"])
    delta, object_delta = len(data) - old["size"], len(data) - stored["size"]
    doc["objects"] = sorted([o for o in doc["objects"] if o is not stored]
                            + [{"oid": oid, "size": len(data)}], key=lambda o: o["oid"])
    old.update(oid=oid, size=len(data))
    old.pop("sha256", None)
    doc["totals"]["bytes"] += delta
    doc["totals"]["object_bytes"] += object_delta
    doc["totals"]["objects"] = len(doc["objects"])
    return doc, oid


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _forged(table: pa.Table, column: str, claimed: tuple[Any, Any]) -> bytes:
    """`table` as Parquet whose footer says `column` holds `claimed` (min, max):
    the actual bounds' bytes patched in place (same length), as anyone who
    writes the target can. pyarrow reads the claim back."""
    data = bytearray(_parquet(table))
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    actual = (pa.compute.min(table[column]).as_py(), pa.compute.max(table[column]).as_py())

    def raw(v: Any) -> bytes:
        return v.encode() if isinstance(v, str) else struct.pack("<q", v)

    for was, now in dict(zip(actual, claimed, strict=True)).items():  # min may be max
        assert len(raw(was)) == len(raw(now)) and data.count(raw(was), start) >= 1
        data[start:] = data[start:].replace(raw(was), raw(now))
    out = bytes(data)
    stats = pq.read_metadata(pa.BufferReader(out)).row_group(0).column(
        table.schema.get_field_index(column)).statistics
    assert (stats.min, stats.max) == claimed
    return out


async def test_a_renamed_column_is_refused_by_verify_and_restore(
    client: Any, cairn_config: Config
) -> None:
    root = Path(cairn_config.backup.roots[0])
    data_dir = Path(cairn_config.storage.data_dir)
    ids = await make_backups(client)
    docs = {kind: read_doc(root, kind, backup_id) for kind, backup_id in ids.items()}
    cases = [c for c in all_cases(docs) if c[1].endswith(".name = 'system'")
             and ".columns[" in c[1]]
    assert {kind for kind, _, _ in cases} == set(KINDS)
    # run_case holds VERIFY and RESTORE to one verdict, and a restored namespace to
    # answering SELECT on every table. A rename in a schema version no file was
    # written under is harmless; `items` has files under both of its versions.
    refused = set()
    for n, (kind, description, doc) in enumerate(cases):
        outcome = await run_case(client, root, data_dir, kind, ids[kind], description, doc, n)
        if outcome.refused:
            refused.add((kind, description))
    names = [t["name"] for t in docs["plain"]["tables"]]
    items = names.index("items")
    must = {(k, d) for k, d, _ in cases if d.startswith(f"tables[{items}].")}
    assert len(must) >= 4 * 5 and must <= refused, sorted(must - refused)


async def test_a_column_dated_before_it_was_added_is_refused(
    client: Any, cairn_config: Config
) -> None:
    """`stock` was added in version 2; a manifest saying `since = 1` would make
    every query read it from version-1 files that do not hold it."""
    root = Path(cairn_config.backup.roots[0])
    data_dir = Path(cairn_config.storage.data_dir)
    ids = await make_backups(client)
    docs = {kind: read_doc(root, kind, backup_id) for kind, backup_id in ids.items()}
    names = [t["name"] for t in docs["plain"]["tables"]]
    items = docs["plain"]["tables"][names.index("items")]
    current = items["schemas"][-1]["columns"]
    stock = [c["name"] for c in current].index("stock")
    wanted = (f"tables[{names.index('items')}].schemas[{len(items['schemas']) - 1}]"
              f".columns[{stock}].since = 1")
    cases = [c for c in all_cases(docs) if c[1] == wanted]
    assert {kind for kind, _, _ in cases} == set(KINDS)
    for n, (kind, description, doc) in enumerate(cases):
        outcome = await run_case(client, root, data_dir, kind, ids[kind], description, doc, n)
        assert outcome.refused, (kind, description, outcome)


async def test_a_parquet_file_that_is_not_the_entry_is_refused(
    client: Any, cairn_config: Config
) -> None:
    root = Path(cairn_config.backup.roots[0])
    data_dir = Path(cairn_config.storage.data_dir)
    ids = await make_backups(client)
    doc = read_doc(root, "plain", ids["plain"])
    items = next(t for t in doc["tables"] if t["name"] == "items")
    entry = items["files"][0]
    original = pq.read_table(root / "src-plain" / "objects" / entry["oid"][:2] / entry["oid"])
    seq = original.schema.get_field_index("_seq")
    n = original.num_rows
    variants = {
        # rows that would overtake every later write (the 2^63 story, inside a file)
        "_seq beyond the entry": original.set_column(
            seq, "_seq", pa.array([entry["max_seq"] + 1000 + i for i in range(n)], pa.int64())),
        "a row fewer than the entry": original.slice(0, n - 1),
        "a key outside the entry's key_range": original.set_column(
            original.schema.get_field_index("id"), "id",
            pa.array([10_000 + i for i in range(n)], pa.int64())),
        "a column missing": original.remove_column(original.num_columns - 1),
        "a column of another type": original.set_column(
            original.num_columns - 1, original.schema[-1].name,
            pa.array([None] * n, pa.string())),
    }
    # the same file under a valid sha256 is accepted: the harness plants correctly
    controls = {"the same rows rewritten": original}
    for i, (what, table) in enumerate({**variants, **controls}.items()):
        crafted, oid = _swap(doc, "items", _parquet(table))
        outcome = await run_case(client, root, data_dir, "plain", ids["plain"], what, crafted,
                                 100 + i, objects={oid: _parquet(table)})
        assert outcome.refused == (what in variants), (what, outcome)

    # The same lies with the footer's statistics saying what the entry says:
    # they were read alone, so these were restored (a point lookup missed the
    # keys, an INSERT of one made a second row of it, an UPDATE found none).
    key_range = entry["key_range"]["id"]
    forged = {
        "_seq beyond the entry, statistics forged": _forged(
            variants["_seq beyond the entry"], "_seq", (entry["min_seq"], entry["max_seq"])),
        "keys outside the key_range, statistics forged": _forged(
            variants["a key outside the entry's key_range"], "id", tuple(key_range)),
    }
    for i, (what, data) in enumerate(forged.items()):
        crafted, oid = _swap(doc, "items", data)
        outcome = await run_case(client, root, data_dir, "plain", ids["plain"], what, crafted,
                                 200 + i, objects={oid: data})
        assert outcome.refused, (what, outcome)
    # An entry without a key_range: point lookups and DuckDB go by the
    # statistics themselves, so the keys must be within those too.
    crafted, oid = _swap(doc, "items", forged["keys outside the key_range, statistics forged"])
    next(t for t in crafted["tables"] if t["name"] == "items")["files"][0]["key_range"] = {}
    outcome = await run_case(client, root, data_dir, "plain", ids["plain"], "no key_range",
                             crafted, 210, objects={oid: forged[
                                 "keys outside the key_range, statistics forged"]})
    assert outcome.refused, outcome

    # A USER table's file of u1 holding rows of 'u2', its statistics saying u1.
    notes = next(t for t in doc["tables"] if t["name"] == "notes")
    mine = notes["files"][0]
    assert mine["user_id"] == "u1"
    theirs = pq.read_table(root / "src-plain" / "objects" / mine["oid"][:2] / mine["oid"])
    theirs = theirs.set_column(theirs.schema.get_field_index("_user"), "_user",
                               pa.array(["u2"] * theirs.num_rows, pa.string()))
    data = _forged(theirs, "_user", ("u1", "u1"))
    crafted, oid = _swap(doc, "notes", data)
    outcome = await run_case(client, root, data_dir, "plain", ids["plain"], "other user",
                             crafted, 220, objects={oid: data})
    assert outcome.refused, outcome
