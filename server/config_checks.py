"""Range and shape checks of config values (server/config.py `validate`), the
config file's reading, and the PostgreSQL listener's TLS files.

A value that passes here must not fail later: every one once did (a thread pool
of 0 threads, a watchdog wait of `inf` seconds, a job history cut-off before
year 1, a token that is a number, a DuckDB limit DuckDB refuses, a NUL in a
path) and stopped `cairn serve` with a traceback, or broke every statement of
the running server. Each refusal is one line naming the key."""

from __future__ import annotations

import math
import os
import re
import ssl
import stat
import unicodedata
from pathlib import Path
from typing import Any

from storage import sandbox

YEAR = 365 * 86400.0
BIG = 2**62  # "no practical bound", still a 64-bit integer everywhere it goes
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_SIZE = 10**15  # 1000 TB: DuckDB refuses much larger limits ("out of range")
TARGET_KEYS = ("uri", "endpoint", "access_key", "secret_key", "region")

# (section, key): (lowest, highest)
INT_RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("server", "max_request_bytes"): (1024, 2**40),
    ("server", "blocking_threads"): (1, 1024),
    ("server", "max_result_rows"): (0, BIG),
    ("server", "max_result_bytes"): (0, BIG),
    ("server", "max_connections"): (1, 1_000_000),
    ("server", "max_inflight_request_bytes"): (1024, BIG),
    ("server", "max_answer_bytes_total"): (1024, BIG),
    ("pgwire", "max_prepared_bytes_total"): (1024, BIG),
    ("pgwire", "max_portal_rows_bytes_total"): (4096, BIG),
    ("server", "duckdb_fault_quarantine"): (0, 1_000_000),
    ("server", "duckdb_faults_per_user"): (0, 1_000_000),
    ("storage", "flush_rows"): (1, BIG),
    ("storage", "flush_bytes"): (1, BIG),
    ("storage", "duckdb_threads"): (1, 1024),
    ("storage", "duckdb_wide_row_bytes"): (0, BIG),
    ("storage", "point_cache_mb"): (0, 1 << 20),
    ("backup", "throttle_bytes_per_second"): (0, BIG),
    ("backup", "max_schedules"): (1, 100_000),  # the loop's pass reads them all each second
    ("jobs", "max_concurrent"): (1, 1024),
    ("jobs", "history_max_count"): (1, 10**9),
}
FLOAT_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("server", "query_timeout_seconds"): (0.0, YEAR),
    ("server", "header_timeout_seconds"): (0.0, YEAR),
    ("server", "body_timeout_seconds"): (0.0, YEAR),
    ("server", "send_timeout_seconds"): (0.0, YEAR),
    ("server", "duckdb_fault_quarantine_seconds"): (0.0, YEAR),
    ("server", "duckdb_fault_window_seconds"): (0.0, YEAR),
    ("storage", "flush_interval_seconds"): (0.001, YEAR),
    ("jobs", "history_max_age_days"): (0.001, 36500.0),  # 100 years
    ("log", "slow_request_seconds"): (0.0, YEAR),
}
LIST_ITEMS = {("server", "allowed_hosts"): str, ("backup", "roots"): str,
              ("auth", "tokens"): dict}


# A user id: an X-User-Id header, a PostgreSQL start-up user, a token's user.
USER_ID = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}\Z")
# A token is compared byte for byte over HTTP and turned into a SCRAM key over
# pgwire: only characters both keep as they are (SASLprep maps none of them,
# header parsing trims none) make it the same token on both.
TOKEN = re.compile(r"[!-~]+")


class ConfigError(Exception):
    """A bad config file or value; `cairn serve` prints it on one line and exits."""


def error(message: str) -> ConfigError:
    return ConfigError(message)


def check_value(section: str, key: str, value: Any) -> None:
    """What the type check of `_apply` does not see: a number that is no number
    (nan, inf), a string or list item with a NUL, list items of the wrong type."""
    name = f"[{section}] {key}"
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"config key {name} must be a finite number, not {value}")
    if isinstance(value, str) and "\0" in value:
        raise error(f"config key {name} must not contain a NUL character")
    if isinstance(value, list):
        kind = LIST_ITEMS.get((section, key), str)
        for item in value:
            if not isinstance(item, kind):
                what = "strings" if kind is str else "tables"
                raise error(f"config key {name} must be a list of {what}, not {item!r}")
            if isinstance(item, str) and ("\0" in item or not item.strip()):
                raise error(f"config key {name} must not hold an empty string or a NUL")


def check_ranges(cfg: Any) -> None:
    """The range of every numeric key, and DuckDB's limits."""
    for (section, key), (low, high) in INT_RANGES.items():
        value = getattr(getattr(cfg, section), key)
        if value < low:
            raise error(f"[{section}] {key} must be at least {low}, not {value}")
        if value > high:
            raise error(f"[{section}] {key} must be at most {high}, not {value}")
    for (section, key), (flow, fhigh) in FLOAT_RANGES.items():
        value = getattr(getattr(cfg, section), key)
        if not (math.isfinite(value) and flow <= value <= fhigh):
            raise error(f"[{section}] {key} must be {flow:g}..{fhigh:g}, not {value:g}")
    _memory_limits(cfg)


