"""The job kinds of issue 16 in the crash-injection campaign
(bench/crash_injection.py): a BACKUP that is PAUSEd and RESUMEd, BACKUP TABLE,
backup sets (BACKUP ALL, BACKUP DATABASE app, other), RESTORE ALL and RESTORE
TABLE, and resume-after-crash (after any kill that left a backup's objects
kept for the next one, back up again and check that only what is missing is
sent). What they draw, send and check beside the campaign's own checks."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bench.cairn_process import CairnProcess
from bench.crash_record import Run

_World = Any  # bench.crash_injection._World (which imports this module)

TARGET = "crash"
# op -> share of the runs (backup and restore are the campaign's original ops)
OP_SHARES = (("backup", 0.30), ("restore", 0.24), ("pause", 0.16), ("backup_set", 0.09),
             ("backup_table", 0.07), ("restore_all", 0.07), ("restore_table", 0.07))
PAUSE_MODES = ("pause requested", "paused", "resumed")
SET_SCOPE = re.compile(r"^(?:all|databases) \(set (?P<set>[^:]+): (?P<names>[^)]*)\)$")


def draw_op(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for op, share in OP_SHARES:
        acc += share
        if x < acc:
            return op
    return OP_SHARES[-1][0]


@dataclass
class JobsBefore:
    """What the checks of the new kinds compare against."""

    namespaces: dict[str, str | None] = field(default_factory=dict)  # ns -> digest
    churn: str | None = None  # rows of app.churn
    other_churn: str | None = None  # rows of other.churn (RESTORE TABLE's destination)
    other_o: str | None = None  # rows of other.o (RESTORE TABLE must leave it alone)
    set_members: dict[str, str | None] = field(default_factory=dict)  # RESTORE ALL: ns -> wanted
    table_wanted: str | None = None  # RESTORE TABLE: rows of the chosen backup's churn
    kept_objects: dict[str, int] = field(default_factory=dict)


def setup_other(srv: CairnProcess, rows: str) -> None:
    srv.ok("CREATE NAMESPACE other; CREATE TABLE other.o (id BIGINT PRIMARY KEY, data TEXT);"
           f"INSERT INTO other.o VALUES {rows}; FLUSH TABLE other.o")


def table_rows(srv: CairnProcess, name: str) -> str | None:
    """A table's rows (soft-deleted ones too) as one hash; None when absent."""
    status, body = srv.post(f"SELECT * FROM {name} ORDER BY id")
    if status != 200:
        return None
    parts = [body["results"][0]["rows"],
             srv.rows(f"SELECT * FROM {name} WHERE _deleted = true ORDER BY id")]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def namespaces(srv: CairnProcess) -> list[str]:
    return sorted(r["namespace"] for r in srv.rows("SHOW NAMESPACES"))


def snapshot_jobs(srv: CairnProcess, digest: Any) -> JobsBefore:
    return JobsBefore({ns: digest(srv, ns) for ns in namespaces(srv)},
                      table_rows(srv, "app.churn"), table_rows(srv, "other.churn"),
                      table_rows(srv, "other.o"))


def _ns_bytes(srv: CairnProcess, names: list[str]) -> int:
    quoted = ", ".join(f"'{n}'" for n in names)
    rows = srv.rows(f"SELECT sum(bytes) AS b FROM system.tables WHERE namespace IN ({quoted})")
    return int(rows[0]["b"] or 0)


