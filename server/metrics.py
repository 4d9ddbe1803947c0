"""What `GET /metrics` shows, in the Prometheus text format (prometheus_client).

Each server state (`Cairn`) owns a `Metrics` with its own `CollectorRegistry`, so
several apps in one process (tests) never share counters. Counters and
histograms move as things happen: the job runner calls `job_started` /
`job_ended`, the HTTP middleware and the pgwire front-end call
`observe_request`. Gauges that describe the present (backup age per namespace,
buffered rows, RocksDB sizes, RSS) are computed at scrape time by a collector
that reads the catalog, so they are never stale."""

from __future__ import annotations

import logging
import math
import re
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from catalog import Backup, Job, Namespace
from catalog.records import fields_decoder
from storage import duckrestart, timing
from storage.backup.origin import Origin, recorded_own

from . import duckfaults, logs

_slow_log = logging.getLogger("cairn.requests")
# A backup's or a namespace's time up to this far past the server's clock is
# taken as now (servers sharing a target, a small NTP step); one further ahead
# (the clock ran ahead when it was written, a forged manifest) never makes the
# backup age fresh: docs/http.md, cairn_backup_age_seconds.
AHEAD_SECONDS = 300.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                   5, 10, float("inf"))
ROCKSDB_PROPERTIES = {
    "rocksdb.estimate-live-data-size": "cairn_rocksdb_live_data_bytes",
    "rocksdb.total-sst-files-size": "cairn_rocksdb_sst_files_bytes",
    "rocksdb.cur-size-all-mem-tables": "cairn_rocksdb_memtable_bytes",
    "rocksdb.estimate-num-keys": "cairn_rocksdb_keys",
}

# Statement kinds a request is counted under: the first words of its first
# statement, from a fixed set so the label's values stay few.
KINDS = frozenset({
    "select", "insert", "update", "delete", "create", "drop", "alter", "show", "describe",
    "flush", "backup", "restore", "verify", "kill", "cancel", "pause", "resume", "explain",
    "summarize", "pivot", "attach", "start", "stop",
})  # fmt: skip
# Blanks and comments before the first word, matched possessively: nothing is
# given back once taken. With backtracking (`(?:\s+|...)*`) a request of 24
# blanks and a digit took 5 s on the event loop, 30 blanks minutes: every way
# of cutting the run of blanks (or of comments) was tried. Possessively the
# same first word for any text whose blanks and comments are closed where they
# first can be (only a stray `*/` after a comment, `/* a */ */ SELECT`, once
# counted as a select, now as other: tests/server/test_metrics.py).
_FIRST_WORD = re.compile(r"(?:\s++|--[^\n\r]*+|/\*.*?\*/)*+([A-Za-z]+)", re.DOTALL)
_ALIASES = {"with": "select", "from": "select", "values": "select", "table": "select",
            "desc": "describe", "unpivot": "pivot", "(": "select"}


def statement_kind(sql: str) -> str:
    """The kind a request is counted under: `select`, `backup`, ... or `other`."""
    m = _FIRST_WORD.match(sql)
    if m is None:
        return "select" if sql.lstrip().startswith("(") else "other"
    word = m.group(1).lower()
    word = _ALIASES.get(word, word)
    return word if word in KINDS else "other"


def _epoch(stamp: str | None) -> float | None:
    try:
        dt = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def dated_ahead(stamp: str | None, now: float) -> bool:
    """Is the time more than AHEAD_SECONDS past `now`?"""
    at = _epoch(stamp)
    return at is not None and at > now + AHEAD_SECONDS


