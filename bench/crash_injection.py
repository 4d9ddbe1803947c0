"""Crash injection (issue 8, part 3; issue 16): N times, start `cairn serve`,
start a job (BACKUP or RESTORE of a namespace holding data, a BACKUP that is
PAUSEd and maybe RESUMEd, a backup set, BACKUP TABLE, RESTORE ALL, RESTORE
TABLE: bench/crash_jobs.py), SIGKILL the server at a random moment, restart it
and check that nothing lies and nothing is half-done:

- the interrupted job ended `failed` ("interrupted"), or `completed` if it had
  finished before the kill; no job is left queued or running; a job that died
  after its work was whole (manifest written, namespace installed) says so;
- the server's backup catalog and the target's manifests agree, every manifest
  reads, and every listed backup passes VERIFY (both `VERIFY BACKUP id` through
  the catalog and `VERIFY BACKUP id IN target`);
- after the start-up clean-up the target holds no object that no manifest
  references, except those a crashed backup keeps for the next backup under its
  lock (`[backup] resume_window`), no other lock and no temp file;
- no partial namespace: only `app` and `copy` exist; the source `app` is
  unchanged; `copy` is whole: its old content or the restored backup's, and the
  backup's if the restore completed;
- the data dir holds no stray file: `tmp/` is empty and every Parquet file under
  `files/` is registered;
- a backup set is whole or absent; RESTORE ALL installed every namespace of
  its set or none; RESTORE TABLE the whole table or nothing;
- after a kill that kept a backup's objects, the next backup reuses them and
  sends only what is missing.

The moment: the server runs with `[backup] throttle_bytes_per_second` chosen so
the job moves its bytes in about `--job-seconds` (1 s); the kill comes after a
delay drawn uniformly from [-0.15, 1.15] times the job's expected duration
(measured from the runs that completed), from when the request was sent. A
negative draw kills at once, before the job starts; the tail lands after it
ends. The phase a kill hit is read back from the job row after the restart.

A uniform moment rarely lands in the narrow windows (between the manifest and
the catalog record, between install and the job row, inside keep_last's
prune), so a quarter of the runs (`--fault-share`) instead start the server
with `CAIRN_FAULTS=<point>:kill` for a random named point of `server/faults.py`
that the job passes: the server SIGKILLs itself exactly there (the timed kill
stays as a fallback if the point is not reached).

Each run: a throttled server takes the job and is killed; an unthrottled one
recovers, is checked, and prepares the next run (a fresh `app.churn` table with
flushed, buffered and soft-deleted rows, so each backup has new bytes to move;
`app.base` is deduplicated). Backups use `keep_last = 4`, so the drop of old
backups inside a backup job is under fire too.

    python bench/crash_injection.py --runs 200 [--seed 8] [--job-seconds 1.0]

`tests/proof/test_crash_injection.py` runs the same `run_campaign` with 12 runs.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import crash_jobs  # noqa: E402
from bench.cairn_process import CairnProcess, write_config  # noqa: E402 (after the path)
from bench.crash_jobs import JobsBefore  # noqa: E402
from bench.crash_record import CHECKS, FAULT_POINTS, PHASES, Campaign, Run  # noqa: E402
from storage.backup import Repository, resolve_target  # noqa: E402

TARGET = "crash"
KEEP_LAST = 4



# --- the campaign ---------------------------------------------------------------------


class _World:
    """The source namespace, the target and what we know about every backup."""

    def __init__(self, workdir: Path, rng: random.Random, job_seconds: float) -> None:
        self.workdir = workdir
        self.rng = rng
        self.job_seconds = job_seconds
        self.data = workdir / "data"
        self.root = workdir / "backups"
        self.log = workdir / "server.log"
        self.backup_digest: dict[str, str] = {}  # backup_id -> digest of app when taken
        self.durations: dict[str, list[float]] = {"backup": [], "restore": []}
        self.members: dict[str, str | None] = {}  # backup_id -> digest of its namespace
        self.churn_rows: dict[str, str | None] = {}  # backup_id -> rows of app.churn then
        self.next_id = 1_000_000
        self.keep_last = KEEP_LAST
        self.config_n = 0

    def server(self, throttle: int, faults: str = "") -> CairnProcess:
        self.config_n += 1
        cfg = write_config(self.workdir / f"cairn-{self.config_n % 2}.toml", self.root, throttle)
        return CairnProcess(self.data, cfg, self.log, env={"CAIRN_FAULTS": faults}).start()

    def repo(self) -> Repository:
        return Repository(resolve_target(TARGET, [str(self.root)], {}))

    # --- data ---

    def _rows(self, n: int) -> str:
        out = []
        for _ in range(n):
            out.append(f"({self.next_id}, '{self.rng.randbytes(300).hex()}')")
            self.next_id += 1
        return ", ".join(out)

    def setup(self, srv: CairnProcess) -> None:
        srv.ok("CREATE NAMESPACE app; CREATE TABLE app.base (id BIGINT PRIMARY KEY, data TEXT)")
        for _ in range(2):
            srv.ok(f"INSERT INTO app.base VALUES {self._rows(30)}; FLUSH TABLE app.base")
        crash_jobs.setup_other(srv, self._rows(20))
        self.churn(srv)
        row = srv.rows(f"BACKUP DATABASE app TO '{TARGET}' WITH (label = 'baseline')")[0]
        self.backup_digest[row["backup_id"]] = digest(srv, "app") or ""
        self.churn_rows[row["backup_id"]] = crash_jobs.table_rows(srv, "app.churn")

    def digest_app(self, srv: CairnProcess) -> str:
        return digest(srv, "app") or ""

    def churn(self, srv: CairnProcess) -> None:
        """New bytes for the next backup: three flushed files, buffered rows, a
        soft delete and an update, in a table made afresh."""
        srv.ok("DROP TABLE IF EXISTS app.churn;"
               "CREATE TABLE app.churn (id BIGINT PRIMARY KEY, data TEXT, n INT)")
        for _ in range(3):
            srv.ok(
                f"INSERT INTO app.churn (id, data) VALUES {self._rows(40)}; FLUSH TABLE app.churn"
            )
        srv.ok(f"INSERT INTO app.churn (id, data) VALUES {self._rows(10)};"
               f"DELETE FROM app.churn WHERE id = {self.next_id - 3};"
               f"UPDATE app.churn SET n = 7 WHERE id = {self.next_id - 5}")

    def backup_bytes_to_move(self, srv: CairnProcess) -> int:
        t = srv.rows("SELECT flushed_rows, buffered_rows, bytes FROM system.tables "
                     "WHERE namespace = 'app' AND table_name = 'churn'")[0]
        per_row = t["bytes"] / max(1, t["flushed_rows"])
        return int(t["bytes"] + per_row * t["buffered_rows"])

    def expected_seconds(self, op: str) -> float:
        seen = self.durations.setdefault(op, [])
        if not seen and op == "pause":
            seen = self.durations["backup"]
        # Until a job of this kind has completed, guess long, so the window
        # reaches past its end and the first completions calibrate it.
        return statistics.median(seen[-9:]) if seen else self.job_seconds * 1.25 + 0.15


def digest(srv: CairnProcess, ns: str) -> str | None:
    """Everything a namespace holds, as one hash: tables, schema history, all
    rows (soft-deleted ones too); None when it does not exist."""
    status, body = srv.post(f"SHOW TABLES IN {ns}")
    if status == 404:
        return None
    if status != 200:
        raise RuntimeError(f"SHOW TABLES IN {ns}: {status} {body}")
    parts: list[Any] = []
    for t in sorted(body["results"][0]["rows"], key=lambda r: r["table_name"]):
        name = f"{ns}.{t['table_name']}"
        parts.append([t["table_name"], t["table_type"], t["schema_version"], t["created_at"],
                      srv.rows(f"DESCRIBE TABLE {name} HISTORY"),
                      srv.rows(f"SELECT * FROM {name} ORDER BY id"),
                      srv.rows(f"SELECT * FROM {name} WHERE _deleted = true ORDER BY id")])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _jobs(srv: CairnProcess) -> dict[str, dict[str, Any]]:
    return {j["job_id"]: j for j in srv.rows(
        "SELECT job_id, job_type, status, backup_id, namespace, error_message, created_at, "
        "started_at, finished_at, fraction_completed, result FROM system.jobs")}


def _seconds(a: str, b: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


@dataclass
class Before:
    """What the checks after the restart compare against."""

    app: str | None
    copy: str | None
    jobs: set[str]
    manifests: set[str]
    restore_id: str | None = None
    jb: JobsBefore | None = None


def run_campaign(workdir: Path, runs: int, seed: int = 8, job_seconds: float = 1.0,
                 progress: Callable[[str], None] | None = None,
                 fault_share: float = 0.25, keep_last: int = KEEP_LAST,
                 forced: dict[int, tuple[str, str | None]] | None = None) -> Campaign:
    """The whole campaign in `workdir` (made empty first). Failed checks are
    recorded per run, never raised; an unexpected error (a server that does not
    start, a request that fails) is recorded as a failure and ends the campaign.
    `forced` pins run i to (op, fault point or None) after the draws, so a short
    campaign can be sure to visit a narrow window."""
    started = time.monotonic()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    rng = random.Random(seed)
    world = _World(workdir, rng, job_seconds)
    world.keep_last = keep_last
    campaign = Campaign(seed=seed)
    srv: CairnProcess | None = None
    try:
        srv = world.server(0)
        world.setup(srv)
        for i in range(1, runs + 1):
            run = Run(i, crash_jobs.draw_op(rng), rng.uniform(-0.15, 1.15))
            if run.op != "pause" and rng.random() < fault_share:
                run.fault = rng.choice(FAULT_POINTS[run.op])
                run.planned = 1.3  # the fallback, should the point not be reached
            if forced and i in forced:
                run.op, run.fault = forced[i]
                # A pinned point must be where the kill lands: the fallback
                # kill comes late enough that a job slowed by a busy machine
                # (a suite's other worker) reaches it first. At 1.3 times the
                # expected time, the first RESTORE (its time still a guess)
                # was once killed before its install, not after it; at 3 times,
                # at load average 15-20, a keep_last before its prune. Every
                # pinned point is reached, so the bound costs nothing.
                run.planned = 30.0 if run.fault else run.planned
            campaign.runs.append(run)
            try:
                assert srv is not None
                srv = _one_run(world, srv, run, campaign)
            except KeyboardInterrupt:  # SIGINT: stop, report the runs done
                campaign.runs.pop()
                srv = None
                break
            except Exception as exc:  # noqa: BLE001 - recorded, then the campaign stops
                run.failures.append(f"harness: {type(exc).__name__}: {exc}")
                srv = None
            if progress is not None:
                at = f"at {run.fault}" if run.fault else f"kill at {run.delay:6.3f} s"
                progress(f"run {i:3d} {run.op:7s} {at:28s} {run.phase:30s} "
                         f"{'FAILED: ' + '; '.join(run.failures) if run.failures else 'ok'}")
            if srv is None:
                break
    finally:
        if srv is not None:
            srv.stop()
        campaign.seconds = time.monotonic() - started
        campaign.durations = {op: list(d) for op, d in world.durations.items()}
    return campaign


def snapshot(world: _World, srv: CairnProcess) -> Before:
    return Before(digest(srv, "app"), digest(srv, "copy"), set(_jobs(srv)),
                  {m["backup_id"] for m in world.repo().list_manifests()},
                  jb=crash_jobs.snapshot_jobs(srv, digest))


def _one_run(world: _World, srv: CairnProcess, run: Run, campaign: Campaign) -> CairnProcess:
    """`srv` is an unthrottled server with the data ready; returns the next one."""
    rng = world.rng
    before = snapshot(world, srv)
    if run.op == "backup":
        throttle = world.backup_bytes_to_move(srv) / world.job_seconds
        statement = (f"BACKUP DATABASE app TO '{TARGET}' "
                     f"WITH (keep_last = {world.keep_last}, label = 'run {run.index}')")
    elif run.op == "restore":
        listed = [b for b in srv.rows(f"SHOW BACKUPS FOR DATABASE app IN '{TARGET}'")
                  if b["backup_id"] in world.backup_digest]  # not a table backup
        chosen = rng.choice(listed)
        before.restore_id = chosen["backup_id"]
        throttle = chosen["bytes"] / world.job_seconds
        replace = before.copy is not None and rng.random() < 0.5
        if before.copy is not None and not replace:
            srv.ok("DROP NAMESPACE copy CASCADE")
            before.copy = None
        statement = (f"RESTORE DATABASE app FROM '{TARGET}' AS copy WITH (backup_id = "
                     f"'{before.restore_id}'{', replace = true' if replace else ''})")
    else:
        assert before.jb is not None
        statement, moved = crash_jobs.prepare(world, srv, run, before.jb)
        if run.op == "restore_all":  # prepare may have taken a set first
            before.manifests = {m["backup_id"] for m in world.repo().list_manifests()}
            before.jobs = set(_jobs(srv))
        throttle = moved / world.job_seconds
    run.statement = statement
    srv.stop()

    victim = world.server(max(1, int(throttle)), f"{run.fault}:kill" if run.fault else "")
    run.delay = max(0.0, run.planned * world.expected_seconds(run.op))
    if run.op == "pause":
        sent = time.monotonic()
        try:
            crash_jobs.drive_pause(victim, run, rng, world.expected_seconds("backup"))
        finally:
            run.delay = time.monotonic() - sent
            victim.kill()
        return _after_kill(world, run, before, campaign)
    conn = victim.send(statement)
    sent = time.monotonic()
    if run.fault:
        while victim.proc is not None and victim.proc.poll() is None \
                and time.monotonic() - sent < run.delay:
            time.sleep(0.01)
        run.delay = time.monotonic() - sent
    else:
        time.sleep(run.delay)
    victim.kill()
    try:
        conn.sock.settimeout(1.0)  # type: ignore[union-attr]
        resp = conn.getresponse()
        run.answered = resp.status == 200 and json.loads(resp.read())["status"] == "success"
    except (OSError, http.client.HTTPException, ValueError):
        run.answered = False
    finally:
        conn.close()
    return _after_kill(world, run, before, campaign)


def _after_kill(world: _World, run: Run, before: Before, campaign: Campaign) -> CairnProcess:
    srv = world.server(0)
    for name, ok in check_after_restart(world, srv, run, before).items():
        campaign.passed[name] += ok
    world.churn(srv)
    return srv


def check_after_restart(world: _World, srv: CairnProcess, run: Run,
                        before: Before) -> dict[str, bool]:
    """Every check of the module docstring against a freshly restarted `srv`;
    failures go to `run.failures`, the phase the kill hit to `run.phase`."""
    passed: dict[str, bool] = {c: True for c in CHECKS}

    def check(name: str, ok: bool, message: str) -> None:
        if not ok:
            passed[name] = False
            run.failures.append(f"{name}: {message}")

    # The interrupted job.
    jobs = _jobs(srv)
    new = [j for jid, j in jobs.items() if jid not in before.jobs
           and j["job_type"] in ("backup", "restore")]
    active = [j for j in jobs.values() if j["status"] in ("queued", "running")]
    check("job_ended", not active, f"jobs still active after restart: {active}")
    check("job_ended", len(new) <= 1, f"more than one new job: {new}")
    job = new[0] if new else None
    if job is not None:
        run.job_status = job["status"]
        check("job_ended", job["status"] in ("failed", "completed"), f"job is {job['status']}")
        if job["status"] == "failed":
            check("job_ended", "interrupted" in (job["error_message"] or ""),
                  f"failed job says {job['error_message']!r}")
        if job["status"] == "completed" and run.op != "pause":
            world.durations.setdefault(run.op, []).append(
                _seconds(job["created_at"], job["finished_at"]))
    check("job_ended", not (run.answered and (job is None or job["status"] != "completed")),
          "the client got success but the job is not completed")

    # Backups: the catalog and the target agree, every one reads and verifies.
    repo = world.repo()
    manifests = repo.list_manifests()
    unreadable = [m for m in manifests if "error" in m]
    check("catalog_matches_target", not unreadable, f"unreadable manifests: {unreadable}")
    in_target = {m["backup_id"] for m in manifests if "error" not in m}
    catalog = {b["backup_id"] for b in srv.rows("SHOW BACKUPS")}
    check("catalog_matches_target", catalog == in_target,
          f"catalog-only {sorted(catalog - in_target)}, target-only {sorted(in_target - catalog)}")
    for backup_id in sorted(catalog | in_target):
        for text in (f"VERIFY BACKUP '{backup_id}'", f"VERIFY BACKUP '{backup_id}' IN '{TARGET}'"):
            status, body = srv.post(text)
            valid = status == 200 and body["results"][0]["rows"][0]["is_valid"] is True
            shown = body.get("error") or body["results"][0]["rows"][0]["errors"]
            check("backups_verify", valid, f"{text}: {status} {shown}")

    # New backups: only the job's own (a set's members), and only if its manifests landed.
    jb = before.jb or JobsBefore()
    made = crash_jobs.made_backups(run, job, in_target)
    appeared = in_target - before.manifests
    check("catalog_matches_target", appeared <= made,
          f"backups appeared that no job made: {sorted(appeared - made)}")
    complete_backup = bool(made & appeared)
    for bid in made & appeared:
        if run.op == "backup_table":
            world.churn_rows[bid] = jb.churn
        else:
            crash_jobs.record(world, bid, bid.split(".", 1)[1] if "." in bid else "app", jb)
    if job is not None and job["job_type"] == "backup" and job["status"] == "completed":
        check("catalog_matches_target", complete_backup, "completed backup is not in the target")
    for book in (world.backup_digest, world.members, world.churn_rows):
        for gone in set(book) - in_target:
            del book[gone]
    crash_jobs.check_sets(srv.rows("SHOW BACKUPS"), check)

    # The target: nothing unreferenced but what a crashed backup keeps for the
    # next one under its lock ([backup] resume_window); no other lock, no temp file.
    kept = {j["result"]["backup_id"] for j in jobs.values()
            if isinstance(j.get("result"), dict) and j["result"].get("kept_for_resume")}
    lock_docs = repo.list_locks()
    locks = {d["backup_id"] for d in lock_docs}
    check("no_orphan_objects", locks <= kept, f"locks no kept backup owns: {sorted(locks - kept)}")
    locked = {oid for d in lock_docs if "error" not in d for oid in d["oids"]}
    objects = set(repo.list_objects())
    referenced = repo.referenced_objects()
    orphans = objects - referenced - locked
    check("no_orphan_objects", not orphans,
          f"{len(orphans)} unreferenced objects, e.g. {sorted(orphans)[:2]}")
    check("no_orphan_objects", referenced <= objects,
          f"referenced objects missing: {sorted(referenced - objects)[:2]}")
    target_dir = world.root / TARGET
    stray = [p.relative_to(target_dir).as_posix() for p in (target_dir / "tmp").glob("*")]
    check("no_orphan_objects", not stray, f"left in the target: {stray}")

    # Namespaces: the source untouched, the copy whole.
    names = {r["namespace"] for r in srv.rows("SHOW NAMESPACES")}
    check("no_partial_namespace", names <= {"app", "copy", "other"}, f"namespaces {sorted(names)}")
    if run.op != "restore_all":
        check("source_unchanged", digest(srv, "app") == before.app, "namespace app changed")
    if run.op not in ("restore_all", "restore_table"):
        check("source_unchanged", digest(srv, "other") == jb.namespaces.get("other"),
              "namespace other changed")
    copy_after = digest(srv, "copy")
    installed = crash_jobs.check_restores(srv, run, jb, job, digest, check)
    if run.op == "restore":
        wanted = world.backup_digest.get(before.restore_id or "")
        check("no_partial_namespace", wanted is not None, f"unknown backup {before.restore_id}")
        check("no_partial_namespace", copy_after in (before.copy, wanted),
              "copy is neither its old self nor the backup")
        if job is not None and job["status"] == "completed":
            check("no_partial_namespace", copy_after == wanted,
                  "restore completed but copy differs from the backup")
        installed = copy_after == wanted and before.copy != wanted
    elif run.op != "restore_all":
        check("no_partial_namespace", copy_after == before.copy, "copy changed during a backup")

    # The data dir: nothing stray.
    tmp = list((world.data / "tmp").glob("*")) if (world.data / "tmp").exists() else []
    check("data_dir_clean", not tmp, f"data/tmp holds {[p.name for p in tmp]}")
    on_disk = sum(1 for _ in (world.data / "files").rglob("*.parquet"))
    registered = sum(r["files"] for r in srv.rows("SELECT files FROM system.tables"))
    check("data_dir_clean", on_disk == registered,
          f"{on_disk} Parquet files on disk, {registered} registered")

    # A job that died after its work was whole says so (it is "failed" only
    # because the process died), or its row would tell a lie.
    if job is not None and job["status"] == "failed" and (complete_backup or installed):
        check("job_ended", "complete" in (job["error_message"] or ""),
              f"the {run.op} was complete but its job only says {job['error_message']!r}")

    # Which phase the kill hit.
    if job is None:
        run.phase = PHASES[0]
    elif job["status"] == "completed":
        run.phase = PHASES[7]
    elif complete_backup or installed:
        run.phase = PHASES[6]
    elif not job["started_at"]:
        run.phase = PHASES[1]
    else:
        f = float(job["fraction_completed"] or 0.0)
        run.phase = PHASES[2 + min(3, int(f * 4))]
    if run.op == "pause" and job is not None and run.phase not in PHASES[6:8]:
        run.phase = run.mode
    crash_jobs.check_paused(srv, run, job, check)
    crash_jobs.resume_after_crash(world, srv, run, job, check)
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--job-seconds", type=float, default=1.0)
    parser.add_argument("--fault-share", type=float, default=0.25,
                        help="share of runs killed at a named fault point instead of a timed kill")
    parser.add_argument("--workdir", help="default: a fresh temp dir, removed afterwards")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="cairn-crash-")
    workdir = Path(args.workdir or tmp or ".")
    campaign = run_campaign(workdir / "campaign", args.runs, args.seed, args.job_seconds,
                            progress=None if args.quiet else lambda s: print(s, flush=True),
                            fault_share=args.fault_share)
    print()
    print(campaign.table())
    if campaign.failures:
        print(f"\nserver log kept in {workdir / 'campaign' / 'server.log'}")
    elif tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if campaign.failures else 0


if __name__ == "__main__":
    sys.exit(main())
