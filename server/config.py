"""Configuration: embedded defaults, overridden by a TOML file, overridden by flags.

Every key here is documented in `config.example.toml`; a test keeps the two in step."""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.config import EngineConfig

from . import config_checks
from .config_checks import ConfigError
from .intervals import interval_seconds


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_request_bytes: int = 10 * 1024 * 1024
    node_id: str = ""  # empty: derived from host and port
    blocking_threads: int = 8
    query_timeout_seconds: float = 60.0  # every SELECT, INSERT, UPDATE, DELETE; 0: none
    max_result_rows: int = 100_000  # rows of one statement's answer; 0: no bound
    max_result_bytes: int = 64 * 1024 * 1024  # bytes of one answer (Arrow sizes); 0: no bound
    header_timeout_seconds: float = 30.0  # idle connection / request line and headers
    body_timeout_seconds: float = 60.0  # the whole request body
    send_timeout_seconds: float = 60.0  # a client taking no part of its answer; 0: none
    max_connections: int = 1000  # open HTTP connections; past it 503 UNAVAILABLE (limits.py)
    # Bytes of request bodies (and pgwire messages) being received or held, all
    # connections together (never below 2 × max_request_bytes); past it 503 (budget.py).
    max_inflight_request_bytes: int = 256 * 1024 * 1024
    # Bytes of answers built and not yet sent, all connections together (never
    # below 2 × max_result_bytes); past it 503 / 53200 (answers.py).
    max_answer_bytes_total: int = 1024 * 1024 * 1024
    # A statement that made DuckDB fail internally, and users who keep doing
    # it (server/duckfaults.py): statements remembered (0: none), for how long;
    # a role user's faults within the window (0: no brake) before their
    # queries are refused until the window has passed.
    duckdb_fault_quarantine: int = 1000
    duckdb_fault_quarantine_seconds: float = 3600.0
    duckdb_faults_per_user: int = 3
    duckdb_fault_window_seconds: float = 600.0
    # Names a browser may reach the server by (besides localhost and any IP
    # address): a page's request whose Host is another name is refused
    # (DNS rebinding: an attacker's name pointed at this server).
    allowed_hosts: list[str] = field(default_factory=list)
    # Run a one-row INSERT or point SELECT on the event loop when it can go
    # without waiting (no busy table lock, no DuckDB); else on a statement thread.
    # On by default since the req/s work (docs/performance.md, issue 15).
    inline_statements: bool = True
    event_loop: str = "uvloop"  # uvloop | asyncio: the loop `cairn serve` runs on


@dataclass
class StorageConfig(EngineConfig):
    data_dir: str = "./cairn-data"


@dataclass
class BackupConfig:
    roots: list[str] = field(default_factory=list)  # empty: [<data_dir>/backups]
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    throttle_bytes_per_second: int = 0  # 0: no limit
    # How long what an interrupted backup stored is kept for the next backup of
    # its namespace to the same target ('0' keeps nothing).
    resume_window: str = "24h"
    # How long a statement waits on an object-storage target it reads itself
    # (SHOW BACKUPS IN, a RESTORE's choice of backup, ...) before UNAVAILABLE.
    s3_deadline_seconds: float = 30.0
    # Schedules (CREATE SCHEDULE) the server keeps; past it CREATE SCHEDULE is
    # INVALID_ARGUMENT (server/schedules.py). The loop reads every one each second.
    max_schedules: int = 1000


@dataclass
class AuthConfig:
    mode: str = "none"
    tokens: list[dict[str, str]] = field(default_factory=list)


@dataclass
class JobsConfig:
    max_concurrent: int = 2
    history_max_age_days: float = 30.0
    history_max_count: int = 10_000
    # Linux nice value of the threads that run jobs and other background work (0..19;
    # 0: normal priority). See storage/priority.py.
    background_nice: int = 10
    # Where a job's repository work runs (storage/jobproc.py): "idle" (the
    # default) in a job process under SCHED_IDLE, "nice" in one at
    # background_nice, "off" in the server's own process.
    job_process: str = "idle"
    # The longest a backup's, restore's or verify's transfer thread waits between
    # two chunks while statements run (0: it never waits). See server/throttle.py.
    give_way_ms: float = 20.0


@dataclass
class LogConfig:
    format: str = "text"  # "text" | "json"
    level: str = "INFO"
    slow_request_seconds: float = 1.0  # 0: no slow-request lines