def rss_bytes() -> int:
    """Resident set size now (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class StateCollector(Collector):
    """Scrape-time gauges read from the server state (`Cairn`)."""

    def __init__(self, cairn: Any) -> None:
        self.cairn = cairn

    def describe(self) -> list[Any]:
        return []  # computed per scrape; nothing to register up front

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        cairn = self.cairn
        now = time.time()
        age = GaugeMetricFamily(
            "cairn_backup_age_seconds",
            "Seconds since the newest whole backup of each namespace as it is now (from "
            "system.backups, none dated over 5 min past the clock; never backed up: since "
            "the namespace was created)",
            labels=["namespace"])
        last = GaugeMetricFamily(
            "cairn_backup_last_success_timestamp_seconds",
            "Unix time of that backup (no sample for a namespace never backed up)",
            labels=["namespace"])
        for ns, seconds, stamp in backup_ages(cairn.catalog, now):
            age.add_metric([ns], seconds)
            if stamp is not None:
                last.add_metric([ns], stamp)
        yield age
        yield last
        lag = GaugeMetricFamily(
            "cairn_archive_lag_seconds",
            "How far continuous archiving of each namespace is behind (running or failed "
            "archives; none for a stopped one)",
            labels=["namespace", "target"])
        for ns, target, seconds in archive_lags(cairn):
            lag.add_metric([ns, target], seconds)
        yield lag
        running = GaugeMetricFamily("cairn_jobs_running",
                                    "Jobs queued or running now, by type and status",
                                    labels=["type", "status"])
        counts: dict[tuple[str, str], int] = {}
        jobs = getattr(cairn, "jobs", None)
        for key in (jobs.active_jobs() if jobs is not None else []):
            counts[key] = counts.get(key, 0) + 1
        for (job_type, status), n in sorted(counts.items()):
            running.add_metric([job_type, status], n)
        yield running
        yield from self._buffers(cairn)
        props = getattr(cairn.catalog, "property_totals", None)
        if props is not None:
            values = props(list(ROCKSDB_PROPERTIES))
            for prop, name in ROCKSDB_PROPERTIES.items():
                if prop in values:
                    g = GaugeMetricFamily(name, f"RocksDB property {prop}, summed over families")
                    g.add_metric([], values[prop])
                    yield g
        rss = GaugeMetricFamily("cairn_process_resident_memory_bytes",
                                "Resident memory of the server process")
        rss.add_metric([], rss_bytes())
        yield rss
        restarts = CounterMetricFamily(
            "cairn_duckdb_restarts", "DuckDBs replaced since the process started because a "
            "statement made DuckDB fail internally (which leaves its database invalid), by "
            "database: main, small (small queries), catalog (pgwire catalog queries)",
            labels=["database"])
        for name in sorted({"main", "small", "catalog", *duckrestart.RESTARTS}):
            restarts.add_metric([name], duckrestart.RESTARTS[name])
        yield restarts
        refused = CounterMetricFamily(
            "cairn_duckdb_fault_refusals", "Statements refused without running since the "
            "process started: quarantined (they made DuckDB fail internally before) or "
            "braked (their role user's statements did, [server] duckdb_faults_per_user)",
            labels=["reason"])
        for reason in ("quarantined", "braked"):
            refused.add_metric([reason], duckfaults.COUNTS[reason])
        yield refused
        brakes = CounterMetricFamily(
            "cairn_duckdb_fault_brakes", "Times a role user's queries began to be refused "
            "because their statements made DuckDB fail internally too often")
        brakes.add_metric([], duckfaults.COUNTS["brakes"])
        yield brakes
        if getattr(cairn, "threads", None) is not None:  # role users' waits for a thread
            yield from cairn.threads.metrics()
        if getattr(cairn, "answers", None) is not None:  # answers held (answers.py)
            yield from cairn.answers.metrics()

    @staticmethod
    def _buffers(cairn: Any) -> Iterator[GaugeMetricFamily]:
        engine = getattr(cairn, "engine", None)
        if engine is None:
            return
        rows = GaugeMetricFamily("cairn_buffered_rows",
                                 "Rows in the write buffer (not yet flushed), by namespace",
                                 labels=["namespace"])
        files = GaugeMetricFamily("cairn_data_files", "Parquet files of live tables, by namespace",
                                  labels=["namespace"])
        size = GaugeMetricFamily("cairn_data_bytes", "Bytes of Parquet files, by namespace",
                                 labels=["namespace"])
        per_ns: dict[str, list[int]] = {}
        for rec in engine.list_tables():
            try:
                s = engine.stats(rec)
            except Exception:  # a table dropped while we looked: skip it
                continue
            acc = per_ns.setdefault(rec.namespace, [0, 0, 0])
            acc[0] += s["buffered_rows"]
            acc[1] += s["files"]
            acc[2] += s["bytes"]
        for ns, (r, f, b) in sorted(per_ns.items()):
            rows.add_metric([ns], r)
            files.add_metric([ns], f)
            size.add_metric([ns], b)
        yield rows
        yield files
        yield size
        yield from _key_checks(engine)


def _key_checks(engine: Any) -> Iterator[Any]:
    """What INSERTs' duplicate-key checks did with files (storage/keyfilter.py)."""
    filters = getattr(getattr(engine, "file_ranges", None), "filters", None)
    if filters is None:
        return
    s = filters.stats
    files = CounterMetricFamily(
        "cairn_key_check_files",
        "Files an INSERT's duplicate-key check met, by outcome: checked (read by DuckDB), "
        "range_skipped (key range), filter_skipped (key filter)", labels=["outcome"])
    for outcome in ("checked", "range_skipped", "filter_skipped"):
        files.add_metric([outcome], getattr(s, outcome))
    yield files
    made = CounterMetricFamily("cairn_key_filters", "Per-file key filters made, and files "
                               "left without one (budget, key type, unreadable)",
                               labels=["outcome"])
    made.add_metric(["built"], s.built)
    made.add_metric(["unfiltered"], s.unfiltered)
    yield made
    mem = GaugeMetricFamily("cairn_key_filter_bytes", "Memory held by per-file key filters")
    mem.add_metric([], filters.bytes)
    yield mem


