"""BEGIN, COMMIT, ROLLBACK, their AND CHAIN, savepoints and the two-phase
statements (PREPARE TRANSACTION, COMMIT / ROLLBACK PREPARED): answered by the
connection, as PostgreSQL answers them, the transaction status included.

Cairn commits every statement on its own: BEGIN and COMMIT are accepted so
drivers that open transactions work, ROLLBACK undoes nothing and says so, and
a transaction is never prepared (PostgreSQL's with `max_prepared_transactions
= 0`, its default). A statement is read word by word (`_TOKEN`, no pattern
that backtracks), its whole text up to MAX_WORDS: anything else in it is
42601, as in PostgreSQL (`COMMIT garbage` was answered COMMIT until
2026-12-08)."""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass

from .errors import PgError

NO_TRANSACTION = "there is no transaction in progress"
UNDID_NOTHING = "Cairn commits every statement on its own: ROLLBACK undid nothing"
_NOT_PREPARED = "prepared transactions are disabled"
_NOT_PREPARED_HINT = "Cairn commits every statement on its own; it prepares no transaction."
MAX_SAVEPOINTS = 10_000  # one block's; past it 54000
_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
_GID_BYTES = 200  # PostgreSQL's GIDSIZE: a longer transaction identifier is 22023
MAX_WORDS = 64  # the longest of these statements is some 20 words: past this, 42601
# PostgreSQL 15's lexer (scan.l): whitespace is these five only, and a word's
# characters are ASCII letters, digits, _ and $ and every non-ASCII one (its
# bytes >= 0x80): `COMMIT\u00a0AND CHAIN` is the word COMMIT\u00a0AND (42601), not
# COMMIT AND CHAIN, and `SAVEPOINT é` names a savepoint (Python's \s and \w
# took U+00A0, U+3000, \v, \x1c as spaces and é as no letter until 2026-12-08).
_SPACE = " \t\n\r\f"
_WORD = r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*"
# A quoted string, a quoted name, a word, or any other one character.
# Possessive runs: a 10 MB quoted name was read a character at a time (0.6 s a
# scan, two scans, on the event loop).
_TOKEN = re.compile(rf"'(?:[^']++|'')*+'?|\"(?:[^\"]++|\"\")*+\"?|{_WORD}|[^{_SPACE}]")
_FIRST = re.compile(rf"[{_SPACE}]*({_WORD})(?:[{_SPACE}]*({_WORD}))?")
_STRING = re.compile(r"'(?:[^']++|'')*+'")
_NAME = re.compile(rf"{_WORD}|\"(?:[^\"]++|\"\")++\"")
# Keywords and unquoted names fold as PostgreSQL folds them in UTF8: ASCII only
# (str.upper() made `commıt`, dotless i, the keyword COMMIT).
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_KEYWORD_CHARS = 20  # longer than any keyword here (CURRENT_TIMESTAMP: 17)


def _upper(word: str) -> str:
    """`word` as a keyword is compared: ASCII folded. One past ASCII or longer
    than any keyword is none, and is left as it is (str.translate of a 10 MB
    word, at each keyword tried, held the event loop for seconds)."""
    return word.upper() if len(word) <= _KEYWORD_CHARS and word.isascii() else word

# PostgreSQL 15's reserved keywords and type/function-name ones (pg_get_keywords()'s
# catcode R and T): no savepoint's unquoted name (its ColId): `SAVEPOINT select` is 42601
_RESERVED_WORDS = """
ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC AUTHORIZATION BINARY BOTH CASE CAST CHECK
COLLATE COLLATION COLUMN CONCURRENTLY CONSTRAINT CREATE CROSS CURRENT_CATALOG CURRENT_DATE
CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DEFAULT DEFERRABLE DESC
DISTINCT DO ELSE END EXCEPT FALSE FETCH FOR FOREIGN FREEZE FROM FULL GRANT GROUP HAVING ILIKE IN
INITIALLY INNER INTERSECT INTO IS ISNULL JOIN LATERAL LEADING LEFT LIKE LIMIT LOCALTIME
LOCALTIMESTAMP NATURAL NOT NOTNULL NULL OFFSET ON ONLY OR ORDER OUTER OVERLAPS PLACING PRIMARY
REFERENCES RETURNING RIGHT SELECT SESSION_USER SIMILAR SOME SYMMETRIC TABLE TABLESAMPLE THEN TO
TRAILING TRUE UNION UNIQUE USER USING VARIADIC VERBOSE WHEN WHERE WINDOW WITH"""
_RESERVED = frozenset(_RESERVED_WORDS.split())
_ISOLATION = (("SERIALIZABLE",), ("REPEATABLE", "READ"), ("READ", "COMMITTED"),
              ("READ", "UNCOMMITTED"))


@dataclass(frozen=True)
class Outcome:
    tag: str
    tx: bytes | None = None  # the transaction status after it, if it changes
    notice: str | None = None  # a WARNING
    notice_code: str = "25P01"
    read_only: bool = False  # BEGIN READ ONLY (chatter.py refuses it)