@dataclass
class PgwireConfig:
    host: str = "127.0.0.1"
    port: int = 5433  # 0: no PostgreSQL listener
    tls_cert: str = ""  # PEM files; both set: clients may (and psql will) use TLS
    tls_key: str = ""
    # Bytes all connections' prepared statements and portals keep together
    # (never below 4 × [server] max_request_bytes); past it 53200 (budget.py).
    max_prepared_bytes_total: int = 256 * 1024 * 1024
    # Bytes of rows all connections' portals keep unsent (suspended by an
    # Execute with a row limit, run by Describe); one connection and one role
    # user a quarter each. Past it 53200 (54000 a connection's), pgwire/kept.py.
    max_portal_rows_bytes_total: int = 512 * 1024 * 1024


@functools.lru_cache(maxsize=64)
def _resolved(root: str) -> str:
    """A configured backup root, resolved once a process (every statement that
    names a target asks for the roots; storage/backup/targets.py `_real_root`)."""
    return str(Path(root).resolve())


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    pgwire: PgwireConfig = field(default_factory=PgwireConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir).resolve()

    @property
    def backup_roots(self) -> list[str]:
        if self.backup.roots:
            return [_resolved(os.path.abspath(r)) for r in self.backup.roots]
        # the data directory resolved once a process too (was a realpath a statement)
        return [os.path.join(_resolved(os.path.abspath(self.storage.data_dir)), "backups")]

    @property
    def resume_window_seconds(self) -> int:
        return 0 if self.backup.resume_window.strip() == "0" else interval_seconds(
            self.backup.resume_window)

    @property
    def node_id(self) -> str:
        return self.server.node_id or f"{self.server.host}:{self.server.port}"


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _apply(section_obj: Any, section: str, values: dict[str, Any]) -> None:
    known = {f.name: f for f in dataclasses.fields(section_obj)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown config key [{section}] {key}")
        default = getattr(section_obj, key)
        if isinstance(default, bool) != isinstance(value, bool) or (
            not isinstance(default, bool)
            and isinstance(default, int | float)
            and not isinstance(value, int | float)
        ):
            raise ConfigError(f"config key [{section}] {key} must be {type(default).__name__}")
        if isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"config key [{section}] {key} must be a string")
        if isinstance(default, list) and not isinstance(value, list):
            raise ConfigError(f"config key [{section}] {key} must be a list")
        if isinstance(default, dict) and not isinstance(value, dict):
            raise ConfigError(f"config key [{section}] {key} must be a table")
        config_checks.check_value(section, key, value)
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            raise ConfigError(f"config key [{section}] {key} must be an integer")
        if isinstance(default, float) and isinstance(value, int):
            value = float(value)
        setattr(section_obj, key, value)


def from_dict(data: dict[str, Any]) -> Config:
    cfg = Config()
    for section, values in data.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise ConfigError(f"unknown config section [{section}]")
        _apply(getattr(cfg, section), section, values)
    validate(cfg)
    return cfg


def load(path: str | Path | None = None, **overrides: Any) -> Config:
    """Defaults, then the TOML file at `path`, then non-None `overrides`
    (host, port, pg_port, data_dir)."""
    data: dict[str, Any] = {}
    if path is not None:
        text = config_checks.read_config_file(path)  # not a FIFO, UTF-8
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        except RecursionError:  # tomllib recurses once per nesting level
            raise ConfigError(f"config file {path}: a value is nested too deep") from None
    cfg = from_dict(data)
    if overrides.get("host") is not None:
        cfg.server.host = overrides["host"]
    if overrides.get("port") is not None:
        cfg.server.port = int(overrides["port"])
    if overrides.get("pg_port") is not None:
        cfg.pgwire.port = int(overrides["pg_port"])
    if overrides.get("data_dir") is not None:
        if not str(overrides["data_dir"]).strip():  # an unset shell variable: the working directory
            raise ConfigError("--data-dir must not be empty (use '.' for the working directory)")
        cfg.storage.data_dir = str(overrides["data_dir"])
    validate(cfg)
    if cfg.pgwire.port:  # the files are read now, not once the data dir is open
        config_checks.tls_context(cfg.pgwire)
    return cfg