class TimingCollector(Collector):
    """The write path's own timings (storage/timing.py): commit phases, table
    lock waits and holds (by the code that held the lock), the longest hold per
    site with its thread and CPU use, and cyclic-GC pauses."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        t = timing.TIMINGS.copy()
        phases = HistogramMetricFamily(
            "cairn_write_phase_seconds",
            "Time in each phase of a write statement (insert: the whole INSERT, lock wait "
            "included; commit: buffer + RocksDB; rocksdb_write; encode; check_keys; "
            "flush_register: a flush's catalog batch under the table lock; archive_ship and "
            "archive_ship_cpu: an archiver's cycle, wall and CPU time)", labels=["phase"])
        for name, h in sorted(t["phases"].items()):
            phases.add_metric([name], h.buckets(), h.total)
        yield phases
        waits = HistogramMetricFamily(
            "cairn_table_lock_wait_seconds",
            "Time spent waiting for a table lock (table: the short commit/snapshot lock, "
            "write: one writing statement at a time, flush)", labels=["lock"])
        for kind, h in sorted(t["waits"].items()):
            waits.add_metric([kind], h.buckets(), h.total)
        yield waits
        holds = HistogramMetricFamily(
            "cairn_table_lock_hold_seconds",
            "How long a table lock was held, by lock and the code (function:line) that took it",
            labels=["lock", "site"])
        for (kind, site), h in sorted(t["holds"].items()):
            holds.add_metric([kind, site], h.buckets(), h.total)
        yield holds
        longest = GaugeMetricFamily(
            "cairn_table_lock_longest_hold_seconds",
            "The longest hold of a table lock from each site since start, by the thread "
            "that held it", labels=["lock", "site", "thread"])
        cpu = GaugeMetricFamily(
            "cairn_table_lock_longest_hold_cpu_seconds",
            "CPU time the holding thread used during that longest hold (far below the hold: "
            "it waited, e.g. for the GIL or I/O)", labels=["lock", "site", "thread"])
        for (kind, site), hold in sorted(t["longest"].items()):
            longest.add_metric([kind, site, hold.thread], hold.seconds)
            cpu.add_metric([kind, site, hold.thread], hold.cpu_seconds)
        yield longest
        yield cpu
        gcs = HistogramMetricFamily("cairn_gc_pause_seconds",
                                    "Python cyclic garbage collector passes, by generation",
                                    labels=["generation"])
        for gen, h in sorted(t["gc"].items()):
            gcs.add_metric([str(gen)], h.buckets(), h.total)
        yield gcs
        peak = GaugeMetricFamily(
            "cairn_write_longest_seconds",
            "The longest single observation since start of each write phase, table-lock "
            "wait and GC generation (what the histograms above only bucket)",
            labels=["what", "name"])
        for what, key in (("phase", "phases"), ("lock_wait", "waits"), ("gc", "gc")):
            for name, h in sorted(t[key].items()):
                peak.add_metric([what, str(name)], h.peak)
        yield peak


class _Made(msgspec.Struct):
    """What `newest_backups` needs of a backup's record."""

    namespace: str
    created_at: str
    snapshot_at: str
    scope: str | None = "database"
    job_id: str | None = None
    server: str | None = None
    namespace_created_at: str | None = None


