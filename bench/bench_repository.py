"""Throughput of the backup repository against plain `cp` + `sha256sum`.

    python bench/bench_repository.py [--mb 512] [--files 16] [--dir /tmp]

Writes N MB of random files, then times: the first put (durable: fsync per object),
the first put without fsync, a second put that rehashes (dedup, nothing written), a
second put with known sha256 (stat only), verify, and reading every object back
with checks; and, on the same files in the same run, `cp`, `cp` + `sync`,
`sha256sum`. Page cache is warm throughout (dropping it would disturb the machine); dirty pages
are flushed with sync(2) before each step. Use --rounds to repeat and take the median.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.manifests import backup_doc, table_entry
from storage.backup import Repository, resolve_target


def make_sources(where: Path, total_mb: int, count: int) -> list[tuple[str, str, int]]:
    """Random files (path, sha256, size) adding up to `total_mb`."""
    where.mkdir(parents=True)
    size = total_mb * 1024 * 1024 // count
    rng = random.Random(42)
    out = []
    for i in range(count):
        path = where / f"part-{i:04d}.parquet"
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            left = size
            while left:
                block = rng.randbytes(min(left, 4 * 1024 * 1024))
                digest.update(block)
                f.write(block)
                left -= len(block)
        out.append((str(path), digest.hexdigest(), size))
    return out


def timed(
    label: str, nbytes: int, fn: Callable[[], object], rows: list[tuple[str, float, float]]
) -> None:
    """Time `fn` after flushing dirty pages, so no step pays for the previous one's writeback."""
    os.sync()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    rows.append((label, seconds, nbytes / seconds / 1e6))


def one_round(scratch: Path, sources: list[tuple[str, str, int]]) -> list[tuple[str, float, float]]:
    """Every measurement once, on fresh repositories."""
    rows: list[tuple[str, float, float]] = []
    total = sum(size for _, _, size in sources)
    shutil.rmtree(scratch / "backups", ignore_errors=True)
    roots = [str(scratch / "backups")]
    durable = Repository(resolve_target("durable", roots, {}))
    fast = Repository(resolve_target("nofsync", roots, {}), durable=False)

    def put_all(repo: Repository, with_sha: bool = False) -> None:
        for path, sha, size in sources:
            repo.put_file(path, sha256=sha if with_sha else None, size=size if with_sha else None)

    timed("put, first time (fsync)", total, lambda: put_all(durable), rows)
    timed("put, first time (no fsync)", total, lambda: put_all(fast), rows)
    timed("put again, rehash (dedup)", total, lambda: put_all(durable), rows)
    timed("put again, sha known (stat only)", total, lambda: put_all(durable, True), rows)

    unique = list({s: n for _, s, n in sources}.items())
    durable.write_manifest(backup_doc("bench", "bench", [
        table_entry("t", [{"oid": s, "size": n} for s, n in unique])]))

    def verify() -> None:
        # The sources are random bytes, not Parquet: the objects' sizes and
        # sha256 only (VERIFY BACKUP also checks each file's Parquet footer
        # against its entry, which random bytes fail).
        report = durable.verify("bench", contents=False)
        assert report.is_valid, report

    timed("verify (objects: size, sha256)", total, verify, rows)

    restore = scratch / "restore"
    shutil.rmtree(restore, ignore_errors=True)
    restore.mkdir()

    def read_back() -> None:
        for _, sha, size in sources:
            durable.read_object_to(sha, str(restore / sha), size)

    timed("read back (checked)", total, read_back, rows)

    files = [p for p, _, _ in sources]
    cp_dst = scratch / "cp"

    def cp(sync: bool) -> None:
        shutil.rmtree(cp_dst, ignore_errors=True)
        cp_dst.mkdir()
        subprocess.run(["cp", *files, str(cp_dst)], check=True)
        if sync:
            subprocess.run(["sync", *[str(cp_dst / Path(f).name) for f in files]], check=True)

    def sha256sum() -> None:
        subprocess.run(["sha256sum", *files], check=True, capture_output=True)

    timed("cp", total, lambda: cp(False), rows)
    timed("cp + sync", total, lambda: cp(True), rows)
    timed("sha256sum", total, sha256sum, rows)

    def cp_and_sha256sum() -> None:
        cp(False)
        sha256sum()

    timed("cp + sha256sum", total, cp_and_sha256sum, rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=512, help="total size of the source files")
    parser.add_argument("--files", type=int, default=16, help="number of source files")
    parser.add_argument("--rounds", type=int, default=3, help="repeat and report the median")
    parser.add_argument("--dir", default=None, help="scratch directory (default: $TMPDIR)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="cairn-bench-", dir=args.dir))
    try:
        sources = make_sources(scratch / "src", args.mb, args.files)
        rounds = [one_round(scratch, sources) for _ in range(args.rounds)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    total = sum(size for _, _, size in sources)
    print(f"{args.mb} MB in {args.files} files, {os.cpu_count()} CPUs, warm page cache, ", end="")
    print(f"median of {args.rounds} rounds")
    print(f"{'operation':<32}{'seconds':>10}{'MB/s':>10}")
    for i, (label, _, _) in enumerate(rounds[0]):
        seconds = statistics.median(r[i][1] for r in rounds)
        print(f"{label:<32}{seconds:>10.3f}{total / seconds / 1e6:>10.0f}")


if __name__ == "__main__":
    main()