def prepare(world: _World, srv: CairnProcess, run: Run, jb: JobsBefore) -> tuple[str, float]:
    """The statement of a new-kind run and the bytes it moves (for the throttle)."""
    rng = world.rng
    if run.op == "pause":
        run.mode = rng.choice(PAUSE_MODES)
        return (f"BACKUP DATABASE app TO '{TARGET}' WITH (detached = true, "
                f"keep_last = {world.keep_last}, label = 'run {run.index}')",
                world.backup_bytes_to_move(srv))
    if run.op == "backup_table":
        return (f"BACKUP TABLE app.churn TO '{TARGET}' WITH (label = 'run {run.index}')",
                world.backup_bytes_to_move(srv))
    if run.op == "backup_set":
        if rng.random() < 0.5:
            run.mode = "ALL"
            return (f"BACKUP ALL TO '{TARGET}' WITH (keep_last = 3, label = 'run {run.index}')",
                    _ns_bytes(srv, list(jb.namespaces)))
        run.mode = "DATABASE app, other"
        return (f"BACKUP DATABASE app, other TO '{TARGET}' WITH (keep_last = 3, "
                f"label = 'run {run.index}')", _ns_bytes(srv, ["app", "other"]))
    listed = {b["backup_id"]: b for b in srv.rows(f"SHOW BACKUPS IN '{TARGET}'")}
    if run.op == "restore_all":
        sets = sorted({m.group("set") for b in listed.values()
                       if (m := SET_SCOPE.match(b.get("scope") or ""))})
        if not sets:  # none yet: take one first (unthrottled), then restore it
            take_set(world, srv, jb)
            return prepare(world, srv, run, jb)
        chosen = rng.choice(sets)
        run.mode = chosen
        jb.set_members = {bid.split(".", 1)[1]: world.members.get(bid)
                          for bid in listed if bid.startswith(chosen + ".")}
        return (f"RESTORE ALL FROM '{TARGET}' WITH (backup_id = '{chosen}', replace = true)",
                sum(listed[f"{chosen}.{ns}"]["bytes"] for ns in jb.set_members))
    # restore_table: app.churn of any backup that holds it, into other.churn
    holding = sorted(b for b in listed if b in world.churn_rows)
    chosen = rng.choice(holding)
    run.mode = chosen
    jb.table_wanted = world.churn_rows[chosen]
    return (f"RESTORE TABLE app.churn FROM '{TARGET}' AS other.churn WITH "
            f"(backup_id = '{chosen}', replace = true)", listed[chosen]["bytes"])


def take_set(world: _World, srv: CairnProcess, jb: JobsBefore) -> None:
    rows = srv.rows(f"BACKUP ALL TO '{TARGET}' WITH (keep_last = 3, label = 'for restore')")
    for r in rows:
        record(world, r["backup_id"], r["namespace"], jb)


def record(world: _World, backup_id: str, ns: str, jb: JobsBefore) -> None:
    """What a backup (or a set member) holds, for the restores that pick it."""
    world.members[backup_id] = jb.namespaces.get(ns)
    if ns == "app":
        world.backup_digest[backup_id] = jb.namespaces.get("app") or ""
        world.churn_rows[backup_id] = jb.churn


def drive_pause(victim: CairnProcess, run: Run, rng: random.Random, expected: float) -> None:
    """Send the detached BACKUP, let it run, PAUSE it and maybe RESUME it; the
    caller SIGKILLs the server when this returns (run.mode says where)."""
    conn = victim.send(run.statement)
    body = json.loads(conn.getresponse().read())
    conn.close()
    job_id = body["results"][0]["rows"][0]["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if victim.rows(f"SHOW JOB '{job_id}'")[0]["status"] != "queued":
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.5) * expected)
    if run.mode == "pause requested":  # the kill lands while the job heads for its check
        pause = victim.send(f"PAUSE JOB '{job_id}'")
        time.sleep(rng.uniform(0.0, 0.3))
        pause.close()
        return
    status, _ = victim.post(f"PAUSE JOB '{job_id}'", timeout=30)
    if status != 200:
        run.mode = "ended before the pause"
        return
    time.sleep(rng.uniform(0.0, 0.3))
    if run.mode == "resumed":
        victim.ok(f"RESUME JOB '{job_id}'")
        time.sleep(rng.uniform(0.0, 1.1) * expected)


def made_backups(run: Run, job: dict[str, Any] | None, in_target: set[str]) -> set[str]:
    """The backups a run's job made that are in the target (a set: its members)."""
    if job is None or job["job_type"] != "backup" or not job["backup_id"]:
        return set()
    bid = job["backup_id"]
    return {b for b in in_target if b == bid or b.startswith(bid + ".")}


def check_sets(listed: list[dict[str, Any]], check: Any) -> None:
    """A backup set is whole or absent: every member its scope names is listed."""
    ids = {b["backup_id"] for b in listed}
    for b in listed:
        m = SET_SCOPE.match(b.get("scope") or "")
        if m is None:
            continue
        names = [n.strip() for n in m.group("names").split(",")]
        missing = [n for n in names if f"{m.group('set')}.{n}" not in ids]
        check("set_whole", not missing, f"set {m.group('set')} lacks {missing}")


