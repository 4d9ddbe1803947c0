"""What drivers say to any PostgreSQL server before and around real work:
SET / RESET / SHOW of settings, BEGIN / COMMIT / ROLLBACK, DISCARD, DEALLOCATE.
Answered by the connection itself; none of it reaches the SQL sandbox.

Cairn commits every statement on its own: BEGIN and COMMIT are accepted so
drivers that open transactions work; ROLLBACK undoes nothing and says so."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import types as t
from .errors import PgError

DEFAULTS = {
    "server_version": "15.0", "server_version_num": "150000", "server_encoding": "UTF8",
    "client_encoding": "UTF8", "datestyle": "ISO, MDY", "timezone": "UTC",
    "integer_datetimes": "on", "standard_conforming_strings": "on",
    "intervalstyle": "postgres", "application_name": "", "is_superuser": "off",
    "default_transaction_read_only": "off", "in_hot_standby": "off",
    "search_path": '"$user", public', "transaction_isolation": "read committed",
    "default_transaction_isolation": "read committed", "transaction_read_only": "off",
    "extra_float_digits": "1", "max_identifier_length": "63", "statement_timeout": "0",
    "lock_timeout": "0", "idle_in_transaction_session_timeout": "0", "lc_collate": "C.UTF-8",
    "lc_ctype": "C.UTF-8", "lc_messages": "C.UTF-8", "lc_monetary": "C", "lc_numeric": "C",
    "lc_time": "C", "bytea_output": "hex", "client_min_messages": "notice",
    "session_authorization": "", "row_security": "on", "synchronous_commit": "on",
    "max_connections": "100", "block_size": "8192", "ssl": "off", "jit": "off",
    "default_text_search_config": "pg_catalog.english",
}  # fmt: skip
# Settings PostgreSQL reports to the client (ParameterStatus) when they change.
REPORTED = {
    "server_version": "server_version", "server_encoding": "server_encoding",
    "client_encoding": "client_encoding", "application_name": "application_name",
    "datestyle": "DateStyle", "timezone": "TimeZone", "integer_datetimes": "integer_datetimes",
    "standard_conforming_strings": "standard_conforming_strings",
    "intervalstyle": "IntervalStyle", "is_superuser": "is_superuser",
    "session_authorization": "session_authorization",
    "default_transaction_read_only": "default_transaction_read_only",
    "in_hot_standby": "in_hot_standby",
}  # fmt: skip
# A connection's settings are kept for its life: a value, and all of them
# together, are bounded (`SET x = '<9 MB>'` was kept, any number of them).
MAX_SETTING_CHARS = 64 * 1024  # one value; past it 22023
MAX_SETTINGS_CHARS = 1 << 20  # every name and value together; past it 54000
_SHOW_ALIASES = {"transaction isolation level": "transaction_isolation",
                 "time zone": "timezone", "session authorization": "session_authorization"}
_UTF8 = {"utf8", "utf-8", "unicode"}


class ChatterError(PgError):
    """A setting Cairn cannot take: 22023, or 55P02 for one nobody can change."""

    def __init__(self, message: str, code: str = "22023") -> None:
        super().__init__(code, message)


@dataclass
class Answer:
    tag: str
    columns: list[tuple[str, int]] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)  # reported settings that changed
    tx: bytes | None = None  # the new transaction status, if it changes
    notice: str | None = None


_TX = re.compile(
    r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE)\b"
    r"(\s+(WORK|TRANSACTION|PREPARED|TO))?", re.IGNORECASE)
# The patterns below match a statement already stripped of surrounding blanks
# and one trailing `;` (`_bare`): each ends at `$` with no lazy `.*?` or optional
# blanks before it, so none can backtrack more than linearly. (`(.*?)\s*;?\s*$`
# took 8 s, the event loop stopped, for `SET a = x` + 1,200 blanks + `y`.)
_SET = re.compile(
    r"^SET\s+(?:(?:SESSION|LOCAL)\s+)?([A-Za-z_][\w.]*)\s*(?:=|\bTO\b)\s*(.*)$",
    re.IGNORECASE | re.DOTALL)
_SET_OTHER = re.compile(
    r"^SET\s+(?:(?:SESSION|LOCAL)\s+)?(TIME\s+ZONE|NAMES|TRANSACTION|SESSION\s+CHARACTERISTICS|"
    r"SESSION\s+AUTHORIZATION|ROLE)\b\s*(.*)$", re.IGNORECASE | re.DOTALL)
_RESET = re.compile(r"^RESET\s+([A-Za-z_][\w.]*|ALL)$", re.IGNORECASE)
_SHOW = re.compile(r"^SHOW\s+([A-Za-z_][\w.]*(?:\s+[A-Za-z_]+)*)$", re.IGNORECASE)
_DISCARD = re.compile(r"^DISCARD\s+(ALL|PLANS|SEQUENCES|TEMP|TEMPORARY)$", re.IGNORECASE)
_DEALLOCATE = re.compile(r"^DEALLOCATE\s+(?:PREPARE\s+)?(ALL|[A-Za-z_]\w*|\"[^\"]+\")$",
                         re.IGNORECASE)


def _bare(sql: str) -> str:
    """`sql` without surrounding blanks and one trailing `;`."""
    sql = sql.strip()
    return sql[:-1].rstrip() if sql.endswith(";") else sql


def _value(text: str) -> str:
    parts = []
    for m in re.finditer(r"'([^']*(?:''[^']*)*)'|\"([^\"]*)\"|([^,\s]+)", text):
        parts.append(m.group(1).replace("''", "'") if m.group(1) is not None
                     else m.group(2) if m.group(2) is not None else m.group(3))
    return ", ".join(parts)


class Settings:
    """One connection's settings (GUCs)."""

    def __init__(self, user: str, startup: dict[str, str], admin: bool) -> None:
        self.values = dict(DEFAULTS)
        self.values["session_authorization"] = user
        self.values["is_superuser"] = "on" if admin else "off"
        self.chars = sum(len(k) + len(v) for k, v in self.values.items())
        for key, value in startup.items():
            # server_version and server_encoding too: 55P02, FATAL at start-up
            # (they were skipped in silence, unlike server_version_num).
            if key.lower() in self.values:
                self.set(key.lower(), value)

    def set(self, name: str, value: str) -> dict[str, str]:
        name = name.lower()
        if name == "client_encoding" and value.lower().replace("'", "") not in _UTF8:
            raise ChatterError(f"client_encoding {value!r} is not supported: Cairn speaks UTF8")
        # The last three were echoed as applied; a DateStyle not ISO was reported while
        # dates went as ISO (psycopg read 0010-11-12 as 12 November); a read-only
        # transaction was reported while an INSERT still ran.
        if name in ("server_version", "server_encoding", "server_version_num", "is_superuser",
                    "session_authorization", "in_hot_standby"):
            raise ChatterError(f'parameter "{name}" cannot be changed', "55P02")
        bare = value.strip("'\" ").lower()
        if name == "datestyle" and not bare.startswith("iso"):
            raise ChatterError(f"DateStyle {value[:40]!r} is not supported: Cairn writes dates "
                               "as ISO (DateStyle 'ISO, MDY' or 'ISO, DMY')")
        if name in ("default_transaction_read_only", "transaction_read_only") and bare in (
                "on", "true", "1", "yes"):
            raise ChatterError(f"{name} = on is not supported: Cairn has no read-only "
                               "transactions", "0A000")
        if name == "client_encoding":
            value = "UTF8"
        if len(value) > MAX_SETTING_CHARS:
            raise ChatterError(f'value for parameter "{name[:64]}" is {len(value)} characters '
                               f"long, at most {MAX_SETTING_CHARS}")
        old = self.values.get(name)
        chars = self.chars + len(value) - (len(old) if old is not None else -len(name))
        if chars > MAX_SETTINGS_CHARS:
            raise ChatterError(f"this connection's settings would hold {chars} characters, "
                               f"at most {MAX_SETTINGS_CHARS}: RESET some (RESET ALL)", "54000")
        self.chars = chars
        self.values[name] = value
        return {REPORTED[name]: value} if name in REPORTED else {}

    def reset(self, name: str) -> dict[str, str]:
        names = list(REPORTED) if name == "all" else [name]
        custom = [n for n in self.values if n not in DEFAULTS] if name == "all" else [
            n for n in names if n not in DEFAULTS and n in self.values]
        for n in custom:  # a setting Cairn does not know: forgotten, its room freed
            self.chars -= len(n) + len(self.values.pop(n))
        changed: dict[str, str] = {}
        for n in names:
            if n in DEFAULTS and n not in ("session_authorization", "is_superuser"):
                self.chars += len(DEFAULTS[n]) - len(self.values[n])
                self.values[n] = DEFAULTS[n]
                if n in REPORTED:
                    changed[REPORTED[n]] = DEFAULTS[n]
        return changed

    def reported(self) -> dict[str, str]:
        return {REPORTED[k]: self.values[k] for k in REPORTED}