def validate(cfg: Config) -> None:
    if not cfg.storage.data_dir.strip():
        raise ConfigError("[storage] data_dir must not be empty (use \".\" for the working "
                          "directory)")
    if cfg.auth.mode not in ("none", "token"):
        raise ConfigError('[auth] mode must be "none" or "token"')
    config_checks.check_shapes(cfg)  # tokens, targets, hosts, data_dir
    for entry in cfg.auth.tokens:
        if entry.get("role", "user") not in ("admin", "user"):
            raise ConfigError("[[auth.tokens]] role must be admin or user")
        if entry.get("user") == "scheduler":  # schedules.SCHEDULER: its jobs would be this user's
            raise ConfigError('[[auth.tokens]] user "scheduler" is reserved: scheduled backups '
                              "run as it")
    if cfg.auth.mode == "token" and not cfg.auth.tokens:
        raise ConfigError('[auth] mode = "token" needs at least one [[auth.tokens]]')
    if not 0 <= cfg.server.port <= 65535:
        raise ConfigError("[server] port must be 0..65535")
    if not 0 <= cfg.pgwire.port <= 65535:
        raise ConfigError("[pgwire] port must be 0..65535 (0: off)")
    if bool(cfg.pgwire.tls_cert) != bool(cfg.pgwire.tls_key):
        raise ConfigError("[pgwire] tls_cert and tls_key go together: set both or neither")
    if cfg.server.event_loop not in ("uvloop", "asyncio"):
        raise ConfigError('[server] event_loop must be "uvloop" or "asyncio"')
    if cfg.storage.duckdb_wide_row_bytes < 0:
        raise ConfigError("[storage] duckdb_wide_row_bytes must be 0 (off) or more")
    if cfg.storage.point_cache_mb < 0:
        raise ConfigError("[storage] point_cache_mb must be 0 (off) or more")
    if not 0 <= cfg.jobs.background_nice <= 19:
        raise ConfigError("[jobs] background_nice must be 0..19 (0: normal priority)")
    if cfg.jobs.job_process not in ("idle", "nice", "off"):
        raise ConfigError('[jobs] job_process must be "idle", "nice" or "off"')
    if not 0 <= cfg.jobs.give_way_ms <= 1000:
        raise ConfigError("[jobs] give_way_ms must be 0..1000 (0: transfers never wait)")
    try:
        window = cfg.resume_window_seconds  # parses [backup] resume_window
    except ValueError as exc:
        raise ConfigError(f"[backup] resume_window: {exc}") from None
    if window > 36500 * 86400:  # a kept_until past year 9999 raised OverflowError
        raise ConfigError("[backup] resume_window must be at most 36500d")
    if not 0 < cfg.backup.s3_deadline_seconds <= 86400:
        raise ConfigError("[backup] s3_deadline_seconds must be above 0 and at most 86400")
    if cfg.log.format not in ("text", "json"):
        raise ConfigError('[log] format must be "text" or "json"')
    config_checks.check_log_level(cfg.log.level, "[log] level")
    if cfg.log.slow_request_seconds < 0:
        raise ConfigError("[log] slow_request_seconds must be 0 (off) or more")
    config_checks.check_ranges(cfg)  # every number's, DuckDB's limits
    _check_shared_buckets(cfg.backup.targets)


def _endpoint(config: dict[str, Any]) -> str:
    endpoint = str(config.get("endpoint") or "").strip().rstrip("/").lower()
    return endpoint if not endpoint or "://" in endpoint else f"https://{endpoint}"


def _check_shared_buckets(targets: dict[str, dict[str, Any]]) -> None:
    """Two named targets whose buckets have one name on two endpoints are
    refused: jobs, schedules and the backup catalog record a target as its bare
    `s3://bucket/prefix`, which resolves with the first configured target of
    that bucket, so a schedule TO 'dr' backed up to the other endpoint."""
    seen: dict[str, tuple[str, str]] = {}  # bucket -> (target name, endpoint)
    for name, target in targets.items():
        uri = str(target.get("uri", ""))
        if not uri.lower().startswith("s3://"):
            continue
        bucket = uri[5:].split("/", 1)[0]
        endpoint = _endpoint(target)
        first = seen.setdefault(bucket, (name, endpoint))
        if first[1] != endpoint:
            raise ConfigError(
                f"[backup.targets.{first[0]}] and [backup.targets.{name}] both use bucket "
                f"'{bucket}' on different endpoints ({first[1] or 'the default'} and "
                f"{endpoint or 'the default'}); give each a bucket of its own name")