_decode_made = fields_decoder(Backup, _Made)
# A backup holds the whole namespace: 'database', or a member of a backup set
# ('all (set bk-…: a, b)', 'databases (set …)'); not 'tables: t, u', nor an
# attached encrypted one whose scope is sealed (NULL).
_WHOLE = ("all (set ", "databases (set ")


def whole_namespace(scope: str | None) -> bool:
    return scope == "database" or (scope is not None and scope.startswith(_WHOLE))


def newest_backups(catalog: Any, now: float | None = None) -> dict[str, float]:
    """{namespace: Unix time of the newest backup in the catalog that holds the
    namespace as it is now}: a whole-namespace backup (not BACKUP TABLE, which
    may hold one empty table of it) taken since the namespace was created (a
    namespace dropped and created again is another one; a restore keeps the
    creation time of the namespace it restores). Every scrape reads every
    record: only the fields needed are decoded (a whole `Backup` took ~13 µs,
    so 10,000 of them held the GIL ~130 ms a scrape). A backup dated more than
    AHEAD_SECONDS past `now` does not count (until 2026-12-06 one stamped 2099
    kept the age 0 until 2099); nor does a namespace's creation time that far
    ahead rule out its backups (they are all before it). Nor another server's
    database of that name: only what a RESTORE takes as its own (recorded_own)."""
    trusted = (time.time() if now is None else now) + AHEAD_SECONDS
    server, spaces = catalog.server_id(), list(catalog.scan(Namespace))
    created = {ns.name: _epoch(ns.created_at) for ns in spaces}
    origins = {ns.name: Origin(server, ns.created_at, ns.restored_from) for ns in spaces}
    newest: dict[str, float] = {}
    for _, raw in catalog.scan_raw(Backup.FAMILY):
        b = _decode_made(raw)
        if b.namespace not in created or not whole_namespace(b.scope):
            continue
        stamp, snapshot, born = _epoch(b.created_at), _epoch(b.snapshot_at), created[b.namespace]
        if stamp is None or snapshot is None or stamp > trusted or (
                born is not None and born <= trusted and snapshot < born):
            continue
        if stamp > newest.get(b.namespace, 0.0) and recorded_own(
                origins[b.namespace], b.server, b.namespace_created_at, b.job_id is not None):
            newest[b.namespace] = stamp
    return newest


def backup_ages(catalog: Any, now: float) -> list[tuple[str, float, float | None]]:
    """(namespace, age in seconds, Unix time of its newest backup or None) for
    every namespace: one never backed up (see `newest_backups`) is as old as
    the namespace itself, so an alert on the age fires for it too; one created
    (by its record) more than AHEAD_SECONDS from now is of unknown age: +Inf."""
    newest = newest_backups(catalog, now)
    ages: list[tuple[str, float, float | None]] = []
    for ns in catalog.scan(Namespace):
        stamp = newest.get(ns.name)
        since = stamp if stamp is not None else _epoch(ns.created_at)
        if since is not None:
            age = max(0.0, now - since) if since <= now + AHEAD_SECONDS else math.inf
            ages.append((ns.name, age, stamp))
    return sorted(ages)


def archive_lags(cairn: Any) -> list[tuple[str, str, float]]:
    """(namespace, target, lag seconds) per running or failed archive (the server's archiving
    service, once the app has wired it in; none before)."""
    source = getattr(cairn, "archive_lags", None)
    return list(source()) if callable(source) else []