def answer(sql: str, settings: Settings, tx: bytes) -> Answer | None:
    """The connection's own answer to `sql`, or None if Cairn should run it."""
    m = _TX.match(sql)
    sql = _bare(sql)
    if m:
        word = m.group(1).upper().split()[0]
        if word in ("BEGIN", "START"):
            if re.search(r"\bREAD\s+ONLY\b", sql, re.IGNORECASE):
                raise ChatterError("READ ONLY transactions are not supported: Cairn commits "
                                   "every statement on its own", "0A000")
            return Answer("BEGIN" if word == "BEGIN" else "START TRANSACTION", tx=b"T")
        if word in ("COMMIT", "END"):
            return Answer("COMMIT", tx=b"I")
        if word in ("SAVEPOINT", "RELEASE"):
            return Answer(word)
        to = (m.group(3) or "").upper() == "TO"
        notice = None
        if tx != b"I" or to:
            notice = "Cairn commits every statement on its own: ROLLBACK undid nothing"
        return Answer("ROLLBACK", tx=None if to else b"I", notice=notice)
    m = _SET.match(sql)
    if m:
        name, raw = m.group(1).lower(), m.group(2)
        if raw.upper() == "DEFAULT":
            return Answer("SET", changed=settings.reset(name))
        return Answer("SET", changed=settings.set(name, _value(raw)))
    m = _SET_OTHER.match(sql)
    if m:
        what = " ".join(m.group(1).lower().split())
        if what == "time zone":
            return Answer("SET", changed=settings.set("timezone", _value(m.group(2))))
        if what == "names":
            return Answer("SET", changed=settings.set("client_encoding", _value(m.group(2))))
        return Answer("SET")
    m = _RESET.match(sql)
    if m:
        return Answer("RESET", changed=settings.reset(m.group(1).lower()))
    m = _SHOW.match(sql)
    if m:
        name = " ".join(m.group(1).lower().split())
        name = _SHOW_ALIASES.get(name, name)
        if name in settings.values:
            return Answer("SHOW", [(name, t.TEXT)], [[settings.values[name]]])
        if name == "all":
            rows = [[k, v, ""] for k, v in sorted(settings.values.items())]
            return Answer("SHOW", [("name", t.TEXT), ("setting", t.TEXT),
                                   ("description", t.TEXT)], rows)
        return None  # SHOW TABLES and Cairn's other SHOW statements
    m = _DISCARD.match(sql)
    if m:
        return Answer("DISCARD " + m.group(1).upper())
    if _DEALLOCATE.match(sql):
        return Answer("DEALLOCATE")
    return None


def deallocated(sql: str) -> str | None:
    """The prepared statement DEALLOCATE names ('' for ALL), else None."""
    m = _DEALLOCATE.match(_bare(sql))
    if not m:
        return None
    name = m.group(1)
    return "" if name.upper() == "ALL" else name.strip('"')
