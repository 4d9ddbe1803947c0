"""Hostile backup targets (issue 11): the campaign of `bench/bench_fuzz_targets.py`
with every kind of case once (and a seeded draw on top), against a real aiohttp
server in-process. For each crafted target (config, key file, lock and prune
marker fields; archives with extra, link, duplicate, unordered or badly named
members; a symlink for every internal folder and for single files; a damaged
newest backup beside an older one) VERIFY and RESTORE agree, a refusal is 422
(403 for links), nothing is installed, no file outside the roots is created,
changed or deleted, and a control INSERT and a SELECT of every system table
succeed afterwards. Targets nested in another repository's internal folders are
refused (403) and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.bench_fuzz_targets import case_list, run_campaign
from server.config import Config
from tests.helpers import sql

SEED = 11
EXTRA = 6  # seeded draws beyond one case of each kind


async def test_hostile_targets(client: Any, cairn_config: Config, tmp_path: Path) -> None:
    async def run(text: str) -> tuple[int, dict[str, Any]]:
        return await sql(client, text)

    cases = len(case_list()) + EXTRA
    campaign = await run_campaign(run, Path(cairn_config.backup.roots[0]), tmp_path / "outside",
                                  cases, SEED)
    print("\n" + campaign.table())
    counts = campaign.counts()
    print(counts)
    problems = campaign.problems()
    assert not problems, "\n".join(problems)
    assert counts["500s"] == 0 and counts["crafted"] == cases + 5
    # Both outcomes occur: the harmless changes restore, the hostile ones are refused.
    assert 0 < counts["refused"] < counts["crafted"]