def check_shapes(cfg: Any) -> None:
    """Hosts and the data dir are not empty; tokens and targets are tables of
    the keys they take, each a string."""
    for section, key in (("server", "host"), ("pgwire", "host"), ("storage", "data_dir")):
        value = getattr(getattr(cfg, section), key)
        if not value.strip():
            hint = ' (use "0.0.0.0" to listen on every interface)' if key == "host" else ""
            raise error(f"[{section}] {key} must not be empty{hint}")
        if "\0" in value:
            raise error(f"[{section}] {key} must not contain a NUL character")
    _tokens(cfg.auth.tokens)
    _targets(cfg.backup.targets)


def _memory_limits(cfg: Any) -> None:
    memory = str(cfg.storage.duckdb_memory_limit)
    share = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*", memory)
    size = sandbox.size_bytes(memory)
    if not (share and 1 <= float(share.group(1)) <= 100
            or size and sandbox.MIN_MEMORY_BYTES <= size <= MAX_SIZE):
        raise error('[storage] duckdb_memory_limit must be a size from "64MB" to "1000TB" '
                    'such as "1GB" or "512MiB", or a share of the RAM from "1%" to "100%", '
                    f"not {memory!r}")
    spill = sandbox.size_bytes(str(cfg.storage.duckdb_spill_limit))
    if spill is None or spill > MAX_SIZE:
        raise error('[storage] duckdb_spill_limit must be a size up to "1000TB" such as '
                    '"4GB" or "512MiB", or "0" (queries never spill to disk), not '
                    f"{cfg.storage.duckdb_spill_limit!r}")


def _tokens(tokens: list[Any]) -> None:
    seen: dict[str, int] = {}
    for n, entry in enumerate(tokens, 1):
        where = f"[[auth.tokens]] entry {n}"
        if not isinstance(entry, dict) or not {"token", "user"} <= set(entry):
            raise error(f"{where}: each [[auth.tokens]] needs token and user")
        unknown = set(entry) - {"token", "user", "role"}
        if unknown:
            raise error(f"{where}: unknown key {sorted(unknown)[0]!r} (token, user, role)")
        token, user = entry["token"], entry["user"]
        if not isinstance(token, str) or not token:
            raise error(f"{where}: token must be a non-empty string")
        if not TOKEN.fullmatch(token):
            bad = next(c for c in token if not TOKEN.fullmatch(c))
            raise error(
                f"{where}: token must be printable ASCII without spaces (characters "
                f"'!' to '~'), not U+{ord(bad):04X} {unicodedata.name(bad, 'a control')}: "
                "PostgreSQL drivers SASLprep a password (mapping or dropping such "
                "characters) and HTTP headers lose blanks at their ends, so such a token "
                "would mean different things over HTTP and pgwire")
        if not isinstance(user, str) or not USER_ID.match(user):
            raise error(f"{where}: user must be 1-128 characters of letters, digits "
                        "and _ . @ : + -")
        if token in seen:  # HTTP and SCRAM would both take it for the last entry's user
            raise error(f"{where}: the same token as entry {seen[token]}: "
                        "each token names one user")
        seen[token] = n


def _targets(targets: dict[str, Any]) -> None:
    for name, target in targets.items():
        if not isinstance(target, dict) or "uri" not in target:
            raise error(f"[backup.targets.{name}] needs a uri")
        for key, value in target.items():
            if key not in TARGET_KEYS:
                raise error(f"unknown config key [backup.targets.{name}] {key} "
                            f"({', '.join(TARGET_KEYS)})")
            if not isinstance(value, str) or "\0" in value:
                raise error(f"config key [backup.targets.{name}] {key} must be a string")
        if not target["uri"].lower().startswith("s3://"):
            raise error(f"[backup.targets.{name}] uri must be an s3://bucket/prefix URI")


def _open_regular(path: str | Path, what: str) -> int:
    """A file descriptor of `path` for reading, without blocking on a FIFO or a
    device: ConfigError naming `what` if it is missing, unreadable or not a
    regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{what} {str(path)!r} is not a regular file")
    return fd


def read_config_file(path: str | Path) -> str:
    fd = _open_regular(path, "config file")
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise error(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"config file {str(path)!r} is not UTF-8 text (byte {exc.start})") from None


def tls_context(pg: Any) -> ssl.SSLContext | None:
    """The PostgreSQL listener's TLS context from `tls_cert` and `tls_key`,
    or None when they are not set; ConfigError naming the key and the path."""
    if not pg.tls_cert:
        return None
    for key in ("tls_cert", "tls_key"):
        os.close(_open_regular(getattr(pg, key), f"[pgwire] {key}"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(pg.tls_cert, pg.tls_key)
    except ssl.SSLError as exc:
        raise error(f"[pgwire] tls_cert {pg.tls_cert!r} and tls_key {pg.tls_key!r} are not a "
                    f"PEM certificate and its private key ({exc.reason or exc})") from None
    except OSError as exc:
        raise error(f"[pgwire] tls_cert {pg.tls_cert!r} / tls_key {pg.tls_key!r} cannot be "
                    f"read: {exc.strerror or exc}") from None
    return context


def check_log_level(level: str, where: str) -> None:
    if str(level).upper() not in LOG_LEVELS or not str(level).isascii():
        raise error(f"{where} must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}")
