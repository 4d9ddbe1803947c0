"""Continuous archiving: one loop per archived namespace ships its change log
(storage/archive/changes.py) to the target as segments, every `interval`.

START ARCHIVING turns the namespace's change log on, then takes a base backup (its snapshot is a
cut of the log: exact to one lsn and instant); segments continue from that cut. Each cycle marks
the log (every change up to that lsn and instant is committed), reads the changes after the
target's end, writes them as one segment, and only then records the new end and trims the
shipped changes from the log, in one catalog batch. A crash anywhere leaves the log holding
everything not yet recorded as shipped; at restart the loop resumes after the target's newest
segment, so nothing is shipped twice or skipped. So it does after any cycle that failed: its
segment may have landed (the reply lost, the catalog batch after it failed).

A target that lost segments (its end is before what this server shipped) cannot be continued:
the loop takes a new base backup and continues from it, starting a new restorable window. So it
does when no base backup of the current window is left in the target (DROP BACKUP, keep_last, or
deleted by hand), or a segment of the window is gone: checked at start, right after any drop of
a backup of the namespace, after a failed cycle, and every BASE_CHECK_S, so the archive never
goes on shipping changes that no base can use. An archive RESTORE refuses (a stray file,
overlapping segments), or one another writer wrote into (archive_fork.py), is left for a new
one, from a new base; a target emptied meanwhile is set up again (store.still_there)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from catalog import Archive
from catalog.errors import CairnError, InvalidArgument
from catalog.ids import new_id
from storage.archive import segment, store
from storage.archive.changes import now_us
from storage.archive.helper import BodyHelper
from storage.archive.segment import SegmentName
from storage.archive.steps import pace, pacing, step
from storage.backup import Repository
from storage.timing import TIMINGS

from . import faults
from .archive_base import NAMESPACE_CHECK_S, NamespaceAwaited, namespace_awaited
from .archive_fork import fork_reason, leave, own_end
from .archive_wait import TargetWait
from .backup_run import BackupPlan, run_backup
from .repos import remove_own_tmp, repository
from .state import Cairn, Session

log = logging.getLogger("cairn.archive")

MAX_SEGMENT_BYTES = 16 << 20  # changes' data per segment; a backlog ships in several
HEARTBEAT_MIN_US = 10_000_000  # an idle archive still marks the target at least this often
RETRY_MAX_S = 30.0
BASE_CHECK_S = 60.0  # a base deleted behind Cairn's back is noticed within this
class Archiver:
    """The loop of one archived namespace. Its catalog record is the state;
    `lock` makes each cycle, STOP and START one at a time. One per namespace
    at a time: START's (its base, then its loop: `launch`) or start-up's. It
    ships only the archive `archive_id` (None: any running); a loop whose
    archive was stopped, or is another START's, ends writing nothing."""

    def __init__(self, service: ArchiveService, namespace: str,
                 archive_id: str | None = None) -> None:
        self.service = service
        self.cairn = service.cairn
        self.namespace = namespace
        self.archive_id = archive_id
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.stopping = False
        self.resumed = False
        self.task: asyncio.Task[None] | None = None
        self._repo: Repository | None = None
        self.failures = 0
        self.check_base = True  # is a base of the current window left? (see base_gone)
        self.base_checked = 0.0
        self.known_base: str | None = None  # a base of the window seen in the target
        self.note: str | None = None  # why it left a forked archive (archive_fork.py)
        self.base_id: str | None = None  # its last base's backup_id (STOP refuses it paused)
        self.awaits_namespace = False  # a new base waits for the namespace to exist again
        self.waits = TargetWait(self.cairn.config.backup.s3_deadline_seconds)  # (S3)

    # --- the record ------------------------------------------------------------

    def record(self) -> Archive:
        rec = self.cairn.catalog.get(Archive, self.namespace)
        if rec is None:
            raise InvalidArgument(f"namespace '{self.namespace}' is not being archived")
        return rec

    def owns(self, rec: Archive | None) -> bool:
        """Whether `rec` is the running archive this archiver ships."""
        return (rec is not None and rec.status != "stopped"
                and self.archive_id in (None, rec.archive_id))

    def repo(self, rec: Archive) -> Repository:
        if self._repo is None:
            self._repo = repository(self.cairn, rec.target_text, rec.secret, rec.compression)
        return self._repo

    # --- the loop --------------------------------------------------------------

    async def run(self) -> None:
        with contextlib.suppress(OSError):  # its imports overlap the first cycle's
            await self.cairn.run(self.service.helper.start)  # (retried by the cycle)
        while not self.stopping:
            rec = await self.cairn.run(self.cairn.catalog.get, Archive, self.namespace)
            delay = rec.interval_ms / 1000 if rec is not None else 0.0
            try:
                async with self.lock:
                    if self.stopping:
                        return
                    # a STOP (and a START) since the read above is seen here
                    rec = await self.cairn.run(self.cairn.catalog.get, Archive, self.namespace)
                    gone = not self.owns(rec)
                    more = not gone and await self.cycle()
                if gone:
                    if self.service.archivers.get(self.namespace) is self:
                        del self.service.archivers[self.namespace]
                    await self.service.release_helper()
                    return
                self.failures = 0
                if more:
                    continue
            except asyncio.CancelledError:
                raise
            except NamespaceAwaited as exc:  # said, no job, and looked for again soon
                async with self.lock:
                    await self.cairn.run(self._failed, exc.message)
                delay = min(delay, NAMESPACE_CHECK_S)
            except Exception as exc:  # recorded; the loop keeps trying
                self.failures += 1
                message = (exc.message if isinstance(exc, CairnError)
                           else f"{type(exc).__name__}: {exc}")
                if not isinstance(exc, CairnError):
                    log.exception("archiving %s failed", self.namespace)
                else:
                    log.warning("archiving %s failed: %s", self.namespace, message)
                # A failed cycle may have written its segment all the same:
                # the next one finds out first (resume: store.written_after),
                # never writes another from the same start. It checks for a
                # base again too (`failed` stays until one is taken).
                self._repo = None  # re-read config and keys: the target may be new
                self.resumed = False
                self.check_base = True
                try:
                    async with self.lock:  # never after a STOP's finish
                        await self.cairn.run(self._failed, message)
                except Exception as failed:  # noqa: BLE001 - the loop must go on
                    log.warning("archiving %s: cannot record the failure: %s",
                                self.namespace, failed)
                delay = min(RETRY_MAX_S, delay * 2 ** min(self.failures, 6))
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)

    def _failed(self, message: str) -> None:
        rec = self.cairn.catalog.get(Archive, self.namespace)
        if self.owns(rec) and not self.stopping:
            assert rec is not None
            rec.status, rec.last_error = "failed", message
            self.cairn.catalog.keep(rec)  # in memory while the disk is full

    async def cycle(self, final: bool = False) -> bool:
        """One pass: a base backup if the target needs one, then ship. True when
        a backlog remains (ship again at once)."""
        rec = await self.cairn.run(self.record)
        if rec.base_lsn is None:
            await self.new_base(rec)
            rec = await self.cairn.run(self.record)
        if not self.resumed:
            rec = await self.cairn.run(self.resume, rec)
            if rec.base_lsn is None:
                return True
            self.resumed = True
        if self.awaits_namespace or await self.base_gone(rec):
            await self.new_base(rec)
            rec = await self.cairn.run(self.record)
        return await self.cairn.run(self.ship, rec, final)

    async def base_gone(self, rec: Archive) -> bool:
        """True when the target no longer holds a base backup the current window
        starts from, or a segment between it and what was shipped, or the
        archive holds what makes RESTORE refuse every time in it (then the new
        base starts a new archive: `_new_archive`). Checked when asked (see
        `check_base`: at start, after a drop, after a failed cycle), and every
        BASE_CHECK_S."""
        if not self.check_base and time.monotonic() - self.base_checked < BASE_CHECK_S:
            return False
        self.check_base = False
        self.base_checked = time.monotonic()
        assert rec.base_us is not None and rec.base_lsn is not None
        self.known_base = await self.cairn.run(
            store.base_left, self.repo(rec), self.namespace, rec.archive_id, rec.base_lsn,
            rec.base_us, self.known_base or rec.base_backup_id)
        if self.known_base is None:
            log.warning("archive of %s: no base backup of its window is left in %s; "
                        "taking a new base", self.namespace, rec.target)
            return True
        listing = await self.cairn.run(store.list_segments, self.repo(rec), self.namespace,
                                       rec.archive_id)
        wrong = store.listing_problems(rec.archive_id, listing)
        if wrong:  # every restore in the archive refuses it: go on in a new one
            await self.cairn.run(self._new_archive, fork_reason(rec, listing) or wrong[0])
            return True
        assert rec.shipped_lsn is not None and rec.shipped_us is not None
        end = (rec.shipped_lsn, rec.shipped_us)
        if end == (rec.base_lsn, rec.base_us):
            return False  # nothing shipped since the base
        found = await self.cairn.run(store.base_of_last_run, self.repo(rec), self.namespace,
                                     rec.archive_id, end, self.known_base, listing)
        if found is None:
            log.warning("archive of %s: target %s lost a segment between the window's base "
                        "and what was shipped; taking a new base", self.namespace, rec.target)
            return True
        self.known_base = found
        return False

    def _new_archive(self, reason: str) -> None:
        """Ship into a new archive from the next base on: RESTORE refuses every
        time in the current one (a stray file, overlapping segments)."""
        rec = self.record()
        self._left(rec, reason)
        self.cairn.catalog.put(rec)

    def _left(self, rec: Archive, reason: str) -> None:
        """`rec` goes on in a new archive; the reason stays its last_error."""
        leave(rec, reason)
        self.archive_id, self.note, self.resumed = rec.archive_id, reason, False

    async def new_base(self, rec: Archive) -> None:
        """take_base, once the namespace exists (see archive_base.py)."""
        awaited = await self.cairn.run(namespace_awaited, self.cairn.catalog, self.namespace,
                                       self.awaits_namespace)
        self.awaits_namespace = awaited is not None
        if awaited is not None:
            raise awaited
        await self.take_base(rec)

    async def take_base(self, rec: Archive,
                        on_job: Callable[[str], None] | None = None) -> Any:
        """A base backup into the target (a job in system.jobs; `on_job` is told
        its id, as a Session's); segments continue from its cut. A Repository
        of its own, nothing cached: a target emptied since the archiver's was
        opened gets its config.json and key file again."""
        self._repo = None
        repo = self.repo(rec)
        plan = BackupPlan(self.namespace, repo, new_id("bk"), label="archive base",
                          compression=rec.compression, after_windows=True)
        self.base_id = plan.backup_id
        # Its job is the user's who started archiving, as a job they ran is.
        session = Session(user_id=rec.started_by, namespace=self.namespace,
                          text=f"BACKUP DATABASE {self.namespace} TO '{rec.target}' "
                               "(base of continuous archiving)", on_job=on_job)
        job = await self.cairn.jobs.run(
            "backup", session, lambda ctx: run_backup(self.cairn, ctx, plan),
            namespace=self.namespace, target=repo.uri, statement=session.text)
        assert plan.cut is not None
        lsn, at = plan.cut

        def record() -> None:
            now = self.record()
            batch = self.cairn.catalog.batch()
            now.base_backup_id, now.base_lsn, now.base_us = plan.backup_id, lsn, at
            now.shipped_lsn, now.shipped_us, now.job_id = lsn, at, job.job_id
            now.status, now.last_error = "running", self.note
            batch.put(now)
            self.cairn.engine.changes.trim(self.namespace, lsn, batch)
            batch.commit()
            self.cairn.engine.changes.shipped(self.namespace, lsn)

        await self.cairn.run(record)
        self.resumed = True
        self.check_base, self.base_checked = False, time.monotonic()
        self.known_base = plan.backup_id
        return job

    def resume(self, rec: Archive) -> Archive:
        """Continue after the target's newest segment of this archive that continues
        what this server recorded as shipped (store.written_after: checked, never
        taken by its name). A target that no longer holds the recorded end lost
        segments: a new base. First the temp files of a segment a killed
        server was writing go (repos.remove_own_tmp: best effort)."""
        repo = self.repo(rec)
        try:
            remove_own_tmp(repo)
        except CairnError as exc:
            log.warning("archive of %s: cannot remove leftover temp files from %s: %s",
                        self.namespace, rec.target, exc.message)
        listing = store.list_segments(repo, self.namespace, rec.archive_id)
        assert rec.shipped_us is not None
        end = (rec.shipped_lsn, rec.shipped_us)
        held = rec.shipped_lsn == rec.base_lsn or any(
            (n.last_lsn, n.through_us) == end for n in listing.segments)
        batch = self.cairn.catalog.batch()
        if held:
            limit = self.cairn.engine.changes.mark(self.namespace)
            mine, refused = store.written_after(repo, self.namespace, rec.archive_id, listing,
                                                end, limit)
            for why in refused:
                log.warning("archive of %s in %s: not continuing after a segment it did not "
                            "write: %s", self.namespace, rec.target, why)
            rec.shipped_lsn, rec.shipped_us = own_end(self.cairn.engine.changes, rec, listing,
                                                      end, mine)
            reason = fork_reason(rec, listing)
            if reason is not None:  # the target holds more than this server shipped
                self._left(rec, reason)
        else:
            log.warning("archive of %s: target %s lost segments; taking a new base",
                        self.namespace, rec.target)
            rec.base_lsn = rec.base_us = rec.base_backup_id = None
        batch.put(rec)
        trimmed = rec.shipped_lsn if rec.base_lsn is not None else 0
        if trimmed:
            self.cairn.engine.changes.trim(self.namespace, trimmed, batch)
        batch.commit()
        self.cairn.engine.changes.shipped(self.namespace, trimmed)
        return rec

    def ship(self, rec: Archive, final: bool = False,
             mark: tuple[int, int] | None = None) -> bool:
        """Write the changes after the target's end as one segment (several
        cycles for a large backlog). `final` writes even an empty segment, so
        the target says nothing changed up to the mark. Its wall time and its
        thread's CPU time go to /metrics (`archive_ship`, `archive_ship_cpu`):
        what archiving costs the writers beside it. The cycle paces itself
        (storage/archive/steps.py: a 1 ms nap after each 1 ms of running), so
        its GIL time comes in short pieces the writers interleave with."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            with pacing():
                return self._ship(rec, final, mark)
        finally:
            TIMINGS.phase("archive_ship_cpu", time.thread_time() - cpu)
            TIMINGS.phase("archive_ship", time.perf_counter() - wall)

    def _ship(self, rec: Archive, final: bool, mark: tuple[int, int] | None) -> bool:
        changes_log = self.cairn.engine.changes
        hi, through = mark if mark is not None else changes_log.mark(self.namespace)
        assert rec.shipped_us is not None
        raw = None
        if hi > rec.shipped_lsn:  # else nothing was committed since: no read at all
            with step("read"):
                raw = changes_log.read_raw(self.namespace, rec.shipped_lsn, hi,
                                           MAX_SEGMENT_BYTES)
        more = raw is not None and raw.last_lsn < hi
        if raw is not None and more:
            through = raw.last_us
        idle = through - rec.shipped_us
        heartbeat = max(HEARTBEAT_MIN_US, 10_000 * rec.interval_ms)
        # A base's first segment goes at once, empty or not: until it is in
        # the target, no time past the base is restorable (an idle namespace
        # had no restore point for the heartbeat's 10 s after START ARCHIVING)
        first = rec.shipped_us == rec.base_us and through > rec.shipped_us
        if raw is None and not final and idle < heartbeat and not first:
            if rec.status != "running":
                rec.status, rec.last_error = "running", self.note
                self.cairn.catalog.put(rec)
            return False
        repo = self.repo(rec)
        # never into an archive another writer wrote past this server's end
        reason = fork_reason(rec, self.waits(store.list_segments, repo, self.namespace,
                                             rec.archive_id))
        if reason is not None:
            self._left(rec, reason)
            self.cairn.catalog.put(rec)
            return True
        faults.hit("archive.before_segment", namespace=self.namespace)
        version = segment.FORMAT_VERSION  # read each time: tests write format 1 too
        if raw is None:
            plain, count, last = segment.empty_body(version), 0, rec.shipped_lsn
        else:
            count, last = len(raw.entries), raw.last_lsn
            if version == 1:  # format 1's body is the list of Changes itself
                plain = raw.msgpack()
            else:
                with step("blocks"):  # the helper's work: this thread waits, GIL released
                    plain, helper_cpu = self.service.helper.build(raw.parts())
                if helper_cpu is not None:  # (None: built here, the helper still starting)
                    TIMINGS.phase("archive_helper_cpu", helper_cpu)
        pace()
        name = SegmentName(rec.shipped_lsn, last, rec.shipped_us, through)
        size = self.waits(store.write_body, repo, self.namespace, rec.archive_id, name, plain,
                          count, version)
        faults.hit("archive.after_segment", namespace=self.namespace, segment=name.file)
        pace()
        with step("commit"):
            batch = self.cairn.catalog.batch()
            rec.shipped_lsn, rec.shipped_us = name.last_lsn, name.through_us
            rec.segments += 1
            rec.bytes += size
            rec.status, rec.last_error = "running", self.note
            batch.put(rec)
            changes_log.trim(self.namespace, name.last_lsn, batch)
            batch.commit()
            pace()
            changes_log.shipped(self.namespace, name.last_lsn)
        return more


class ArchiveService:
    """Every archiver of the server."""

    def __init__(self, cairn: Cairn) -> None:
        self.cairn = cairn
        self.archivers: dict[str, Archiver] = {}
        self.helper = BodyHelper()  # builds segment bodies in a child process
        self.closing = False

    def activate_all(self) -> None:
        """Start-up, before any statement runs: log the changes of every archived
        namespace again (commit times after anything already shipped)."""
        for rec in self.cairn.catalog.scan(Archive):
            if rec.status != "stopped":
                floor = max(rec.shipped_us or 0, now_us())
                self.cairn.engine.changes.activate(rec.namespace, floor, rec.shipped_lsn)

    def start_loops(self) -> None:
        for rec in self.cairn.catalog.scan(Archive):
            if rec.status != "stopped" and rec.namespace not in self.archivers:
                self.launch(Archiver(self, rec.namespace, rec.archive_id))

    def launch(self, arch: Archiver) -> bool:
        """Start `arch`'s loop (the archiver, so the lock, START's base held),
        unless a STOP ended it or another replaced it (two loops shipped at once)."""
        if arch.stopping or arch.task is not None or self.closing:
            return False
        if self.archivers.setdefault(arch.namespace, arch) is not arch:
            return False
        arch.task = asyncio.create_task(arch.run(), name=f"archive-{arch.namespace}")
        return True

    def live(self) -> bool:
        """Whether an archiver's loop runs, or is about to (START's base under way)."""
        return any(a.task is None or not a.task.done() for a in self.archivers.values())

    async def release_helper(self) -> None:
        """Stop the helper process (~85 MB) once no archiver is left to use it.
        The next loop starts one again (`Archiver.run`, or its first body)."""
        if self.closing or self.live():
            return
        with contextlib.suppress(RuntimeError):  # the thread pool is shut down: shutdown's
            await self.cairn.run(self.helper.close)

    def backup_dropped(self, namespace: str) -> None:
        """A backup of `namespace` was dropped (from any thread): its archiver
        checks at its next cycle that a base of its window is still there."""
        arch = self.archivers.get(namespace)
        if arch is not None:
            arch.check_base = True

    def lag_ms(self, rec: Archive) -> int:
        if rec.status == "stopped":
            return 0
        return self.cairn.engine.changes.lag_ms(rec.namespace)

    def lags(self) -> list[tuple[str, str, float]]:
        """(namespace, target, lag seconds) of every running or failed archive, for /metrics."""
        return [(rec.namespace, rec.target_text, self.lag_ms(rec) / 1000.0)
                for rec in self.cairn.catalog.scan(Archive) if rec.status != "stopped"]

    async def shutdown(self) -> None:
        """Let each loop finish its cycle (a cycle cut short is redone after the
        restart, so this only saves work), then stop it."""
        self.closing = True
        for arch in list(self.archivers.values()):
            arch.stopping = True
            arch.wake.set()
        tasks = [a.task for a in self.archivers.values() if a.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()
        try:
            await self.cairn.run(self.helper.close)
        except RuntimeError:  # the thread pool is shut down already: here, then
            self.helper.close()


_services: weakref.WeakKeyDictionary[Cairn, ArchiveService] = weakref.WeakKeyDictionary()


def service(cairn: Cairn) -> ArchiveService:
    svc = _services.get(cairn)
    if svc is None:
        svc = _services[cairn] = ArchiveService(cairn)
    return svc


async def archive_loop(cairn: Cairn) -> None:
    """Server lifetime: run the archivers of archived namespaces until shutdown."""
    svc = service(cairn)
    svc.start_loops()
    try:
        await asyncio.Event().wait()
    finally:
        await svc.shutdown()
