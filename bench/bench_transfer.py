"""BACKUP / RESTORE transfer figures of issue 15, every one a ratio taken in one run
against a real `cairn serve` process over HTTP (loopback):

1. full BACKUP time / max(`cp -r` + `sync`, `openssl dgst -sha256`) of the same files  aim <= 1.5
2. full RESTORE time / the same                                                      aim <= 1.5
3. DuckDB `EXPORT DATABASE (FORMAT PARQUET)` time / Cairn BACKUP time               aim >= 3
4. BACKUP into S3 (moto, its own process on 127.0.0.1) / BACKUP into a directory    aim <= 2

The namespace is built as bench_backup.py builds it (not timed): one table of
incompressible 1000-byte payloads, flushed every `--flush-mb`. Each round
times `cp -r` + `sync` and `openssl dgst -sha256` of the files, a BACKUP into a
fresh target, the baseline again, and a RESTORE of that backup, each ratio
against the baseline taken just before it. On this VM's disk a write into
blocks the file system has not handed out recently costs several times one
into blocks just freed (`cp` + `sync` of 519 MiB: ~0.5 s against 2-3.5 s), so
every write step, the baseline's copy included, runs in the same disk state:
- `fresh blocks`: nothing written in this state is deleted before its end
  (baseline copies, targets and restored namespaces are kept), so every write
  lands in blocks not recently freed;
- `after delete`: just before each write step, that step's previous output
  (the same size) is deleted and synced, so the file system reuses the blocks
  it freed.
`sync(2)` runs before every timed step. The 1-minute load average is printed
with every figure: the machine is shared, and load skews everything.
`--server-root` runs the server from another checkout (A/B runs).

    python bench/bench_transfer.py [--mb 512] [--flush-mb 100] [--rounds 3] [--s3-mb 256]
                                   [--server-root DIR] [--profile-moto DIR]
                                   [--job-process idle|nice|off]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backup import build, duckdb_export
from bench_backup_targets import start_moto
from common import ROOT, Server, revision, session, sql, timed_sql

from storage.backup.s3client import checksum_mode, new_s3_filesystem


def loadavg() -> float:
    return os.getloadavg()[0]


def baseline(src: Path, dest: Path, drop: Path | None) -> dict[str, float]:
    """`cp -r` + `sync` of the files into `dest` (kept: the caller removes it), and
    `openssl dgst -sha256` of them (seconds). `drop`, the previous copy, is
    deleted and synced first (the `after delete` state)."""
    if drop is not None:
        shutil.rmtree(drop)
    files = sorted(str(p) for p in src.iterdir())
    os.sync()
    load = loadavg()
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dest)], check=True)
    subprocess.run(["sync", "-f", str(dest)], check=True)
    t2 = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", *files], check=True, capture_output=True)
    t3 = time.perf_counter()
    return {"cp_sync": t2 - t0, "openssl": t3 - t2, "floor": max(t2 - t0, t3 - t2), "load": load}


async def rounds(srv: Server, info: dict[str, Any], tmp: Path, backups: Path,
                 n: int) -> dict[str, list[dict[str, Any]]]:
    """Every write step in the same disk state as its baseline (module docstring).
    In `after delete`, a step deletes its own previous output first (for round 0,
    the last one `fresh blocks` kept)."""
    out: dict[str, list[dict[str, Any]]] = {"fresh blocks": [], "after delete": []}
    last: dict[str, Any] = {}  # step -> its previous output (a path, or a namespace)
    async with session(1) as http:
        for state in out:
            deleting = state == "after delete"
            for r in range(n):
                tag = f"{state.replace(' ', '_')}_{r}"
                one: dict[str, Any] = {}
                one["base"] = baseline(info["dir"], tmp / f"cp_b_{tag}",
                                       last.get("cp_b") if deleting else None)
                last["cp_b"] = tmp / f"cp_b_{tag}"
                if deleting:
                    shutil.rmtree(last["target"])
                os.sync()
                one["load"] = loadavg()
                ms, body = await timed_sql(http, srv.url, f"BACKUP DATABASE big TO '{tag}'")
                last["target"] = backups / tag
                row = body["results"][-1]["rows"][0]
                assert row["rows"] == info["rows"], body
                one["backup"] = ms / 1000
                one["base_r"] = baseline(info["dir"], tmp / f"cp_r_{tag}",
                                         last.get("cp_r") if deleting else None)
                last["cp_r"] = tmp / f"cp_r_{tag}"
                if deleting and "ns" in last:
                    await sql(http, srv.url, f"DROP NAMESPACE {last['ns']} CASCADE")
                os.sync()
                one["load_r"] = loadavg()
                ms, body = await timed_sql(
                    http, srv.url, f"RESTORE DATABASE big FROM '{tag}' AS r_{tag} "
                                   f"WITH (backup_id = '{row['backup_id']}')")
                assert body["status"] == "success", body
                last["ns"] = f"r_{tag}"
                one["restore"] = ms / 1000
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


def boto_upload(port: int, files: list[str], bucket: str) -> float:
    """The same files PUT by another client (boto3), one request per file, with
    no checksum beyond what S3 requires: the least work a PUT can ask of moto."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench",
                          config=Config(request_checksum_calculation="when_required"))
    t0 = time.perf_counter()
    for i, path in enumerate(files):
        with open(path, "rb") as src:
            client.put_object(Bucket=bucket, Key=f"boto/{i}", Body=src)
    return time.perf_counter() - t0


