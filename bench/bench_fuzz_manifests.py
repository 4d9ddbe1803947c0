"""Every crafted repository of the manifest fuzzer (tests/proof/manifest_fuzz.py):
real backups (plain, zstd, encrypted, .tar archive) whose manifests are mutated
field by field and re-sealed with a valid checksum, each then VERIFYed and
RESTOREd through an in-process server. Prints the counts that
docs/reliability.md quotes ("Hostile inputs"); exits 1 on any broken promise
(VERIFY and RESTORE disagreeing, a 500, anything installed by a refused
restore, a control INSERT or system-table SELECT failing).

    python bench/bench_fuzz_manifests.py [--limit N] [--seed S] [--match TEXT]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from server.app import create_app  # noqa: E402
from server.config import Config  # noqa: E402
from tests.proof.manifest_fuzz import all_cases, make_backups, read_doc, run_case  # noqa: E402


async def main(limit: int | None, seed: int, match: str | None = None) -> int:
    work = Path(tempfile.mkdtemp(prefix="cairn-fuzz-"))
    cfg = Config()
    cfg.storage.data_dir = str(work / "data")
    cfg.backup.roots = [str(work / "backups")]
    root, data_dir = Path(cfg.backup.roots[0]), Path(cfg.storage.data_dir)
    counts: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()
    try:
        async with TestClient(TestServer(create_app(cfg))) as client:
            ids = await make_backups(client)
            docs = {kind: read_doc(root, kind, bid) for kind, bid in ids.items()}
            cases = all_cases(docs)
            random.Random(seed).shuffle(cases)
            if match is not None:
                cases = [c for c in cases if match in c[1]]
            if limit is not None:
                cases = cases[:limit]
            for n, (kind, description, doc) in enumerate(cases):
                counts["cases"] += 1
                counts[f"cases {kind}"] += 1
                try:
                    outcome = await run_case(client, root, data_dir, kind, ids[kind],
                                             description, doc, n)
                except AssertionError as exc:
                    failures.append(f"[{kind}] {description}: {exc}")
                    counts["failures"] += 1
                    continue
                counts["refused (422, both)" if outcome.refused else "restored (both valid)"] += 1
                counts["500s"] += sum(s >= 500 for s in outcome.statuses)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    print(f"manifest fuzz: seed {seed}, {seconds:.0f} s")
    for key in ("cases", "cases plain", "cases zstd", "cases enc", "cases arch.tar",
                "refused (422, both)", "restored (both valid)", "500s", "failures"):
        print(f"  {key:<24} {counts[key]}")
    for f in failures[:20]:
        print("FAIL", f[:400])
    return 1 if failures or counts["500s"] else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="run only N cases")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--match", default=None,
                        help="only the cases whose description contains this text")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.limit, args.seed, args.match)))