class TransactionError(PgError):
    """An error answered for a transaction statement; `tx`: the transaction
    status after it, when it changes (PREPARE TRANSACTION ends the block)."""

    def __init__(self, code: str, message: str, tx: bytes | None = None,
                 hint: str | None = None) -> None:
        super().__init__(code, message, hint=hint)
        self.tx = tx


def _words(sql: str) -> list[str]:
    """The statement's first MAX_WORDS + 1 words, read no further (`COMMIT`
    and 10 MB of commas was a list of 10 million words)."""
    sql = sql.strip(_SPACE)
    if sql.endswith(";"):
        sql = sql[:-1]
    return [m.group() for m in itertools.islice(_TOKEN.finditer(sql), MAX_WORDS + 1)]


_NOT_OURS = re.compile(rf"[^\S{_SPACE}]")  # Python's whitespace that PostgreSQL's is not
_STRIPPED = re.compile(r"\s*")
_LOOK_BACK = 4096
_HEAD_CHARS = 256


def edged(sql: str, start: int, text: str, code: str) -> str:
    """`code`, the statement `text` split from `sql` at `start`, with what the
    splitter stripped at its ends put back when that is Python's whitespace and
    not PostgreSQL's (U+00A0, U+0085, U+3000, \\v, …: part of a word to
    PostgreSQL's lexer): `COMMIT\u00a0` answered COMMIT where PostgreSQL says
    42601. A statement answered here that is none once they are read as
    PostgreSQL reads them is 42601; any other is `code` as it was (HTTP's)."""
    if not claims(_NOT_OURS.sub(" ", code[:_HEAD_CHARS])):  # its first words only: every
        return code  # statement is asked, a 10 MB INSERT too
    end = start + len(text)
    trail = sql[end:_STRIPPED.match(sql, end).end()]  # type: ignore[union-attr]
    first = start
    while first > 0:  # back over the whitespace before it, in C-speed windows
        window = sql[max(0, first - _LOOK_BACK):first]
        kept = len(window.rstrip())
        first -= len(window) - kept
        if kept:
            break
    whole = sql[first:start] + code + trail
    if not _NOT_OURS.search(whole):
        return code
    if not claims(whole):
        word = _TOKEN.search(whole.lstrip(_SPACE))
        raise PgError("42601", f'syntax error at or near "{word.group()[:60] if word else ""}"')
    return whole


def claims(sql: str) -> bool:
    """Whether `sql` (comments blanked) is a statement answered here: its first
    two words only (every statement is asked, a 10 MB INSERT too)."""
    m = _FIRST.match(sql)
    if m is None:
        return False
    first, second = _upper(m.group(1)), _upper(m.group(2) or "")
    if first in ("START", "PREPARE"):
        return second == "TRANSACTION"
    return first in ("BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE")


class _Reader:
    def __init__(self, words: list[str]) -> None:
        self.words, self.pos = words, 0

    def take(self, *expected: str) -> bool:
        """Whether the next words are `expected` (read past them if so)."""
        got = [_upper(w) for w in self.words[self.pos:self.pos + len(expected)]]
        if got == list(expected):
            self.pos += len(expected)
            return True
        return False

    def keyword_savepoint(self) -> None:
        """RELEASE's and ROLLBACK TO's optional SAVEPOINT, unless it is the name:
        `RELEASE SAVEPOINT` releases the savepoint named savepoint, as PostgreSQL's
        grammar reads it (it was 42601)."""
        if self.take("SAVEPOINT") and self.pos == len(self.words):
            self.pos -= 1

    def name(self) -> str:
        """A savepoint's name (a word that is no reserved keyword, or a quoted name)."""
        word = self.words[self.pos] if self.pos < len(self.words) else ""
        if _NAME.fullmatch(word) and _upper(word) not in _RESERVED:
            self.pos += 1
            return self.words[self.pos - 1]
        raise self.error()

    def string(self) -> str:
        """A string literal's value."""
        word = self.words[self.pos] if self.pos < len(self.words) else ""
        if not _STRING.fullmatch(word):
            raise self.error()
        self.pos += 1
        return word[1:-1].replace("''", "'")

    def end(self) -> None:
        if self.pos < len(self.words):
            raise self.error()

    def error(self) -> PgError:
        if self.pos >= len(self.words):
            return PgError("42601", "syntax error at end of input")
        return PgError("42601", f'syntax error at or near "{self.words[self.pos][:60]}"')


def _modes(r: _Reader) -> bool:
    """BEGIN's transaction modes, up to the end; whether READ ONLY is one."""
    read_only, first = False, True
    while r.pos < len(r.words):
        if not first:
            r.take(",")
        first = False
        if r.take("ISOLATION", "LEVEL"):
            if not any(r.take(*level) for level in _ISOLATION):
                raise r.error()
        elif r.take("READ", "WRITE") or r.take("DEFERRABLE") or r.take("NOT", "DEFERRABLE"):
            pass
        elif r.take("READ", "ONLY"):
            read_only = True
        else:
            raise r.error()
    return read_only


