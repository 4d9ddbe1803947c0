"""Backup targets compared in one run: a local directory against an S3-compatible
server (moto, as a separate process on 127.0.0.1), plain against encrypted, and
the compression ratio of each kind of object a backup stores.

    python bench/bench_backup_targets.py [--mb 128] [--files 8] [--rounds 3]

Sources are zstd Parquet files written the way Cairn flushes them (pyarrow,
compression="zstd"), with sha256 known, as the server passes them. Each round,
on a fresh target: `backup` = lock + put every file + write the manifest (local:
fsync per object); `again` = the same backup once more (dedup: a stat per file);
`restore` = read every file back to local disk, checked (size, sha256, frames);
`verify` = VERIFY BACKUP. MB/s are of the files' own bytes. Medians over rounds.
Encryption cost = 1 - (encrypted MB/s / plain MB/s), target by target.

Ratios: zstd level 3 on each kind of object, as the repository stores it or
would; the probe decides per object (compress when it saves >= 20%).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.manifests import backup_doc, column, table_entry
from storage.backup import Repository, Target, open_repository, resolve_target
from storage.backup.codec import sample, worth_compressing
from storage.backup.manifest import canonical
from storage.backup.tarball import pack

PASSPHRASE = "benchmark passphrase"
WORDS = [f"customer-{i:03d}" for i in range(200)]


# --- sources ---------------------------------------------------------------------


def rows(n: int, seed: int) -> pa.Table:
    """Table-like rows: a sequential key, a timestamp, a low-cardinality name,
    an amount, a random token (incompressible) and a JSON-ish note."""
    rnd = os.urandom(n * 16 + n * 2 + n * 4)
    token = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [None, pa.py_buffer(rnd[: n * 16])]
    )
    pick = pa.Array.from_buffers(pa.uint16(), n, [None, pa.py_buffer(rnd[n * 16 : n * 18])])
    cents = pa.Array.from_buffers(pa.uint32(), n, [None, pa.py_buffer(rnd[n * 18 :])])
    names = pc.take(pa.array(WORDS), pc.cast(pc.bit_wise_and(pick, 0x7F), pa.int32()))
    ids = pa.array(range(seed * n, seed * n + n), pa.int64())
    return pa.table({
        "id": ids,
        "ts": pc.cast(pc.add(ids, 1_700_000_000_000), pa.timestamp("ms")),
        "name": names,
        "amount": pc.divide(pc.cast(pc.bit_wise_and(cents, 0xFFFFF), pa.float64()), 100.0),
        "token": token,
        "note": pc.binary_join_element_wise(pa.scalar('{"kind": "order", "by": "'), names,
                                            pa.scalar('"}'), ""),
    })


def make_sources(where: Path, total_mb: int, count: int) -> list[tuple[str, str, int]]:
    """zstd Parquet files (path, sha256, size) adding up to about `total_mb`."""
    where.mkdir(parents=True)
    per_file = total_mb * 1024 * 1024 // count
    n = 50_000
    probe = io.BytesIO()
    pq.write_table(rows(n, 0), probe, compression="zstd")
    n = max(1000, int(n * per_file / len(probe.getvalue())))
    out = []
    for i in range(count):
        path = where / f"part-{i:04d}.parquet"
        pq.write_table(rows(n, i), str(path), compression="zstd")
        data = path.read_bytes()
        out.append((str(path), hashlib.sha256(data).hexdigest(), len(data)))
    return out


# --- the S3 server ---------------------------------------------------------------


def start_moto() -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def s3_config(port: int, bucket: str) -> dict[str, Any]:
    return {"uri": f"s3://{bucket}", "endpoint": f"http://127.0.0.1:{port}",
            "access_key": "bench", "secret_key": "bench", "region": "us-east-1"}


def make_bucket(port: int, bucket: str) -> None:
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                      access_key="bench", secret_key="bench",
                      allow_bucket_creation=True).create_dir(bucket)


# --- one measurement -------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    os.sync()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def backup(repo: Repository, backup_id: str, sources: list[tuple[str, str, int]]) -> dict[str, Any]:
    files = []
    with repo.lock(backup_id) as lock:
        lock.add([sha for _, sha, _ in sources])
        for path, sha, size in sources:
            put = repo.put_file(path, sha256=sha, size=size, lock=lock)
            entry: dict[str, Any] = {"oid": put.oid, "size": size}
            if put.oid != sha:
                entry["sha256"] = sha
            files.append(entry)
        return repo.write_manifest(backup_doc(backup_id, "bench", [table_entry("t", files)]))


def one(target: Target, passphrase: str | None, sources: list[tuple[str, str, int]],
        scratch: Path) -> dict[str, float]:
    """Seconds of each step on one fresh target. The key is derived (scrypt, a
    fixed ~0.1 s per statement, reported apart) before the clock starts."""
    repo = open_repository(target, passphrase=passphrase)
    out = {"kdf": timed(lambda: repo.has_content(sources[0][1]))}
    out["backup"] = timed(lambda: backup(repo, "bk-1", sources))
    again = open_repository(target, passphrase=passphrase)
    again.has_content(sources[0][1])
    out["again"] = timed(lambda: backup(again, "bk-2", sources))
    reader = open_repository(target, passphrase=passphrase)
    files = reader.read_manifest("bk-1")["tables"][0]["files"]
    restore = scratch / "restore"
    shutil.rmtree(restore, ignore_errors=True)
    restore.mkdir()

    def read_back() -> None:
        for i, f in enumerate(files):
            reader.read_object_to(
                f["oid"], str(restore / str(i)), f["size"], sha256=f.get("sha256")
            )

    out["restore"] = timed(read_back)
    out["verify"] = timed(lambda: reader.verify("bk-1"))
    return out


# --- ratios ----------------------------------------------------------------------


def ratio(data: bytes) -> float:
    return len(data) / max(1, len(zstandard.ZstdCompressor(level=3).compress(data)))


def manifest_doc(tables: int, files_per_table: int, schema_versions: int) -> dict[str, Any]:
    """A manifest like the server writes for a namespace of this shape."""
    def sha(*parts: object) -> str:
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    doc_tables = []
    for t in range(tables):
        types = [("BIGINT", []), ("TEXT", []), ("TIMESTAMP", []), ("DOUBLE", []), ("JSON", []),
                 ("DECIMAL", [12, 2]), ("BOOLEAN", [])]
        columns = [column(f"{['order', 'customer', 'item', 'event'][t % 4]}_{c}_{t}",
                          *types[(t + c) % len(types)], key=c == 0 and (t % 7) != 4,
                          default=None if c % 4 or c == 0 or types[(t + c) % len(types)][0]
                          not in ("BIGINT", "TEXT", "DOUBLE") else str(t * c))
                   for c in range(8 + t % 9)]
        if not columns[0]["primary_key"]:  # a JSON first column: another key
            columns[0] = column(columns[0]["name"], "BIGINT", key=True)
        for i in range(len(columns) - 2, len(columns)):  # added by versions 2 and 3
            columns[i]["since"] = i - len(columns) + 4
        entry = table_entry(
            f"table_{t}",
            [{"oid": sha(t, f), "size": 50_000_000 + f, "rows": 1_000_000, "user_id": None}
             for f in range(files_per_table)],
            [columns[: len(columns) - 2 + v] for v in range(schema_versions)],
        )
        entry["options"] = {"flush_rows": 10000}
        doc_tables.append(entry)
    return backup_doc("bk-ratio", "app", doc_tables)


def ratios(scratch: Path, sources: list[tuple[str, str, int]]) -> list[tuple[str, int, float, str]]:
    """(kind, bytes, zstd-3 ratio, what the repository does)."""
    out = []
    parquet = Path(sources[0][0]).read_bytes()
    decision = "zstd" if worth_compressing(sample(io.BytesIO(parquet), len(parquet))) else "raw"
    out.append(("flushed Parquet (zstd pages)", len(parquet), ratio(parquet), decision))
    buffered = rows(20_000, 99)
    exported = io.BytesIO()
    pq.write_table(buffered, exported, compression="zstd")  # as backup_run exports buffers
    data = exported.getvalue()
    decision = "zstd" if worth_compressing(sample(io.BytesIO(data), len(data))) else "raw"
    out.append(("buffered-row export (zstd Parquet)", len(data), ratio(data), decision))
    plain = io.BytesIO()
    pq.write_table(buffered, plain, compression="none")
    out.append(("  same rows, uncompressed Parquet", len(plain.getvalue()),
                ratio(plain.getvalue()), "(not written)"))
    doc = manifest_doc(tables=20, files_per_table=20, schema_versions=3)
    schemas = canonical([t["schemas"] for t in doc["tables"]])
    out.append(("schema records (20 tables x 3 versions)", len(schemas), ratio(schemas), "in body"))
    for label, compression, passphrase in (("manifest body, zstd", "zstd", None),
                                           ("manifest body, zstd+aes", "zstd", PASSPHRASE)):
        root = scratch / f"ratio-{compression}-{bool(passphrase)}"
        repo = Repository(resolve_target("m", [str(root)], {}), passphrase=passphrase,
                          compression=compression, durable=False)
        none = Repository(resolve_target("n", [str(root)], {}), compression="none", durable=False)
        for r in (repo, none):  # every file its own (tiny) object, as in life
            d = manifest_doc(tables=20, files_per_table=20, schema_versions=3)
            src = scratch / "blob"
            for t in d["tables"]:
                for f in t["files"]:
                    src.write_bytes(os.urandom(16))
                    put = r.put_file(str(src))
                    f["oid"], f["size"] = put.oid, 16
                    if put.oid != put.sha256:
                        f["sha256"] = put.sha256
            r.write_manifest(d)
        plain_size = (root / "n" / "manifests" / "bk-ratio.json").stat().st_size
        stored = (root / "m" / "manifests" / "bk-ratio.json").stat().st_size
        out.append((f"{label} (file, base64)", plain_size, plain_size / stored, "as stored"))
    archive_dir = scratch / "archives"
    archive_dir.mkdir()
    base = scratch / "targets-ratio"
    repo = Repository(resolve_target("a", [str(base)], {}), durable=False)
    backup(repo, "bk-a", sources[:2])
    pack(repo.target.base, str(archive_dir / "a.tar"), durable=False)
    pack(repo.target.base, str(archive_dir / "a.tar.zst"), durable=False)
    tar, tzst = ((archive_dir / n).stat().st_size for n in ("a.tar", "a.tar.zst"))
    out.append(("archive .tar -> .tar.zst (Parquet inside)", tar, tar / tzst, ".tar.zst stream"))
    return out


# --- main ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=128, help="total size of the source files")
    parser.add_argument("--files", type=int, default=8, help="number of source files")
    parser.add_argument("--rounds", type=int, default=3, help="repeat and report the median")
    parser.add_argument("--dir", default=None, help="scratch directory (default: $TMPDIR)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="cairn-bench-targets-", dir=args.dir))
    moto, port = start_moto()
    try:
        sources = make_sources(scratch / "src", args.mb, args.files)
        total = sum(size for _, _, size in sources)
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for r in range(args.rounds):
            bucket = f"bench-{r}"
            make_bucket(port, bucket)
            named = {"s3": s3_config(port, bucket)}
            for where in ("local", "s3"):
                for mode, passphrase in (("plain", None), ("encrypted", PASSPHRASE)):
                    name = f"{where}-{mode}-{r}"
                    spec = f"s3://{bucket}/{name}" if where == "s3" else name
                    target = resolve_target(spec, [str(scratch / "backups")], named)
                    results.setdefault((where, mode), []).append(
                        one(target, passphrase, sources, scratch))
        table = ratios(scratch, sources)
    finally:
        moto.kill()
        moto.wait()
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"{total / 1e6:.0f} MB of zstd Parquet in {len(sources)} files, {os.cpu_count()} CPUs, "
          f"median of {args.rounds} rounds; S3 = moto {moto_version()} on 127.0.0.1 (own process)")
    steps = ("backup", "again", "restore", "verify")
    print(f"{'target':<8}{'mode':<11}" + "".join(f"{s + ' MB/s':>15}" for s in steps))
    speed: dict[tuple[str, str, str], float] = {}
    for (where, mode), runs in results.items():
        cells = []
        for step in steps:
            seconds = statistics.median(run[step] for run in runs)
            speed[(where, mode, step)] = total / seconds / 1e6
            cells.append(f"{speed[(where, mode, step)]:>15.0f}")
        print(f"{where:<8}{mode:<11}" + "".join(cells))
    kdf = {w: statistics.median(r["kdf"] for r in results[(w, "encrypted")])
           - statistics.median(r["kdf"] for r in results[(w, "plain")]) for w in ("local", "s3")}
    print(f"key derivation (scrypt n=2^15, r=8, p=1, once per statement): "
          f"{kdf['local'] * 1000:.0f} ms")
    print("encryption cost on throughput (1 - encrypted/plain MB/s):")
    for where in ("local", "s3"):
        costs = [
            f"{step} {1 - speed[(where, 'encrypted', step)] / speed[(where, 'plain', step)]:+.0%}"
            for step in ("backup", "restore", "verify")
        ]
        print(f"  {where:<6} " + ", ".join(costs))
    print(f"\n{'object kind':<44}{'bytes':>12}{'zstd-3 ratio':>14}  stored as")
    for kind, size, factor, decision in table:
        print(f"{kind:<44}{size:>12}{factor:>13.2f}x  {decision}")


def moto_version() -> str:
    import moto

    return str(moto.__version__)


if __name__ == "__main__":
    main()
