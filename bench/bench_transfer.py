"""BACKUP / RESTORE transfer figures of issue 15, every one a ratio taken in one run
against a real `cairn serve` process over HTTP (loopback):

1. full BACKUP time / max(`cp -r` + `sync`, `openssl dgst -sha256`) of the same files  aim <= 1.5
2. full RESTORE time / the same                                                      aim <= 1.5
3. DuckDB `EXPORT DATABASE (FORMAT PARQUET)` time / Cairn BACKUP time               aim >= 3
4. BACKUP into S3 (moto, its own process on 127.0.0.1) / BACKUP into a directory    aim <= 2

The namespace is built as bench_backup.py builds it (not timed): one table of
incompressible 1000-byte payloads, flushed every `--flush-mb`. Each BACKUP goes
into a fresh target, in two disk states, both reported:
- `fresh blocks`: the previous rounds' targets are kept, so every object lands
  in blocks the file system has not handed out recently;
- `after delete`: the previous round's target is deleted (and synced) just
  before, so the file system reuses the blocks it freed.
`sync(2)` runs before every timed step. The 1-minute load average is printed
with every figure: the machine is shared, and load skews everything.

    python bench/bench_transfer.py [--mb 512] [--flush-mb 100] [--rounds 3] [--s3-mb 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backup import build, duckdb_export
from bench_backup_targets import start_moto
from common import Server, revision, session, sql, timed_sql


def loadavg() -> float:
    return os.getloadavg()[0]


def baseline(src: Path, dest: Path) -> dict[str, float]:
    """`cp -r` + `sync` of the files, and `openssl dgst -sha256` of them (seconds)."""
    shutil.rmtree(dest, ignore_errors=True)
    files = sorted(str(p) for p in src.iterdir())
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dest)], check=True)
    subprocess.run(["sync", "-f", str(dest)], check=True)
    t2 = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", *files], check=True, capture_output=True)
    t3 = time.perf_counter()
    shutil.rmtree(dest, ignore_errors=True)
    os.sync()
    return {"cp_sync": t2 - t0, "openssl": t3 - t2, "floor": max(t2 - t0, t3 - t2)}


async def rounds(srv: Server, info: dict[str, Any], tmp: Path, backups: Path,
                 n: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"fresh blocks": [], "after delete": []}
    async with session(1) as http:
        for state in out:
            for r in range(n):
                one: dict[str, Any] = {"base": baseline(info["dir"], tmp / "cp")}
                target = f"{state.replace(' ', '_')}_{r}"
                if state == "after delete" and r > 0:
                    shutil.rmtree(backups / f"after_delete_{r - 1}")
                os.sync()
                one["load"] = loadavg()
                ms, body = await timed_sql(http, srv.url, f"BACKUP DATABASE big TO '{target}'")
                row = body["results"][-1]["rows"][0]
                assert row["rows"] == info["rows"], body
                one["backup"] = ms / 1000
                os.sync()
                ms, body = await timed_sql(
                    http, srv.url, f"RESTORE DATABASE big FROM '{target}' AS big_r "
                                   f"WITH (backup_id = '{row['backup_id']}')")
                assert body["status"] == "success", body
                one["restore"] = ms / 1000
                await sql(http, srv.url, "DROP NAMESPACE big_r CASCADE")
                out[state].append(one)
    return out


def plain_upload(fs: Any, files: list[str], bucket: str) -> float:
    """The floor moto sets: the same files PUT with pyarrow, one after the other,
    no hashing, no checks (seconds)."""
    t0 = time.perf_counter()
    for i, path in enumerate(files):
        with open(path, "rb") as src, fs.open_output_stream(f"{bucket}/plain/{i}") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    return time.perf_counter() - t0


async def s3_vs_local(srv: Server, n: int, fs: Any, files: list[str]) -> list[dict[str, float]]:
    out = []
    async with session(1) as http:
        for r in range(n):
            os.sync()
            load = loadavg()
            local_ms, _ = await timed_sql(http, srv.url, f"BACKUP DATABASE s3src TO 's3local_{r}'")
            os.sync()
            s3_ms, body = await timed_sql(http, srv.url, f"BACKUP DATABASE s3src TO 's3_{r}'")
            assert body["status"] == "success", body
            plain = plain_upload(fs, files, f"bench-{r}")
            out.append({"local": local_ms / 1000, "s3": s3_ms / 1000, "plain": plain,
                        "load": load})
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(args: argparse.Namespace, info: dict[str, Any], res: dict[str, Any],
           duck: list[float], s3: list[dict[str, float]], s3_info: dict[str, Any]) -> None:
    print(f"\nCairn {revision()}, {os.cpu_count()} CPUs, namespace {info['bytes'] / 2**20:.0f} MiB "
          f"in {len(info['files'])} Parquet files, {args.rounds} rounds per state")
    print("\n| state | round | cp+sync s | openssl s | backup s | restore s | backup ratio | "
          "restore ratio | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for state, ones in res.items():
        for r, one in enumerate(ones):
            b = one["base"]
            print(f"| {state} | {r} | {b['cp_sync']:.3f} | {b['openssl']:.3f} | "
                  f"{one['backup']:.3f} | {one['restore']:.3f} | "
                  f"{one['backup'] / b['floor']:.2f} | {one['restore'] / b['floor']:.2f} | "
                  f"{one['load']:.2f} |")
    print("\n| figure | aim | fresh blocks | after delete |")
    print("|---|---|---|---|")
    for what in ("backup", "restore"):
        cells = [f"{med([o[what] / o['base']['floor'] for o in res[s]]):.2f}" for s in res]
        print(f"| full {what} / max(cp + sync, openssl), median | <= 1.5 | {' | '.join(cells)} |")
    backup_s = med([o["backup"] for s in res for o in res[s]])
    print(f"| DuckDB EXPORT {med(duck):.3f} s / Cairn BACKUP {backup_s:.3f} s | >= 3 | "
          f"{med(duck) / backup_s:.2f} (both states) | |")
    if s3:
        ratio = med([o["s3"] / o["local"] for o in s3])
        loads = " ".join(f"{o['load']:.2f}" for o in s3)
        print(f"| S3 (moto) / local BACKUP of {s3_info['bytes'] / 2**20:.0f} MiB, "
              f"{med([o['s3'] for o in s3]):.2f} s / {med([o['local'] for o in s3]):.2f} s | "
              f"<= 2 | {ratio:.2f} | loads {loads} |")
        plain = med([o["plain"] for o in s3])
        over = med([o["s3"] for o in s3]) / plain
        print(f"| plain pyarrow PUT of the same files to moto (the server's floor) | | "
              f"{plain:.2f} s: S3 backup / plain PUT = {over:.2f} | |")
    print(f"\nload average at start {args.load_start:.2f}, at end {loadavg():.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=512, help="payload MB of the namespace (512)")
    ap.add_argument("--flush-mb", type=int, default=100, help="MB per Parquet file (100)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per disk state (3)")
    ap.add_argument("--s3-mb", type=int, default=256,
                    help="payload MB backed up to moto (256; 0 skips; moto is slow)")
    ap.add_argument("--s3-rounds", type=int, default=1)
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    args.load_start = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-transfer-", dir=args.dir))
    data = tmp / "data"
    srv = moto = fs = None
    try:
        sizes = {"big": args.mb, **({"s3src": args.s3_mb} if args.s3_mb else {})}
        built = build(data, sizes, args.flush_mb)
        info = built["big"]
        config = tmp / "cairn.toml"
        lines = [f'[backup]\nroots = ["{data / "backups"}"]']
        if args.s3_mb:
            moto, port = start_moto()
            lines += [f'[backup.targets.s3_{r}]\nuri = "s3://bench-{r}/cairn"\n'
                      f'endpoint = "http://127.0.0.1:{port}"\naccess_key = "bench"\n'
                      f'secret_key = "bench"\nregion = "us-east-1"' for r in range(args.s3_rounds)]
            fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                                   access_key="bench", secret_key="bench", region="us-east-1",
                                   allow_bucket_creation=True)
            for r in range(args.s3_rounds):
                fs.create_dir(f"bench-{r}")
        config.write_text("\n".join(lines) + "\n")
        srv = Server(data, tmp / "server.log", config=config)
        res = asyncio.run(rounds(srv, info, tmp, data / "backups", args.rounds))
        s3 = (asyncio.run(s3_vs_local(srv, args.s3_rounds, fs, built["s3src"]["files"]))
              if args.s3_mb else [])
        srv.stop()
        srv = None
        duck = duckdb_export(tmp, info["files"], args.rounds)
        report(args, info, res, duck, s3, built.get("s3src", {}))
    finally:
        if srv is not None:
            srv.stop()
        if moto is not None:
            moto.kill()
            moto.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
