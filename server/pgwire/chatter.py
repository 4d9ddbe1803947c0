"""What drivers say to any PostgreSQL server before and around real work:
SET / RESET / SHOW of settings, BEGIN / COMMIT / ROLLBACK (transactions.py),
DISCARD, DEALLOCATE. Answered by the connection itself; none of it reaches the
SQL sandbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storage.backup.schema import NAME_PATTERN
from storage.names import fold

from . import transactions
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
    "session_authorization": "", "role": "none", "row_security": "on", "synchronous_commit": "on",
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
    notice: str | None = None  # a WARNING
    notice_code: str = "25P01"


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
_RESET = re.compile(r"^RESET\s+(SESSION\s+AUTHORIZATION|[A-Za-z_][\w.]*|ALL)$", re.IGNORECASE)
_SHOW = re.compile(r"^SHOW\s+([A-Za-z_][\w.]*(?:\s+[A-Za-z_]+)*)$", re.IGNORECASE)
_DISCARD = re.compile(r"^DISCARD\s+(ALL|PLANS|SEQUENCES|TEMP|TEMPORARY)$", re.IGNORECASE)
# Cairn has no cursors (DECLARE is refused) and no LISTEN: closing all of them,
# or unlistening, is nothing to do (asyncpg's pool sends both, and RESET ALL and
# pg_advisory_unlock_all(), at every release: the pool failed each one).
_CLOSE = re.compile(r"^CLOSE\s+(ALL|[A-Za-z_]\w*|\"[^\"]+\")$", re.IGNORECASE)
_UNLISTEN = re.compile(r"^UNLISTEN\s+(\*|[A-Za-z_]\w*|\"[^\"]+\")$", re.IGNORECASE)
_DEALLOCATE = re.compile(r"^DEALLOCATE\s+(?:PREPARE\s+)?(ALL|[A-Za-z_]\w*|\"[^\"]+\")$",
                         re.IGNORECASE)


def _bare(sql: str) -> str:
    """`sql` without surrounding blanks and one trailing `;`."""
    sql = sql.strip()
    return sql[:-1].rstrip() if sql.endswith(";") else sql


# What Cairn does not honour is refused rather than echoed (22023, as a value
# PostgreSQL does not take): a client told TimeZone = 'America/New_York' showed
# times in New York while zone-less input was still read as UTC; told
# standard_conforming_strings = off, a driver that only doubles backslashes
# would have its values changed; IntervalStyle, bytea_output and
# extra_float_digits were echoed while answers went as before.
_UTC_NAMES = frozenset({
    "utc", "etc/utc", "uct", "etc/uct", "gmt", "etc/gmt", "gmt0", "etc/gmt0", "gmt+0",
    "etc/gmt+0", "gmt-0", "etc/gmt-0", "greenwich", "etc/greenwich", "universal",
    "etc/universal", "zulu", "etc/zulu", "z",
})  # fmt: skip
_ZERO_OFFSET = re.compile(r"(?:utc|gmt|ut)?[+-]?0{1,2}(?::?00){0,2}", re.IGNORECASE)
_INTERVAL = re.compile(r"^INTERVAL\s+('[^']*')(?:\s+HOUR(?:\s+TO\s+MINUTE)?)?$", re.IGNORECASE)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _honoured(name: str, value: str) -> str:
    """`value` as Cairn holds it for `name`, or 22023 for one it would not honour."""
    bare = value.strip().lower()
    if name == "timezone":
        if bare in _UTC_NAMES:
            return value.strip()
        if _ZERO_OFFSET.fullmatch(bare):
            return "UTC"
        raise ChatterError(f"TimeZone {value[:60]!r} is not supported: Cairn reads and writes "
                           "times in UTC (TimeZone 'UTC'; a JDBC client: -Duser.timezone=UTC)")
    if name == "standard_conforming_strings":
        if _boolean(name, bare):
            return "on"
        raise ChatterError("standard_conforming_strings = off is not supported: Cairn reads "
                           "a backslash in a string as itself")
    if name == "intervalstyle" and bare != "postgres":
        raise ChatterError(f"IntervalStyle {value[:40]!r} is not supported: Cairn writes "
                           "intervals in the postgres style ('1 day 02:00:00')")
    if name == "bytea_output" and bare != "hex":
        raise ChatterError(f"bytea_output {value[:40]!r} is not supported: Cairn writes bytes "
                           "as hex ('\\x0a0b')")
    if name == "statement_timeout":
        return _milliseconds(name, value)
    if name == "search_path":
        namespace = search_namespace(value)
        if namespace is not None and not re.match(NAME_PATTERN, namespace):
            more = "…" if len(namespace) > 64 else ""
            raise ChatterError(f"search_path names {namespace[:64]!r}{more}, which is no "
                               "namespace name ([A-Za-z_][A-Za-z0-9_]*, at most 64 characters)")
    if name == "extra_float_digits":
        try:
            digits = int(bare)
        except ValueError:
            raise ChatterError(f'invalid value for parameter "extra_float_digits": '
                               f"{value[:40]!r}") from None
        if not 1 <= digits <= 3:
            raise ChatterError(f"extra_float_digits = {value[:40]} is not supported: Cairn "
                               "writes every float in its shortest exact form, as 1 to 3 do")
        return str(digits)
    return value


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?)\s*(us|ms|s|min|h|d)?")
_UNIT_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000,
            None: 1}
MAX_TIMEOUT_MS = 2**31 - 1  # PostgreSQL's bound of statement_timeout


def _milliseconds(name: str, value: str) -> str:
    """A duration setting as PostgreSQL reads it: milliseconds, or a number
    with a unit (us, ms, s, min, h, d); 0 is none. Its text, in ms."""
    match = _DURATION.fullmatch(value.strip().strip("'\"").strip().lower())
    ms = float(match.group(1)) * _UNIT_MS[match.group(2)] if match else -1.0
    if not 0 <= ms <= MAX_TIMEOUT_MS:
        raise ChatterError(f'invalid value for parameter "{name}": {value[:40]!r} (a duration '
                           f"of 0 to {MAX_TIMEOUT_MS} ms: 5000, '5s', '1min'; 0 is none)")
    return str(round(ms))


def path_names(path: str) -> list[str]:
    """The schemas `search_path` names, in its order, folded as PostgreSQL
    folds them (A-Z only: '\u212aELVIN' is no kelvin)."""
    return [fold(part.strip().strip('"').strip()) for part in path.split(",")]


def search_namespaces(path: str) -> list[str]:
    """The namespaces `search_path` names, in its order, each once: its schemas
    other than PostgreSQL's own ("$user", public, pg_catalog, information_schema)."""
    own = ("", "$user", "public", "pg_catalog", "information_schema", "pg_temp")
    return list(dict.fromkeys(name for name in path_names(path) if name not in own))