def check_restores(srv: CairnProcess, run: Run, jb: JobsBefore, job: dict[str, Any] | None,
                   digest: Any, check: Any) -> bool:
    """RESTORE ALL installs every namespace of the set or none; RESTORE TABLE
    installs the whole table or leaves the old one. True when it installed."""
    completed = job is not None and job["status"] == "completed"
    if run.op == "restore_all":
        after = {ns: digest(srv, ns) for ns in jb.set_members}
        check("set_whole", None not in jb.set_members.values(),
              f"unknown member of set {run.mode}")
        untouched = all(after[ns] == jb.namespaces.get(ns) for ns in after)
        installed = all(after[ns] == jb.set_members[ns] for ns in after)
        check("set_whole", untouched or installed,
              f"RESTORE ALL installed part of {sorted(after)}")
        check("set_whole", installed or not completed, "RESTORE ALL completed, not installed")
        for ns in set(jb.namespaces) - set(after):
            check("source_unchanged", digest(srv, ns) == jb.namespaces[ns], f"{ns} changed")
        return installed and not untouched
    if run.op == "restore_table":
        got = table_rows(srv, "other.churn")
        check("no_partial_namespace", got in (jb.other_churn, jb.table_wanted),
              "other.churn is neither its old self nor the backup's app.churn")
        check("no_partial_namespace", got == jb.table_wanted or not completed,
              "RESTORE TABLE completed, other.churn differs from the backup")
        check("source_unchanged", table_rows(srv, "other.o") == jb.other_o, "other.o changed")
        return got == jb.table_wanted and got != jb.other_churn
    return False


def check_paused(srv: CairnProcess, run: Run, job: dict[str, Any] | None, check: Any) -> None:
    """A job paused (or running) when the server died is failed, not resumable."""
    if run.op != "pause" or job is None or job["status"] != "failed":
        return
    status, body = srv.post(f"RESUME JOB '{job['job_id']}'")
    code = (body.get("error") or {}).get("code")
    check("job_ended", status == 400 and code == "INVALID_ARGUMENT",
          f"RESUME of the interrupted job answered {status} {code}")


def resume_after_crash(world: _World, srv: CairnProcess, run: Run, job: dict[str, Any] | None,
                       check: Any) -> None:
    """When the killed backup of app kept its objects, back up app again: the
    kept objects are reused (not written again), only the missing ones are
    sent (`bytes_written` is exactly the bytes of the objects that appeared),
    and the kept lock is released with `resumed_by`."""
    result = job.get("result") if job is not None else None
    if not isinstance(result, dict) or not result.get("kept_for_resume") \
            or run.op not in ("backup", "pause", "backup_table"):
        return
    repo = world.repo()
    kept_id = result["backup_id"]
    oids = [o for d in repo.list_locks() if d.get("backup_id") == kept_id for o in d["oids"]]
    objdir = world.root / TARGET / "objects"
    objects_before = repo.list_objects()
    # A lock names an object before it is written: only the stored ones are kept.
    mtimes = {o: (objdir / o[:2] / o).stat().st_mtime_ns for o in oids if o in objects_before}
    row = srv.rows(f"BACKUP DATABASE app TO '{TARGET}' WITH (keep_last = {world.keep_last}, "
                   f"label = 'resume of run {run.index}')")[0]
    run.resumed = True
    objects_after = repo.list_objects()
    appeared = sum(size for o, size in objects_after.items() if o not in objects_before)
    check("resume_reuses", row["bytes_written"] == appeared,
          f"bytes_written {row['bytes_written']}, objects that appeared {appeared}")
    used = {o["oid"] for o in repo.read_manifest(row["backup_id"])["objects"]}
    rewritten = [o for o in mtimes if o in used
                 and (objdir / o[:2] / o).stat().st_mtime_ns != mtimes[o]]
    check("resume_reuses", not rewritten, f"{len(rewritten)} kept objects written again")
    check("resume_reuses", not any(d.get("backup_id") == kept_id for d in repo.list_locks()),
          "the kept lock is still there")
    after = srv.rows(f"SHOW JOB '{job['job_id']}'")[0]["result"] if job is not None else {}
    after = json.loads(after) if isinstance(after, str) else after
    check("resume_reuses", isinstance(after, dict) and after.get("kept_for_resume") is False
          and after.get("resumed_by") == row["job_id"], f"kept job's result now {after}")
    world.backup_digest[row["backup_id"]] = world.digest_app(srv)
    world.churn_rows[row["backup_id"]] = table_rows(srv, "app.churn")
