"""The report of bench_backup.py: medians over rounds, ratios against the
baselines, and the tables printed for docs/performance.md."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from common import load, machine, print_table

MB = 1024 * 1024
PAYLOAD = 1000  # bytes of random data per row of the bench's tables


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def med(values: Any) -> float:
    return statistics.median(list(values))


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """Medians over rounds, and per-round ratios (each against its own baseline)."""
    out: dict[str, Any] = {}
    for ns in ("small", "big"):
        rounds = res[ns]
        base = {k: med(r["base"][k] for r in rounds) for k in rounds[0]["base"]}
        m: dict[str, Any] = {"base": base}
        for op in ("backup", "restore"):
            m[op] = med(r[op]["s"] for r in rounds)
            m[op + "_ratios"] = [r[op]["s"] / r["base"]["cp_sha"] for r in rounds]
            m[op + "_ratio"] = med(m[op + "_ratios"])
            m[op + "_ratio_openssl"] = med(
                r[op]["s"] / (r["base"]["cp"] + r["base"]["openssl"]) for r in rounds)
            m[op + "_rss_before"] = rounds[0][op]["rss_before"]
            m[op + "_rss_peak"] = max(r[op]["rss_peak"] for r in rounds)
            m[op + "_samples"] = sum(r[op]["rss_samples"] for r in rounds)
        m["bytes_written"] = rounds[0]["backup"]["row"]["bytes_written"]
        m["files"] = rounds[0]["backup"]["row"]["files"]
        out[ns] = m
    return out


def report(args: argparse.Namespace, info: dict[str, Any], res: dict[str, Any],
           duck: list[float], build_s: float) -> None:
    sm = summarize(res)
    big, small = sm["big"], sm["small"]
    gib = info["big"]["bytes"] / 2**30
    print(f"bench_backup: namespace 'small' {info['small']['bytes'] / MB:.0f} MB in "
          f"{len(info['small']['files'])} Parquet files, 'big' {info['big']['bytes'] / MB:.0f} MB "
          f"({gib:.2f} GiB) in {len(info['big']['files'])} files, {info['big']['rows']} rows of "
          f"{PAYLOAD} random bytes; built in {build_s:.0f} s; medians of {args.rounds} rounds; "
          f"{machine()}; {args.load_start} at the start, {load()} at the end")
    print()
    print("Baselines on the same files, seconds (median): cp -r of the files dir, sync of the "
          "copy, coreutils sha256sum, openssl dgst -sha256")
    print_table(["namespace", "MB", "cp -r", "sync", "sha256sum", "openssl sha256",
                 "cp -r + sha256sum"], [
        [ns, f"{info[ns]['bytes'] / MB:.0f}", f"{m['base']['cp']:.2f}", f"{m['base']['sync']:.2f}",
         f"{m['base']['sha256sum']:.2f}", f"{m['base']['openssl']:.2f}",
         f"{m['base']['cp_sha']:.2f}"]
        for ns, m in (("small", small), ("big", big))
    ])
    print()
    print("Full BACKUP (fresh target) and full RESTORE (AS a new namespace) over HTTP, against "
          "cp -r + sha256sum; ratio = median of the per-round ratios")
    rows = []
    for ns, m in (("small", small), ("big", big)):
        mb = info[ns]["bytes"] / MB
        for op in ("backup", "restore"):
            rows.append([
                f"{op} {ns}", f"{mb:.0f}", f"{m[op]:.2f}", f"{mb / m[op]:.0f}",
                f"{m['base']['cp_sha']:.2f}", f"{m[op + '_ratio']:.2f}",
                " ".join(f"{x:.2f}" for x in m[op + "_ratios"]),
                f"{m[op + '_ratio_openssl']:.2f}",
                f"<= 1.5x: {verdict(m[op + '_ratio'] <= 1.5)}" if ns == "big" else "",
            ])
    print_table(["operation", "MB", "seconds", "MB/s", "cp+sha256sum s", "ratio",
                 "per round", "ratio vs cp+openssl", "aim"], rows)
    print()
    duck_s = med(duck)
    speedup = duck_s / big["backup"]
    print("Full backup of 'big' against DuckDB EXPORT DATABASE (FORMAT PARQUET) of the same rows "
          "(all stored columns, loaded into a DuckDB file first, not timed)")
    print_table(["operation", "seconds (median)", "per round", "aim"], [
        ["Cairn BACKUP DATABASE big", f"{big['backup']:.2f}",
         " ".join(f"{r['backup']['s']:.2f}" for r in res["big"]), ""],
        ["DuckDB EXPORT DATABASE", f"{duck_s:.2f}", " ".join(f"{x:.2f}" for x in duck), ""],
        ["cp -r of the same files (floor)", f"{big['base']['cp']:.2f}", "", ""],
        ["DuckDB / Cairn", f"{speedup:.2f}x", "", f">= 3x: {verdict(speedup >= 3)}"],
    ])
    print()
    inc = res["incremental"]
    first = res["big"][0]["backup"]
    t_ratio = inc["s"] / big["backup"]
    b_ratio = inc["row"]["bytes_written"] / first["row"]["bytes_written"]
    print(f"Second backup of 'big' into the first one's target after UPDATE of "
          f"{res['update_rows']} rows (1%) + FLUSH (those took {res['update_flush_s']:.1f} s, "
          f"not counted)")
    print_table(["backup", "seconds", "bytes_written", "files", "aim"], [
        ["first (full; seconds = median)", f"{big['backup']:.2f}", first["row"]["bytes_written"],
         first["row"]["files"], ""],
        ["second (1% changed)", f"{inc['s']:.3f}", inc["row"]["bytes_written"],
         inc["row"]["files"], ""],
        ["ratio time", f"{t_ratio:.3f}", "", "", f"< 0.10: {verdict(t_ratio < 0.10)}"],
        ["ratio bytes_written", "", f"{b_ratio:.4f}", "", f"< 0.10: {verdict(b_ratio < 0.10)}"],
    ])
    print()
    st = res["stall"]
    print("Single-row INSERT loop into big.events (no primary key): alone, and during a full "
          "backup of 'big' to a fresh target; 'warm' ran SELECT count(*) FROM big.events just "
          "before the BACKUP")
    rows = [["no backup", "", st["alone"]["n"], f"{st['alone']['p50']:.2f}",
             f"{st['alone']['p99']:.2f}", f"{st['alone']['max']:.1f}", st["alone"]["over15"], ""]]
    for v in ("cold", "warm"):
        d = st[v]
        rows.append([f"during backup, {v}", f"{d['backup_s']:.2f}", d["n"], f"{d['p50']:.2f}",
                     f"{d['p99']:.2f}", f"{d['max']:.1f}", d["over15"],
                     f"max <= 15 ms: {verdict(d['max'] <= 15)}"])
    print_table(["writer", "backup s", "inserts", "p50 ms", "p99 ms", "max ms", "> 15 ms",
                 "aim"], rows)
    print(f"(buffered INSERT statements in big.events when each backup started: at most "
          f"{st['cold']['buffered']} / {st['warm']['buffered']})")
    print()
    print(f"Server RSS (VmRSS every 10 ms): idle after start {res['idle_rss']:.0f} MB, "
          f"at the end {res['final_rss']:.0f} MB; peak = highest over the rounds")
    rows = []
    for ns, m in (("small", small), ("big", big)):
        for op in ("backup", "restore"):
            peak = m[op + "_rss_peak"]
            rows.append([f"{op} {ns}", f"{info[ns]['bytes'] / MB:.0f}",
                         f"{m[op + '_rss_before']:.0f}", f"{peak:.0f}",
                         f"{peak - m[op + '_rss_before']:+.0f}", m[op + "_samples"],
                         f"< 300 MB: {verdict(peak < 300)}"])
    upd = res["update"]
    rows.append(["UPDATE 1% of big (not a backup)", f"{info['big']['bytes'] / MB:.0f}",
                 f"{upd['rss_before']:.0f}", f"{upd['rss_peak']:.0f}",
                 f"{upd['rss_peak'] - upd['rss_before']:+.0f}", upd["rss_samples"], ""])
    rows.append(["2nd backup big (after UPDATE)", f"{info['big']['bytes'] / MB:.0f}",
                 f"{inc['rss_before']:.0f}", f"{inc['rss_peak']:.0f}",
                 f"{inc['rss_peak'] - inc['rss_before']:+.0f}", inc["rss_samples"], ""])
    print_table(["operation", "namespace MB", "RSS before MB", "peak RSS MB", "growth MB",
                 "samples", "aim"], rows)
    print()
    tk = res["tenk"]
    print(f"10k-row namespace over HTTP, median of {args.small_runs} runs (every run in "
          f"brackets); fresh target = a full backup, same target = unchanged files deduplicated")
    print_table(["namespace", "backup, fresh target ms", "backup, same target ms",
                 "restore ms", "aim"], [
        [ns + (" (flushed)" if ns == "tenk" else " (in write buffer)")]
        + [f"{tk[ns][k]:.1f} [{' '.join(f'{x:.0f}' for x in tk[ns]['all'][k])}]"
           for k in ("backup_fresh", "backup_same", "restore")]
        + [f"< 100 ms each: {verdict(max(tk[ns]['backup_fresh'], tk[ns]['restore']) < 100)}"]
        for ns in ("tenk", "tenkb")
    ])
    print()
    print("Summary")
    worst = max(st["cold"]["max"], st["warm"]["max"])
    print_table(["figure", "measured", "aim", ""], [
        [f"full backup / (cp -r + sha256sum), {gib:.2f} GiB", f"{big['backup_ratio']:.2f}x",
         "<= 1.5x", verdict(big["backup_ratio"] <= 1.5)],
        [f"full restore / (cp -r + sha256sum), {gib:.2f} GiB", f"{big['restore_ratio']:.2f}x",
         "<= 1.5x", verdict(big["restore_ratio"] <= 1.5)],
        ["DuckDB EXPORT / Cairn backup", f"{speedup:.2f}x", ">= 3x", verdict(speedup >= 3)],
        ["2nd backup time / 1st (1% changed)", f"{t_ratio:.3f}", "< 0.10", verdict(t_ratio < 0.1)],
        ["2nd backup bytes_written / 1st", f"{b_ratio:.4f}", "< 0.10", verdict(b_ratio < 0.1)],
        ["writer max latency during backup (cold / warm)",
         (f"{st['cold']['max']:.1f} / {st['warm']['max']:.1f} ms (p99 {st['cold']['p99']:.1f} / "
          f"{st['warm']['p99']:.1f}; alone max {st['alone']['max']:.1f})"),
         "<= 15 ms", verdict(worst <= 15)],
        ["peak RSS backup small / big",
         f"{small['backup_rss_peak']:.0f} / {big['backup_rss_peak']:.0f} MB", "< 300 MB, flat",
         verdict(max(small['backup_rss_peak'], big['backup_rss_peak']) < 300)],
        ["peak RSS restore small / big",
         f"{small['restore_rss_peak']:.0f} / {big['restore_rss_peak']:.0f} MB", "< 300 MB, flat",
         verdict(max(small['restore_rss_peak'], big['restore_rss_peak']) < 300)],
        ["10k rows backup / restore (flushed)",
         f"{tk['tenk']['backup_fresh']:.1f} / {tk['tenk']['restore']:.1f} ms", "< 100 ms",
         verdict(max(tk['tenk']['backup_fresh'], tk['tenk']['restore']) < 100)],
        ["10k rows backup / restore (buffered)",
         f"{tk['tenkb']['backup_fresh']:.1f} / {tk['tenkb']['restore']:.1f} ms", "< 100 ms",
         verdict(max(tk['tenkb']['backup_fresh'], tk['tenkb']['restore']) < 100)],
    ])