def search_namespace(path: str) -> str | None:
    """The first namespace `search_path` names; None if it names none."""
    return next(iter(search_namespaces(path)), None)


def first_existing(names: list[str], exists: Callable[[str], bool],
                   existing: Callable[[], set[str]]) -> str | None:
    """The namespace unqualified table names mean: the first of `names`
    (search_namespaces) that exists now, as PostgreSQL takes search_path's first
    schema that exists, to read and to create in; the first named if none does
    (NOT_FOUND then names it). Many names are checked against `existing()`, the
    namespaces all read at once, not one look-up each (a path of 1 MB)."""
    if len(names) <= 1:
        return next(iter(names), None)
    if len(names) <= 16:
        found = next((n for n in names if exists(n)), None)
    else:
        have = existing()
        found = next((n for n in names if n in have), None)
    return found if found is not None else names[0]


def checked(name: str, value: str, user: str | None = None) -> str:
    """`value` as a connection holds it for the setting `name` (lower case),
    or the ChatterError SET answers: the one rule of SET, the start-up
    settings and set_config() (pgcatalog.py), which echoed a value SET
    refuses (TimeZone 'America/New_York') as if applied. `user`: the
    connection's, the one role and session authorization it may name."""
    if name == "client_encoding" and value.lower().replace("'", "") not in _UTF8:
        raise ChatterError(f"client_encoding {value!r} is not supported: Cairn speaks UTF8")
    # The last two were echoed as applied, and so were a session authorization (as
    # a role still is: `_identity`); a DateStyle not ISO was reported while dates
    # went as ISO (psycopg read 0010-11-12 as 12 November); a read-only
    # transaction was reported while an INSERT still ran.
    if name in ("server_version", "server_encoding", "server_version_num", "is_superuser",
                "in_hot_standby"):
        raise ChatterError(f'parameter "{name}" cannot be changed', "55P02")
    if name in _IDENTITY:
        return _identity(name, value, user)
    bare = value.strip("'\" ").lower()
    if name == "datestyle" and not bare.startswith("iso"):
        raise ChatterError(f"DateStyle {value[:40]!r} is not supported: Cairn writes dates "
                           "as ISO (DateStyle 'ISO, MDY' or 'ISO, DMY')")
    # Read as PostgreSQL reads a Boolean: `t`, `tru`, `y`, `1` are on too (they
    # were taken, ParameterStatus said `t`, and an INSERT still ran).
    if name in ("default_transaction_read_only", "transaction_read_only"):
        if _boolean(name, bare):
            raise ChatterError(f"{name} = {value[:40]} is not supported: Cairn has no "
                               "read-only transactions", "0A000")
        return "off"
    if name == "client_encoding":
        value = "UTF8"
    value = _honoured(name, value)
    if len(value) > MAX_SETTING_CHARS:
        raise ChatterError(f'value for parameter "{name[:64]}" is {len(value)} characters '
                           f"long, at most {MAX_SETTING_CHARS}")
    return value


