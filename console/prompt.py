"""The interactive prompt: prompt_toolkit with history, `;`-terminated multi-line
input, SQL highlighting and completion of keywords, namespaces and tables.

Enter runs the buffer only once it holds a whole statement (a `;` outside
strings and comments, judged by the server's own splitter), so pasting a
multi-line query or typing one across lines behaves as in psql."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import PygmentsLexer
from pygments.lexers.sql import SqlLexer

from sqlgrammar import KEYWORDS, SqlSyntaxError
from sqlgrammar.secrets import hide_secrets
from sqlgrammar.splitter import split_script

from .client import Names

# Ordinary SQL words, next to the grammar's own (CREATE NAMESPACE, BACKUP, ...).
SQL_WORDS = (
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "HAVING", "LIMIT", "OFFSET", "JOIN",
    "LEFT", "RIGHT", "INNER", "OUTER", "ON", "USING", "AND", "OR", "NOT", "NULL", "IS", "IN",
    "LIKE", "ILIKE", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "END", "DISTINCT", "COUNT",
    "SUM", "AVG", "MIN", "MAX", "INSERT", "INTO", "VALUES", "UPDATE", "SET", "DELETE", "UNION",
    "ALL", "AS", "ASC", "DESC", "WITH", "DATABASE", "BIGINT", "INT", "TEXT", "BOOLEAN",
    "DOUBLE", "TIMESTAMP", "DATE", "JSON", "DECIMAL", "VARCHAR", "BYTES", "SMALLINT", "REAL",
)
_WORD = re.compile(r"[\\A-Za-z0-9_.]*$")


def history_path() -> Path:
    """$CAIRN_HISTORY, else ~/.cairn_history."""
    return Path(os.environ.get("CAIRN_HISTORY") or Path.home() / ".cairn_history")


def is_complete(text: str) -> bool:
    """True when Enter should run the buffer: blank, a \\command, or ended by a real `;`."""
    stripped = text.strip()
    if not stripped or stripped.startswith("\\") or stripped.lower() in ("exit", "quit"):
        return True
    try:
        chunks = list(split_script(text))
    except SqlSyntaxError:  # an open string or comment: keep reading lines
        return False
    if not chunks:
        return True  # only comments and semicolons
    last = chunks[-1]
    return text[last.start + len(last.text):].lstrip().startswith(";")


class SqlCompleter(Completer):
    """Keywords (in the case being typed), namespaces, `ns.table` and \\commands."""

    def __init__(self, names: Names, commands: Callable[[], Iterable[str]]) -> None:
        self.names = names
        self.commands = commands
        self.keywords = sorted(set(KEYWORDS) | set(SQL_WORDS))

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterator[Completion]:
        match = _WORD.search(document.text_before_cursor)
        word = match.group() if match else ""
        if word.startswith("\\"):
            yield from _starting(word, self.commands())
            return
        if not word:
            return
        self.names.refresh()
        if "." in word:
            ns, _, prefix = word.rpartition(".")
            tables = self.names.tables.get(ns.lower(), [])
            yield from _starting(prefix, tables, lower=True)
            return
        lower = word[-1].islower()
        yield from _starting(word, self.keywords, lower=lower, meta="keyword")
        yield from _starting(word, [*self.names.namespaces, "system"], lower=True,
                             meta="namespace")


def _starting(word: str, candidates: Iterable[str], *, lower: bool = False,
              meta: str | None = None) -> Iterator[Completion]:
    for candidate in candidates:
        if candidate.lower().startswith(word.lower()) and candidate.lower() != word.lower():
            text = candidate.lower() if lower else candidate
            yield Completion(text, start_position=-len(word), display_meta=meta)


def _bindings() -> KeyBindings:
    keys = KeyBindings()

    @keys.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buf = event.current_buffer
        if buf.complete_state is not None and buf.complete_state.current_completion:
            buf.complete_state = None  # Enter on the menu takes the completion
            return
        if is_complete(buf.text):
            buf.validate_and_handle()
        else:
            buf.insert_text("\n")

    return keys


class _KeptHistory(FileHistory):
    """The history file, with each `encryption_passphrase` value written as
    '***' (the statement was written there in clear), readable by its owner
    only (it was made 0644)."""

    def store_string(self, string: str) -> None:
        super().store_string(hide_secrets(string, "'***'"))


def _history() -> History:
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        if path.stat().st_uid == os.getuid():
            path.chmod(0o600)
    except OSError:
        return InMemoryHistory()
    return _KeptHistory(str(path))


def make_session(completer: Completer) -> PromptSession[str]:
    """The prompt: `cairn> `, continuation `...> `, Tab completes, ↑ walks history."""
    return PromptSession(
        multiline=True,
        key_bindings=_bindings(),
        history=_history(),
        completer=completer,
        complete_while_typing=False,
        auto_suggest=AutoSuggestFromHistory(),
        lexer=PygmentsLexer(SqlLexer),
        prompt_continuation=lambda width, line, soft: "...> ".rjust(width),
        enable_open_in_editor=True,
    )
