"""Hostile manifests (issue 11): real backups of every kind whose manifests are
mutated field by field and re-sealed with a valid checksum. For each: VERIFY and
RESTORE agree, a refusal is 422 BACKUP_INVALID that installs nothing and fails
its job, and the server keeps answering INSERTs and system-table SELECTs.
A seeded sample here; `python bench/bench_fuzz_manifests.py` runs them all."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from tests.proof.manifest_fuzz import all_cases, make_backups, read_doc, run_case

SEED = 20261201
SAMPLE = 60
NEWER_FIELDS = ("live_rows",)
NEWER_SAMPLE = 12


@pytest.mark.timeout(600)  # ~40 s alone; a loaded 2-CPU CI box needs more
async def test_mutated_manifests_are_refused_or_restored_whole(
    client: Any, cairn_config: Config
) -> None:
    root = Path(cairn_config.backup.roots[0])
    data_dir = Path(cairn_config.storage.data_dir)
    ids = await make_backups(client)
    docs = {kind: read_doc(root, kind, backup_id) for kind, backup_id in ids.items()}
    cases = all_cases(docs)
    assert len(cases) > 1000
    # The sample of the fields that existed when it was chosen stays the same;
    # each field added since gets its own (newer fields would shift it).
    newer = [c for c in cases if any(f in c[1] for f in NEWER_FIELDS)]
    older = [c for c in cases if c not in newer]
    sample = random.Random(SEED).sample(older, SAMPLE)
    sample += random.Random(SEED).sample(newer, NEWER_SAMPLE)
    refused = 0
    for n, (kind, description, doc) in enumerate(sample):
        outcome = await run_case(client, root, data_dir, kind, ids[kind], description, doc, n)
        refused += outcome.refused
    # Most mutations break the manifest; a few (a label, a name) leave a valid one.
    assert refused > SAMPLE // 2


async def test_an_object_no_file_uses_is_refused_by_verify_and_restore_alike(
    client: Any, cairn_config: Config
) -> None:
    """VERIFY reads every listed object and RESTORE only those files name, so an
    extra listed object (missing from the target) once made them disagree."""
    root = Path(cairn_config.backup.roots[0])
    data_dir = Path(cairn_config.storage.data_dir)
    ids = await make_backups(client)
    docs = {kind: read_doc(root, kind, backup_id) for kind, backup_id in ids.items()}
    cases = [c for c in all_cases(docs) if c[1] == "objects + an object no file uses"]
    assert sorted(kind for kind, _, _ in cases) == sorted(docs)
    for n, (kind, description, doc) in enumerate(cases):
        outcome = await run_case(client, root, data_dir, kind, ids[kind], description, doc, n)
        assert outcome.refused, (kind, outcome)