class MotoProfile:
    """py-spy on the moto process around one step (`--profile-moto`): the raw
    stacks go to `<dir>/<step>.txt`, the frames moto spent most samples in are printed."""

    def __init__(self, out: str | None, pid: int, step: str) -> None:
        self.path = Path(out) / f"{step}.txt" if out else None
        self.pid, self.step = pid, step
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoProfile:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen(["py-spy", "record", "-p", str(self.pid), "-r", "50",
                                          "-f", "raw", "-o", str(self.path)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.path is None:
            return
        self.proc.send_signal(2)
        self.proc.wait()
        own: dict[str, int] = {}
        total = 0
        for line in self.path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            leaf = stack.rsplit(";", 1)[-1]
            own[leaf] = own.get(leaf, 0) + int(count)
            total += int(count)
        print(f"moto profile, {self.step} ({total} samples at 50 Hz, own time):")
        for leaf, n in sorted(own.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {100 * n / max(total, 1):5.1f}%  {leaf}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def s3_vs_local(srv: Server, n: int, fs: Any, files: list[str], moto: int, port: int,
                      profile: str | None) -> list[dict[str, float]]:
    """Per round: a BACKUP into a directory, the same into S3, a plain PUT of the
    files through pyarrow and one through boto3, with the CPU the moto server
    used for each of the last three."""
    out = []
    async with session(1) as http:
        for r in range(n):
            os.sync()
            load = loadavg()
            local_ms, _ = await timed_sql(http, srv.url, f"BACKUP DATABASE s3src TO 's3local_{r}'")
            os.sync()
            with MotoProfile(profile, moto, f"s3_backup_{r}"):
                c0 = cpu_seconds(moto)
                s3_ms, body = await timed_sql(http, srv.url,
                                              f"BACKUP DATABASE s3src TO 's3_{r}'")
                assert body["status"] == "success", body
                c1 = cpu_seconds(moto)
            with MotoProfile(profile, moto, f"plain_put_{r}"):
                c1 = cpu_seconds(moto)
                plain = plain_upload(fs, files, f"bench-{r}")
                c2 = cpu_seconds(moto)
            boto = boto_upload(port, files, f"bench-{r}")
            out.append({"local": local_ms / 1000, "s3": s3_ms / 1000, "plain": plain,
                        "boto": boto, "load": load, "moto_s3": c1 - c0, "moto_plain": c2 - c1,
                        "moto_boto": cpu_seconds(moto) - c2})
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(args: argparse.Namespace, info: dict[str, Any], res: dict[str, Any],
           duck: list[dict[str, float]], s3: list[dict[str, float]],
           s3_info: dict[str, Any]) -> None:
    print(f"\nCairn {revision(Path(args.server_root))}, {os.cpu_count()} CPUs, "
          f"namespace {info['bytes'] / 2**20:.0f} MiB "
          f"in {len(info['files'])} Parquet files, {args.rounds} rounds per state")
    print("\n| state | round | cp+sync s | openssl s | backup s | load | cp+sync s | openssl s | "
          "restore s | load | backup ratio | restore ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for state, ones in res.items():
        for r, one in enumerate(ones):
            b, br = one["base"], one["base_r"]
            print(f"| {state} | {r} | {b['cp_sync']:.3f} | {b['openssl']:.3f} | "
                  f"{one['backup']:.3f} | {one['load']:.2f} | {br['cp_sync']:.3f} | "
                  f"{br['openssl']:.3f} | {one['restore']:.3f} | {one['load_r']:.2f} | "
                  f"{one['backup'] / b['floor']:.2f} | {one['restore'] / br['floor']:.2f} |")
    print("\n(each ratio: the step over max(cp + sync, openssl) taken just before it, "
          "in the same disk state)")
    print("\n| figure | aim | fresh blocks | after delete |")
    print("|---|---|---|---|")
    for what, base in (("backup", "base"), ("restore", "base_r")):
        cells = [f"{med([o[what] / o[base]['floor'] for o in res[s]]):.2f}" for s in res]
        print(f"| full {what} / max(cp + sync, openssl), median | <= 1.5 | {' | '.join(cells)} |")
    backup_s = med([o["backup"] for s in res for o in res[s]])
    export = med([d["export"] for d in duck])
    synced = med([d["export"] + d["sync"] for d in duck])
    print(f"| DuckDB EXPORT {export:.3f} s / Cairn BACKUP {backup_s:.3f} s | >= 3 | "
          f"{export / backup_s:.2f} (both states) | |")
    print(f"| DuckDB EXPORT + sync (durable, as BACKUP is) {synced:.3f} s / Cairn BACKUP | | "
          f"{synced / backup_s:.2f} | |")
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
        mb = s3_info["bytes"] / 2**20
        moto_s3, moto_plain = med([o["moto_s3"] for o in s3]), med([o["moto_plain"] for o in s3])
        print(f"| moto's own CPU: S3 backup / plain PUT | | {moto_s3:.2f} / {moto_plain:.2f} s "
              f"({mb / moto_plain:.0f} MiB per moto CPU-second on a plain PUT) | |")
        boto, moto_boto = med([o["boto"] for o in s3]), med([o["moto_boto"] for o in s3])
        print(f"| the same files PUT by boto3 (one PUT per file, no checksum) | | {boto:.2f} s, "
              f"moto CPU {moto_boto:.2f} s ({mb / moto_boto:.0f} MiB per moto CPU-second) | |")
        print(f"| AWS_REQUEST_CHECKSUM_CALCULATION of the plain PUT | | {s3_info['mode']} | |")
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
    ap.add_argument("--profile-moto", metavar="DIR",
                    help="py-spy the moto server during each S3 step, raw stacks into DIR")
    ap.add_argument("--job-process", choices=("idle", "nice", "off"),
                    help="[jobs] job_process (default: not set, the server's own)")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--server-root", default=str(ROOT), help="checkout the server runs from")
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
            fs = new_s3_filesystem({"endpoint_override": f"127.0.0.1:{port}", "scheme": "http",
                                    "access_key": "bench", "secret_key": "bench",
                                    "region": "us-east-1", "allow_bucket_creation": True})
            built["s3src"]["mode"] = checksum_mode("http")
            for r in range(args.s3_rounds):
                fs.create_dir(f"bench-{r}")
        if args.job_process:
            lines.append(f'[jobs]\njob_process = "{args.job_process}"')
        config.write_text("\n".join(lines) + "\n")
        srv = Server(data, tmp / "server.log", config=config, root=Path(args.server_root))
        res = asyncio.run(rounds(srv, info, tmp, data / "backups", args.rounds))
        s3 = (asyncio.run(s3_vs_local(srv, args.s3_rounds, fs, built["s3src"]["files"],
                                      moto.pid, port, args.profile_moto))
              if moto is not None else [])
        srv.stop()
        srv = None
        syncs: list[float] = []
        times = duckdb_export(tmp, info["files"], args.rounds, syncs)
        duck = [{"export": t, "sync": y} for t, y in zip(times, syncs, strict=True)]
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