class Metrics:
    """One server's metrics: its own registry, counters and histograms."""

    def __init__(self, cairn: Any = None, slow_seconds: float = 0.0) -> None:
        self.slow_seconds = slow_seconds  # 0: no slow-request lines
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_started = Counter("cairn_jobs_started", "Jobs started, by type",
                                    ["type"], registry=r)
        self.jobs = Counter("cairn_jobs", "Jobs ended, by type and final status",
                            ["type", "status"], registry=r)
        self.job_seconds = Histogram("cairn_job_duration_seconds",
                                     "Wall time of jobs from start to end, by type",
                                     ["type"], buckets=JOB_BUCKETS, registry=r)
        self.job_bytes = Counter(
            "cairn_job_bytes",
            "Bytes handled by completed jobs: backed up (backup), restored (restore), "
            "checked (verify)", ["type"], registry=r)
        self.job_rows = Counter("cairn_job_rows", "Rows handled by completed jobs, by type",
                                ["type"], registry=r)
        self.verify_invalid = Counter(
            "cairn_verify_invalid", "Completed verify jobs that found what they read not "
            "valid, by what was verified (backup, archive)", ["kind"], registry=r)
        for kind in ("backup", "archive"):
            self.verify_invalid.labels(kind)  # 0 from the start, for rate() and increase()
        self.backup_written = Counter("cairn_backup_bytes_written",
                                      "New bytes stored in targets by completed backups",
                                      registry=r)
        self.requests = Counter("cairn_requests",
                                "Requests, by protocol, statement kind and outcome",
                                ["protocol", "kind", "status"], registry=r)
        self.request_seconds = Histogram("cairn_request_duration_seconds",
                                         "Request latency, by protocol and statement kind",
                                         ["protocol", "kind"], buckets=REQUEST_BUCKETS, registry=r)
        # The labelled children of the two request metrics, made once each
        # (`labels()` checks and locks on every call: ~3 µs, twice a request).
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}
        self.slow_requests = Counter("cairn_slow_requests",
                                     "Requests slower than [log] slow_request_seconds",
                                     ["protocol"], registry=r)
        self.flushes = Counter("cairn_flushes", "Completed flushes (FLUSH and automatic)",
                               registry=r)
        self.flushed_rows = Counter("cairn_flushed_rows", "Rows written to Parquet by flushes",
                                    registry=r)
        self.info = Gauge("cairn_start_time_seconds", "Unix time the server state was opened",
                          registry=r)
        self.info.set(time.time())
        if cairn is not None:
            r.register(StateCollector(cairn))
        r.register(TimingCollector())

    # --- hooks -----------------------------------------------------------

    def job_started(self, job: Job) -> None:
        self.jobs_started.labels(job.job_type).inc()

    def job_ended(self, job: Job, seconds: float | None) -> None:
        self.jobs.labels(job.job_type, job.status).inc()
        if seconds is not None:
            self.job_seconds.labels(job.job_type).observe(max(0.0, seconds))
        if job.status != "completed":
            return
        result = job.result if isinstance(job.result, dict) else {}
        size = _int(result.get("bytes")) or _int(result.get("bytes_checked")) or job.bytes_done
        self.job_bytes.labels(job.job_type).inc(max(0, size))
        rows = _int(result.get("rows")) or job.rows
        self.job_rows.labels(job.job_type).inc(max(0, rows))
        if job.job_type == "backup":
            self.backup_written.inc(max(0, _int(result.get("bytes_written"))))
        if job.job_type == "verify" and result.get("is_valid") is False:
            self.verify_invalid.labels("archive" if "segments_checked" in result
                                       else "backup").inc()
        if job.job_type == "flush":  # a role-user's counts only their rows: all_rows, all
            self.flushes.inc()
            self.flushed_rows.inc(max(0, _int(result.get("all_rows")) or rows))

    def observe_request(self, protocol: str, kind: str, seconds: float, status: str,
                        sql: str | None = None, user: str | None = None) -> None:
        """Count one request, and log it if it took `slow_seconds` or longer.
        `protocol` is `http` or `pgwire`; `kind` comes from `statement_kind(sql)`;
        `status` is `ok` or the contract's error code. `sql` is only logged as
        `logs.statement_shape(sql)` (string literals hidden)."""
        counted = self._counted.get((protocol, kind, status))
        if counted is None:
            counted = self._counted[protocol, kind, status] = self.requests.labels(
                protocol, kind, status)
        timed = self._timed.get((protocol, kind))
        if timed is None:
            timed = self._timed[protocol, kind] = self.request_seconds.labels(protocol, kind)
        counted.inc()
        timed.observe(max(0.0, seconds))
        if self.slow_seconds > 0 and seconds >= self.slow_seconds:
            self.slow_requests.labels(protocol).inc()
            logs.event(_slow_log, "slow_request", logging.WARNING, protocol=protocol, kind=kind,
                       status=status, duration_ms=round(seconds * 1000, 1), user=user,
                       statement=logs.statement_shape(sql) if sql else None)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
