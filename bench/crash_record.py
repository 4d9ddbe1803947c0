"""The record of a crash-injection campaign (bench/crash_injection.py): what
each run did and saw, and the tables docs/reliability.md quotes."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

CHECKS = ("job_ended", "catalog_matches_target", "backups_verify", "no_orphan_objects",
          "no_partial_namespace", "source_unchanged", "data_dir_clean", "set_whole",
          "resume_reuses")
FAULT_POINTS = {
    "backup": ("backup.snapshot_taken", "backup.before_object", "backup.mid_object",
               "backup.before_manifest", "backup.after_manifest", "prune.before_delete"),
    "restore": ("restore.before_object", "restore.mid_object", "restore.before_install",
                "restore.after_install"),
}
FAULT_POINTS["backup_table"] = FAULT_POINTS["backup"][:-1]  # no keep_last for a table backup
FAULT_POINTS["backup_set"] = FAULT_POINTS["backup"] + ("backup.between_manifests",)
FAULT_POINTS["restore_all"] = FAULT_POINTS["restore_table"] = FAULT_POINTS["restore"]
OPS = ("backup", "restore", "pause", "backup_set", "backup_table", "restore_all",
       "restore_table")
PHASES = ("before the job was recorded", "queued", "running 0-25%", "running 25-50%",
          "running 50-75%", "running 75-100%", "after the manifest / install",
          "after the job ended", "pause requested", "paused", "resumed",
          "ended before the pause")


@dataclass
class Run:
    index: int
    op: str  # backup | restore | pause | backup_set | backup_table | restore_all | restore_table
    planned: float  # kill moment as a fraction of the expected duration
    fault: str | None = None  # a named fault point the server kills itself at
    delay: float = 0.0  # seconds after the request was sent
    phase: str = ""
    job_status: str | None = None
    answered: bool = False  # the client got its answer before the kill
    failures: list[str] = field(default_factory=list)
    mode: str = ""  # pause: where the kill landed; a set's scope; the backup restored
    statement: str = ""
    resumed: bool = False  # a backup kept objects; the next backup was checked to reuse them


@dataclass
class Campaign:
    runs: list[Run] = field(default_factory=list)
    passed: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    seed: int = 0
    durations: dict[str, list[float]] = field(default_factory=dict)  # completed jobs, s

    @property
    def failures(self) -> list[str]:
        return [f"run {r.index} ({r.op}, {r.fault or 'kill'} at {r.delay:.3f} s, {r.phase}): {f}"
                for r in self.runs for f in r.failures]

    def table(self) -> str:
        n = len(self.runs)
        lines = [f"crash injection: {n} runs, seed {self.seed}, {self.seconds:.0f} s", ""]
        ops = Counter(r.op for r in self.runs)
        names = [op for op in OPS if ops[op]]
        lines += ["| kill moment (phase the job was in) | " + " | ".join(names) + " | all |",
                  "|---|" + "---:|" * (len(names) + 1)]
        for phase in PHASES:
            counts = [sum(1 for r in self.runs if r.phase == phase and r.op == op) for op in names]
            lines.append(f"| {phase} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
        lines.append("| **runs** | " + " | ".join(str(ops[op]) for op in names) + f" | {n} |")
        med = {op: f"{statistics.median(d):.2f} s" if d else "-"
               for op, d in self.durations.items()}
        lines.append("| median job duration (uninterrupted) | "
                     + " | ".join(med.get(op, "-") for op in names) + " | |")
        lines += ["", "| job kinds of issue 16 | runs | how |", "|---|---:|---|"]
        for op in OPS[2:]:
            modes = Counter(r.mode if op in ("pause", "backup_set") else r.job_status or "no job"
                            for r in self.runs if r.op == op)
            lines.append(f"| {op} | {ops[op]} | "
                         + ", ".join(f"{m} ({k})" for m, k in sorted(modes.items())) + " |")
        resumed = Counter(r.op for r in self.runs if r.resumed)
        lines.append("| backed up again after a kill that kept objects (resume_reuses) | "
                     f"{sum(resumed.values())} | "
                     + ", ".join(f"after {op} ({k})" for op, k in sorted(resumed.items())) + " |")
        faulted = Counter(r.fault for r in self.runs if r.fault)
        if faulted:
            lines += ["", "| of which killed at a fault point | runs | phase seen |",
                      "|---|---:|---|"]
            for point in dict.fromkeys(p for op in FAULT_POINTS.values() for p in op):
                seen = Counter(r.phase for r in self.runs if r.fault == point)
                shown = ", ".join(f"{ph} ({k})" for ph, k in seen.most_common())
                lines.append(f"| {point} | {faulted[point]} | {shown} |")
        timed = [r for r in self.runs if not r.fault]
        if timed:
            lines += ["", "| timed kills: moment drawn, share of the expected duration | runs |",
                      "|---|---:|"]
            edges = [(-0.15, 0.0, "before the request (kill at once)"), (0.0, 0.25, "0-25%"),
                     (0.25, 0.5, "25-50%"), (0.5, 0.75, "50-75%"), (0.75, 1.0, "75-100%"),
                     (1.0, 1.16, "100-115% (past the expected end)")]
            for lo, hi, label in edges:
                lines.append(f"| {label} | {sum(1 for r in timed if lo <= r.planned < hi)} |")
        lines += ["", "| check after restart | passed |", "|---|---:|"]
        for check in CHECKS:
            lines.append(f"| {check} | {self.passed[check]}/{n} |")
        failures = self.failures
        failed_runs = sum(1 for r in self.runs if r.failures)
        lines += ["", (f"failures: {len(failures)} in {failed_runs} runs "
                       "(shown once, at the run where each first appeared)")]
        lines += [f"  {f}" for f in self.new_failures()[:50]]
        return "\n".join(lines)

    def new_failures(self) -> list[str]:
        """Failures not already reported by the run before (damage that stays
        fails every later check too; the first run it shows in is what matters)."""
        out, previous = [], set()
        for r in self.runs:
            out += [f"run {r.index} ({r.op}, {r.fault or 'kill'} at {r.delay:.3f} s, "
                    f"{r.phase}): {f}" for f in r.failures if f not in previous]
            previous = set(r.failures)
        return out


