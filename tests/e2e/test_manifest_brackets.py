"""Brackets inside a manifest's strings are no JSON objects or arrays.

The reader's density check (`records.dense_problem`) counted every `{` and
`[` byte, those in strings too: a label BACKUP accepts (65,536 `[`), or a
JSON DEFAULT CREATE TABLE accepts (a 60 KB `[[0,0],…]`, repeated in every
schema version) made a manifest BACKUP wrote and reported `completed`, which
SHOW BACKUPS then listed as corrupt and RESTORE refused (422 BACKUP_INVALID),
while VERIFY in the writing process (its checked-manifest cache) said valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog.errors import InvalidArgument
from server.config import Config
from storage.backup import envelope
from storage.backup.records import JSON_DENSITY, deep_problem, dense_problem
from tests.helpers import ok, rows

PAIRS = "[" + ",".join(["[0,0]"] * 10_000) + "]"  # one `[` per 6 bytes, 60 KB
LABEL = "[" * 65_536  # as long as a label may be
OPTIONS = {"zstd": "", "plain": ", compression = 'none'",
           "enc": ", encryption_passphrase = 'brackets in strings'"}


@pytest.mark.parametrize("kind", sorted(OPTIONS))
async def test_a_backup_of_bracketed_strings_is_read_back_whole(
    client: Any, cairn_config: Config, kind: str
) -> None:
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, f"CREATE TABLE app.t (k TEXT PRIMARY KEY, j JSON DEFAULT '{PAIRS}')")
    await ok(client, "INSERT INTO app.t (k) VALUES ('{{{{[[[['), ('[[[[{{{{')")
    await ok(client, "FLUSH TABLE app.t")
    await ok(client, f"ALTER TABLE app.t ADD COLUMN j2 JSON DEFAULT '{PAIRS}'")
    await ok(client, "INSERT INTO app.t (k) VALUES ('[{[{[{')")
    made = await rows(client, f"BACKUP DATABASE app TO '{kind}' WITH (label = '{LABEL}'"
                              f"{OPTIONS[kind]})")
    assert made[0]["status"] == "completed", made
    backup_id = made[0]["backup_id"]
    # What any reader checks, without the writer's cache of what it wrote
    data = (Path(cairn_config.backup.roots[0]) / kind / "manifests"
            / f"{backup_id}.json").read_bytes()
    assert dense_problem(data) is None and deep_problem(data) is None
    if kind != "enc":
        assert envelope.unpack(data, backup_id, lambda _: None)["label"] == LABEL
    secret = f" WITH ({OPTIONS[kind][2:]})" if kind == "enc" else ""
    listed = await rows(client, f"SHOW BACKUPS IN '{kind}'")
    assert [(r["backup_id"], r["error"]) for r in listed] == [(backup_id, None)], listed
    verdict = await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{kind}'{secret}")
    assert verdict[0]["is_valid"] is True, verdict
    back = await rows(client, f"RESTORE DATABASE app FROM '{kind}' AS copy{secret}")
    assert back[0]["status"] == "completed", back
    query = "SELECT k, j::TEXT AS j, j2::TEXT AS j2 FROM {}.t ORDER BY k"
    assert await rows(client, query.format("copy")) == await rows(client, query.format("app"))


def test_brackets_in_strings_are_not_counted_and_real_ones_are() -> None:
    assert dense_problem(b'{"label":"' + b"[" * 1_000_000 + b'"}') is None
    assert dense_problem(b'["' + b'\\"[{' * 100_000 + b'"]') is None  # escaped quotes
    assert dense_problem(b'["a\\\\",' + b"[]," * 100_000 + b"[]]") is not None  # `\\` ends it
    hostile = b"[" + b"{}," * 100_000 + b"{}]"
    assert dense_problem(hostile) is not None
    mixed = b'["' + b"[" * 300_000 + b'",' + b"{}," * 100_000 + b"{}]"
    assert dense_problem(mixed) is not None
    assert len(mixed) // JSON_DENSITY < 100_000


@pytest.mark.parametrize("compress", [False, True])
def test_a_manifest_its_readers_would_refuse_is_not_written(compress: bool) -> None:
    """The writer's side of the same rule: a manifest (or body) its readers
    would call corrupt for density or depth is INVALID_ARGUMENT at BACKUP,
    before it is stored (and before the writer's cache vouches for it)."""
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    doc = {"backup_id": "bk-deep", "features": ["zstd"] if compress else [], "tables": [],
           "objects": [], "x": deep}
    with pytest.raises(InvalidArgument, match="its readers would refuse it"):
        envelope.pack(doc, compress, None)