# Who a connection is comes from its login (the token, or its user name):
# `SET ROLE bob` and `SET SESSION AUTHORIZATION bob` answered SET while
# current_user stayed the login's. Naming the login itself, or no role, is taken.
_IDENTITY = ("session_authorization", "role")
_READ_ONLY_MODE = re.compile(r"\bREAD\s+ONLY\b", re.IGNORECASE)


def _identity(name: str, value: str, user: str | None) -> str:
    if value == user:
        return value
    if name == "role" and value.lower() == "none":
        return "none"
    who = "session authorization" if name == "session_authorization" else "role"
    raise ChatterError(f"cannot set {who} to {value[:64]!r}: a connection is the user it "
                       f"logged in as ({user!r}) and Cairn has no roles to switch to", "55P02")


def _role_name(text: str) -> str:
    """A role name as PostgreSQL reads one: quoted as written, else in lower case."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].replace(text[0] * 2, text[0])
    return fold(text)


def _boolean(name: str, bare: str) -> bool:
    """A Boolean setting as PostgreSQL reads it: a word, or enough of one."""
    if bare and any(word.startswith(bare) for word in _TRUE) and bare != "o":
        return True
    if bare and any(word.startswith(bare) for word in _FALSE) and bare != "o":
        return False
    raise ChatterError(f'parameter "{name}" requires a Boolean value')


def _options(text: str) -> list[tuple[str, str]]:
    """The settings of a start-up `options`: `-c name=value`, `-cname=value`
    or `--name=value`, separated by blanks, a backslash keeping the next
    character (PostgreSQL's pg_split_opts). Any other switch is 22023."""
    words = [re.sub(r"\\(.)", r"\1", w, flags=re.DOTALL)
             for w in re.findall(r"(?:\\.|[^\s\\]|\\$)+", text, re.DOTALL)]
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "-c" and i < len(words):
            setting = words[i]
            i += 1
        elif word.startswith("--") or word.startswith("-c") and len(word) > 2:
            setting = word[2:]
        else:
            raise ChatterError(f"start-up option {word[:60]!r} is not supported: Cairn takes "
                               "-c name=value and --name=value")
        name, eq, value = setting.partition("=")
        if not eq or not name:
            raise ChatterError(f"start-up option {setting[:60]!r} needs name=value")
        out.append((name.replace("-", "_"), value))
    return out


def _value(text: str) -> str:
    parts = []
    for m in re.finditer(r"'([^']*(?:''[^']*)*)'|\"([^\"]*)\"|([^,\s]+)", text):
        parts.append(m.group(1).replace("''", "'") if m.group(1) is not None
                     else m.group(2) if m.group(2) is not None else m.group(3))
    return ", ".join(parts)


class Settings:
    """One connection's settings (GUCs)."""

    def __init__(self, user: str, startup: dict[str, str], admin: bool,
                 session: Any = None) -> None:
        self.session = session  # its namespace and timeout follow search_path, statement_timeout
        self.namespaces: list[str] = []  # those search_path names (search_namespaces)
        self.values = dict(DEFAULTS)
        self.user = user
        self.values["session_authorization"] = user
        self.values["is_superuser"] = "on" if admin else "off"
        self.chars = sum(len(k) + len(v) for k, v in self.values.items())
        self.start(startup)
        # RESET goes back to these, as PostgreSQL's session defaults: the start-up
        # packet's (they were DEFAULTS: a pooled client's search_path was lost)
        self.initial = {n: self.values[n] for n in DEFAULTS}

    def set(self, name: str, value: str) -> dict[str, str]:
        name = name.lower()
        value = checked(name, value, self.user)
        old = self.values.get(name)
        chars = self.chars + len(value) - (len(old) if old is not None else -len(name))
        if chars > MAX_SETTINGS_CHARS:
            raise ChatterError(f"this connection's settings would hold {chars} characters, "
                               f"at most {MAX_SETTINGS_CHARS}: RESET some (RESET ALL)", "54000")
        self.chars = chars
        self.values[name] = value
        self._follow(name)
        return {REPORTED[name]: value} if name in REPORTED else {}

    def _follow(self, name: str) -> None:
        """The session's default namespace (search_path) and query bound
        (statement_timeout), which Cairn honours (they were echoed only)."""
        if name == "search_path":  # the first named; each statement: the first that exists
            self.namespaces = search_namespaces(self.values[name])  # (connection.py)
        if self.session is None:
            return
        if name == "search_path":
            self.session.namespace = next(iter(self.namespaces), None)
        elif name == "statement_timeout":
            ms = int(self.values[name])
            self.session.timeout = ms / 1000 if ms else None

    def ran(self, columns: list[tuple[str, int]], rows: list[list[Any]],
            settings: list[tuple[str, str]]) -> Answer:
        """A catalog query's answer once it has run: its set_config() calls'
        (name, value), checked (pgcatalog.py), `set` in turn, if it answered a
        row: with none no set_config() ran (`… WHERE false` and a Describe's
        probe, which reads no row, changed the setting all the same)."""
        changed: dict[str, str] = {}
        for name, value in settings if rows else []:
            changed.update(self.set(name, value))
        return Answer(f"SELECT {len(rows)}", columns, rows, changed)

    def start(self, startup: dict[str, str]) -> None:
        """The start-up packet's settings, and those of its `options`
        (`-c name=value`, `--name=value`), as PostgreSQL reads them: one
        Cairn cannot honour fails the connection (FATAL, server.py)."""
        for key, value in [*startup.items(), *_options(startup.get("options", ""))]:
            # server_version and server_encoding too: 55P02, FATAL at start-up
            # (they were skipped in silence, unlike server_version_num).
            if key.lower() in self.values:
                self.set(key.lower(), value)

    def reset(self, name: str) -> dict[str, str]:
        names = [*REPORTED, "search_path", "statement_timeout"] if name == "all" else [name]
        custom = [n for n in self.values if n not in DEFAULTS] if name == "all" else [
            n for n in names if n not in DEFAULTS and n in self.values]
        for n in custom:  # a setting Cairn does not know: forgotten, its room freed
            self.chars -= len(n) + len(self.values.pop(n))
        changed: dict[str, str] = {}
        for n in names:
            if n in DEFAULTS and n not in ("session_authorization", "is_superuser"):
                value = self.initial[n]
                self.chars += len(value) - len(self.values[n])
                self.values[n] = value
                self._follow(n)
                if n in REPORTED:
                    changed[REPORTED[n]] = value
        return changed

    def reported(self) -> dict[str, str]:
        return {REPORTED[k]: self.values[k] for k in REPORTED}


def answer(sql: str, settings: Settings, tx: bytes,
           savepoints: list[str] | None = None) -> Answer | None:
    """The connection's own answer to `sql`, or None if Cairn should run it."""
    tx_answer = transactions.answer(sql, tx, savepoints)  # BEGIN, COMMIT, ROLLBACK, …
    if tx_answer is not None:
        if tx_answer.read_only:
            raise ChatterError("READ ONLY transactions are not supported: Cairn commits "
                               "every statement on its own", "0A000")
        return Answer(tx_answer.tag, tx=tx_answer.tx, notice=tx_answer.notice,
                      notice_code=tx_answer.notice_code)
    sql = _bare(sql)
    m = _SET.match(sql)
    if m:
        name, raw = m.group(1).lower(), m.group(2)
        if raw.upper() == "DEFAULT":
            return Answer("SET", changed=settings.reset(name))
        value = _role_name(raw) if name in _IDENTITY else _value(raw)
        return Answer("SET", changed=settings.set(name, value))
    m = _SET_OTHER.match(sql)
    if m:
        what = " ".join(m.group(1).lower().split())
        if what == "time zone":
            zone = _INTERVAL.sub(r"\1", m.group(2).strip())
            if zone.upper() in ("LOCAL", "DEFAULT"):
                return Answer("SET", changed=settings.reset("timezone"))
            return Answer("SET", changed=settings.set("timezone", _value(zone)))
        if what == "names":
            return Answer("SET", changed=settings.set("client_encoding", _value(m.group(2))))
        if what in ("role", "session authorization"):
            name = "role" if what == "role" else "session_authorization"
            who = m.group(2).strip()
            if who.upper() == "DEFAULT" or (name == "role" and who.upper() == "NONE"):
                return Answer("SET", changed=settings.reset(name))
            return Answer("SET", changed=settings.set(name, _role_name(who)))
        if _READ_ONLY_MODE.search(m.group(2)):  # SET [SESSION CHARACTERISTICS AS] TRANSACTION
            raise ChatterError("READ ONLY transactions are not supported: Cairn has no "
                               "read-only transactions", "0A000")
        return Answer("SET")
    m = _RESET.match(sql)
    if m:
        name = "_".join(m.group(1).lower().split())  # RESET SESSION AUTHORIZATION
        return Answer("RESET", changed=settings.reset(name))
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
    if m:  # DISCARD ALL is RESET ALL and DEALLOCATE ALL too (the connection drops them)
        what = m.group(1).upper()
        return Answer("DISCARD " + what, changed=settings.reset("all") if what == "ALL" else {})
    m = _DEALLOCATE.match(sql)
    if m:  # psycopg empties its statement cache on the tag `DEALLOCATE ALL`
        return Answer("DEALLOCATE ALL" if m.group(1).upper() == "ALL" else "DEALLOCATE")
    m = _CLOSE.match(sql)
    if m:
        if m.group(1).upper() != "ALL":
            raise ChatterError(f'cursor "{m.group(1).strip(chr(34))}" does not exist', "34000")
        return Answer("CLOSE CURSOR ALL")
    if _UNLISTEN.match(sql):
        return Answer("UNLISTEN")
    return None


def changes(sql: str) -> bool:
    """Whether `sql` is one of the statements answered here that change
    something (a setting, the transaction, the prepared statements): all
    but SHOW."""
    bare = _bare(sql)
    return transactions.claims(sql) or any(
        p.match(bare) for p in (_SET, _SET_OTHER, _RESET, _DISCARD, _DEALLOCATE, _CLOSE,
                                _UNLISTEN))


def deallocated(sql: str) -> str | None:
    """The prepared statement DEALLOCATE names ('' for ALL and DISCARD ALL), else None."""
    bare = _bare(sql)
    d = _DISCARD.match(bare)
    if d:
        return "" if d.group(1).upper() == "ALL" else None
    m = _DEALLOCATE.match(bare)
    if not m:
        return None
    name = m.group(1)
    if name.startswith('"'):
        return name[1:-1]
    return "" if name.upper() == "ALL" else fold(name)  # unquoted: folded, as PostgreSQL does
