"""What the once-a-data-directory NaN-statistics pass costs (storage/nanstats.py):
N data files of ROWS rows each, as an older release flushed them (statistics
on a DOUBLE column holding a NaN), as it flushed them without a NaN, and as
this release writes them (the rule's key: not read). Prints seconds and ms a
file for each kind.

    python bench/nan_mend.py --files 200 --rows 100000
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from catalog import Catalog, DataFile, Meta
from storage import nanstats
from storage.files import FileStore, write_data_file

UID = "tbl-0000000000000000000b"


def rows(n: int, nan: bool) -> pa.Table:
    x = [float(i) for i in range(n)]
    if nan:
        x[n // 2] = math.nan
    return pa.table({"_seq": pa.array(range(n), pa.int64()), "k": pa.array(range(n), pa.int64()),
                     "x": x, "s": [f"value {i}" for i in range(n)]})


def run(kind: str, files: int, n: int, work: Path) -> None:
    data = work / kind
    store = FileStore(data)
    catalog = Catalog(data / "catalog")
    table = rows(n, nan=kind != "older, no NaN")
    for _ in range(files):
        file_id, rel, path = store.place(UID)
        if kind == "this release":
            write_data_file(path, table, {})
        else:
            pq.write_table(table, path, compression="zstd")
        catalog.put(DataFile(table_uid=UID, file_id=file_id, path=rel, rows=n,
                             bytes=path.stat().st_size, sha256="0" * 64, schema_version=1))
    catalog.delete(Meta, nanstats.MARK)
    t0 = time.perf_counter()
    mended = nanstats.mend_data_dir(catalog, store)
    took = time.perf_counter() - t0
    catalog.close()
    size = sum(p.stat().st_size for p in (data / "files").rglob("*.parquet")) / 2 ** 20
    print(f"| {kind} | {files} x {n} rows ({size:.0f} MiB) | {mended} | {took:.2f} s "
          f"| {1000 * took / files:.2f} ms |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nan_mend-", dir=args.dir))
    try:
        print("| files | data | rewritten | pass | a file |\n|---|---|---:|---:|---:|")
        for kind in ("older, a NaN", "older, no NaN", "this release"):
            run(kind, args.files, args.rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