def _savepoint(name: str) -> str:
    """A savepoint's name as PostgreSQL compares it: unquoted, folded, its first
    63 bytes in UTF-8, cut at a character's start (PostgreSQL's identifiers,
    NAMEDATALEN; a name is kept as long as its block). It was 63 characters:
    40 é (80 bytes) were kept whole where PostgreSQL keeps 31, and RELEASE of
    the 31 was 3B001. (The query text is strict UTF-8: statements.text.)"""
    if name.startswith('"'):
        name = name[1:-1].replace('""', '"')[:_NAME_BYTES]
    else:  # its first 63 characters hold its first 63 bytes: only they are folded
        name = name[:_NAME_BYTES].translate(_LOWER)
    if len(name) <= _NAME_BYTES // 4:  # 4 bytes a character at most: no cut
        return name
    return name.encode()[:_NAME_BYTES].decode("utf-8", "ignore")  # a cut character goes


def _index(savepoints: list[str], name: str) -> int:
    """The newest savepoint of this name, 3B001 if there is none (PostgreSQL's)."""
    for i in range(len(savepoints) - 1, -1, -1):
        if savepoints[i] == name:
            return i
    raise PgError("3B001", f'savepoint "{name[:64]}" does not exist')


def answer(sql: str, tx: bytes, savepoints: list[str] | None = None) -> Outcome | None:
    """The answer to `sql` in transaction status `tx` (b"I" idle, b"T" in a
    block), or None if it is not a statement of these. `savepoints`: the
    block's, oldest first, kept up to date here (None: not checked)."""
    if not claims(sql):
        return None
    r = _Reader(_words(sql))
    if len(r.words) > MAX_WORDS:
        r.pos = MAX_WORDS
        raise r.error()
    block = tx != b"I"
    if r.take("BEGIN") or r.take("START", "TRANSACTION"):
        tag = "BEGIN" if _upper(r.words[0]) == "BEGIN" else "START TRANSACTION"
        if tag == "BEGIN":
            r.take("WORK") or r.take("TRANSACTION")
        read_only = _modes(r)
        if savepoints is not None and not block:
            savepoints.clear()
        if block:
            return Outcome(tag, b"T", "there is already a transaction in progress", "25001",
                           read_only)
        return Outcome(tag, b"T", read_only=read_only)
    if r.take("PREPARE", "TRANSACTION"):
        gid = r.string()
        r.end()
        if block and len(gid.encode()) >= _GID_BYTES:  # PostgreSQL checks this first
            raise TransactionError("22023", f'transaction identifier "{gid[:_GID_BYTES]}" is '
                                            "too long", b"I")
        if block:  # PostgreSQL's too: refused, the transaction ends
            raise TransactionError("55000", _NOT_PREPARED, b"I", _NOT_PREPARED_HINT)
        return Outcome("ROLLBACK", notice=NO_TRANSACTION)  # PostgreSQL's answer outside one
    if r.take("SAVEPOINT") or r.take("RELEASE"):
        what = "SAVEPOINT" if _upper(r.words[0]) == "SAVEPOINT" else "RELEASE"
        if what == "RELEASE":
            r.keyword_savepoint()
        name = _savepoint(r.name())
        r.end()
        if not block:
            raise PgError("25P01", f"{'RELEASE SAVEPOINT' if what == 'RELEASE' else what} can "
                                   "only be used in transaction blocks")
        if savepoints is not None:
            if what == "SAVEPOINT":
                if len(savepoints) >= MAX_SAVEPOINTS:  # kept for the block's life: bounded
                    raise PgError("54000", "too many savepoints in one transaction block (at "
                                           f"most {MAX_SAVEPOINTS}): release some")
                savepoints.append(name)
            else:  # it and every one after it
                del savepoints[_index(savepoints, name):]
        return Outcome(what)
    commit = r.take("COMMIT") or r.take("END")
    if not commit:
        r.take("ROLLBACK") or r.take("ABORT")
    word = "COMMIT" if commit else "ROLLBACK"
    if r.take("PREPARED"):
        gid = r.string()
        r.end()
        if block:
            raise PgError("25001", f"{word} PREPARED cannot run inside a transaction block")
        raise PgError("42704", f'prepared transaction with identifier "{gid[:200]}" does not '
                               "exist")
    r.take("WORK") or r.take("TRANSACTION")
    if not commit and r.take("TO"):
        r.keyword_savepoint()
        name = _savepoint(r.name())
        r.end()
        if not block:
            raise PgError("25P01", "ROLLBACK TO SAVEPOINT can only be used in transaction blocks")
        if savepoints is not None:  # every one after it ends, it stays
            del savepoints[_index(savepoints, name) + 1:]
        return Outcome("ROLLBACK", notice=UNDID_NOTHING)
    chain = False
    if r.take("AND"):
        chain = not r.take("NO")
        if not r.take("CHAIN"):
            raise r.error()
    r.end()
    if chain and not block:
        raise PgError("25P01", f"{word} AND CHAIN can only be used in transaction blocks")
    if not block:
        return Outcome(word, notice=NO_TRANSACTION)
    if savepoints is not None:  # the block ends (AND CHAIN: a new one begins at once)
        savepoints.clear()
    return Outcome(word, b"T" if chain else b"I", None if commit else UNDID_NOTHING)
