"""What counting a backup's live rows costs (storage/live_rows.py): a table of
N rows in 4 zstd Parquet files plus one file of N/10 overwriting versions (half
of them deletes), counted 3 times; and the same table with no overwrites.

    python bench/bench_live_rows.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.live_rows import count


def table(ids: range, seq0: int, ow: bool, deleted: bool | None) -> pa.Table:
    n = len(ids)
    return pa.table({
        "id": pa.array(ids, pa.int64()), "v": pa.array(["x" * 20] * n),
        "_seq": pa.array(range(seq0, seq0 + n), pa.int64()), "_ow": pa.array([ow] * n),
        "_deleted": pa.array([(i % 2 == 0) if deleted is None else deleted for i in range(n)]),
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    n = ap.parse_args().rows
    d = Path(tempfile.mkdtemp())
    base = []
    for i in range(4):
        part = range(i * n // 4, (i + 1) * n // 4)
        p = d / f"f{i}.parquet"
        pq.write_table(table(part, part.start, False, False), p, compression="zstd")
        base.append(p)
    upd = d / "u.parquet"
    pq.write_table(table(range(0, n, 10), n, True, None), upd, compression="zstd")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, paths in (("no overwrites", base), ("10% overwritten, half deleted", [*base, upd])):
        for _ in range(3):
            t0 = time.perf_counter()
            live = count([paths], ["id"])
            print(f"{name}: {live} live rows of {n} keys in {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
