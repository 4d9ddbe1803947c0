"""How the console prints: aligned tables (rich), JSON lines or CSV, and errors.

Results go to stdout and errors to stderr, so `cairn sql -c ... --format csv > f`
gives a clean file and a failing script still says why on the terminal."""

from __future__ import annotations

import csv
import functools
import io
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, TextIO

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import jsontext
from .client import ApiError

FORMATS = ("table", "json", "csv")
_NUMERIC = re.compile(r"^(SMALLINT|INT|INTEGER|BIGINT|REAL|FLOAT|DOUBLE|DECIMAL|HUGEINT|"
                      r"UBIGINT|UINTEGER|TINYINT|NUMERIC)\b", re.IGNORECASE)
_WIDE = 10_000  # width for a non-terminal console (notices, footers): never wrapped
# A table's cell (or header) longer than this is cut, with a "…": one role
# user's 1 MB value padded every other row of a piped table to 1 MB (101 rows
# wrote 105 MB and held 783 MB). csv and json write values whole.
CELL_LIMIT = 1000
# What a terminal would act on or draw as nothing, shown as an escape instead:
# by Unicode category, control characters (Cc: C0, DEL, C1), format
# characters (Cf: the bidirectional controls U+061C, U+200E/F, U+202A-202E,
# U+2066-2069, and the invisible U+200B, U+2060, U+FEFF, ...), lone surrogates
# (Cs) and the line and paragraph separators (Zl, Zp); plus the other
# Default_Ignorable_Code_Points (Hangul fillers, variation selectors, U+E0000-
# E0FFF: drawn as nothing). In a value, a column name or an error message, any
# user of the server may have written them: printed raw, ESC sequences move the
# cursor over earlier lines, clear the screen, set the title or the clipboard
# (OSC 52); bidi controls reorder what follows ('<U+061C>12 34' read '34 12');
# an invisible one makes 'adm<U+200B>in' read 'admin'. Rich drops BEL, CR and BS
# but lets ESC through, and expands a TAB (folding the cell onto two lines).
_ESCAPED = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))
_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5),
              (0x180B, 0x180F), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F),
              (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
              (0xE0000, 0xE0FFF))
_IGNORED = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _IGNORABLE) + "]")
# ASCII controls, and runs of anything past ASCII (most of which print: judged
# by str.isprintable() first, in C, then character by character)
_SUSPECT = re.compile("[\x00-\x1f\x7f]|[^\x00-\x7f]+")
_NAMED = {"\t": "\\t", "\n": "\\n"}
_CONTEXT = 60  # characters of a long source line shown either side of an error


@dataclass(frozen=True)
class Source:
    """What the user typed (or the file): errors' line and column point into it."""

    text: str
    name: str | None = None  # a file name, shown in the error


def cell(value: Any) -> str:
    """A value as the table shows it: JSON values compact (their numbers' text and
    keys as the server sent them), booleans lower case."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return jsontext.dumps(value)
    return str(value)


def visible(text: str) -> str:
    """`text` with every control, format or invisible character but tab and
    newline written as an escape (`\\x1b`, `\\u200b`), for the terminal:
    what a value says, never what it would do there."""
    return _SUSPECT.sub(_keep_breaks, text)


def one_line(text: str) -> str:
    """`visible(text)` with tabs and line breaks as escapes too (`\\t`, `\\n`):
    a table's cell or header, where a break (or a TAB rich expands and folds)
    would print a line that reads as a row."""
    return _SUSPECT.sub(_all, text)


def _keep_breaks(match: re.Match[str]) -> str:
    run = match.group()
    return run if run in ("\t", "\n") else _all(match)


def _all(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) == 1 and run < "\x80":
        return _NAMED.get(run) or _escape(run)
    if run.isprintable() and not _IGNORED.search(run):  # no Cc, Cf, Cs, Zl, Zp: fast
        return run
    return "".join(_escape(ch) if _hidden(ch) else ch for ch in run)


@functools.lru_cache(maxsize=4096)
def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in _ESCAPED or _IGNORED.match(ch) is not None


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def csv_cell(value: Any) -> str:
    """A CSV field as PostgreSQL's COPY ... CSV writes it: NULL an empty field,
    the empty string `""` (both were empty), and a field quoted when it holds
    the delimiter, a quote, a line break, or is `\\.`."""
    if value is None:
        return ""
    text = cell(value)
    if text == "" or text == "\\." or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def rows_label(count: int) -> str:
    return f"({count} row)" if count == 1 else f"({count} rows)"


def mark_error(error: ApiError, source: Source | None) -> list[str]:
    """`LINE n: <source line>` and a caret under the column, psql style."""
    if source is None or error.line is None:
        return []
    line, column = error.line, error.column or 1
    # Lines as the server counts them, by "\n" alone (splitlines() also cut at
    # U+2028, a form feed, ..., and showed a piece of another line).
    lines = [line.removesuffix("\r") for line in source.text.split("\n")]
    if not 1 <= line <= len(lines):
        return []
    text = lines[line - 1]
    start = max(0, column - 1 - _CONTEXT)
    shown = text[start:column - 1 + _CONTEXT]
    prefix = f"LINE {line}: " + ("..." if start else "")
    where = f"{source.name}:{line}:{column}" if source.name else None
    pad = "".join("\t" if ch == "\t" else " " for ch in shown[:max(0, column - 1 - start)])
    marked = [prefix + shown, " " * len(prefix) + pad + "^"]
    return ([f"at {where}"] if where else []) + marked


class Printer:
    """Prints results and errors in one output format."""

    def __init__(self, fmt: str = "table", out: TextIO | None = None,
                 err: TextIO | None = None, *, timing: bool = True) -> None:
        import sys

        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        self.format = fmt
        self.timing = timing
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.console = _console(self.out)
        self.err_console = _console(self.err)
        self._csv_blocks = 0

    def result(self, result: dict[str, Any], took_ms: float | None = None) -> None:
        """One statement's result in the chosen format."""
        if self.format == "json":
            self.out.write(jsontext.dumps(result) + "\n")  # the API's results[i], as sent
        elif self.format == "csv":
            self._csv(result)
        else:
            self._table(result, took_ms)
        self.out.flush()

    def error(self, error: ApiError, source: Source | None = None) -> None:
        """`ERROR CODE: message`, then the statement's line with a caret at the position."""
        head = Text()
        head.append(f"ERROR {visible(str(error.code))}:", style="bold red")
        head.append(f" {visible(str(error.message))}")
        self.err_console.print(head, highlight=False)
        for line in mark_error(error, source):
            self.err_console.print(Text(visible(line), style="red" if line.endswith("^") else ""),
                                   highlight=False)

    def notice(self, text: str) -> None:
        """Console chatter (help, settings): stderr in json/csv so stdout stays data."""
        target = self.console if self.format == "table" else self.err_console
        target.print(Text(visible(text)), highlight=False)

    def _table(self, result: dict[str, Any], took_ms: float | None) -> None:
        columns = [str(c) for c in result.get("columns") or []]
        rows = result.get("rows") or []
        footer: list[str] = []
        if columns:
            types = {s.get("name"): str(s.get("type") or "") for s in result.get("schema") or []}
            right = [bool(_NUMERIC.match(types.get(name, ""))) for name in columns]
            if self.console.is_terminal:
                cut = self._rich_table(columns, right, rows)
            else:
                cut = self._plain_table(columns, right, rows)
            footer.append(rows_label(len(rows)))
            if cut:
                footer.append(f"{cut} {'value' if cut == 1 else 'values'} cut at {CELL_LIMIT:,} "
                              "characters (--format csv or json shows them whole)")
        if result.get("message"):
            footer.insert(0, visible(str(result["message"])))
        elif not columns:
            footer.append("OK")
        if self.timing and took_ms is not None:
            footer.append(f"Time: {took_ms:.1f} ms")
        self.console.print(Text("  ".join(footer), style="dim" if columns else ""),
                           highlight=False)

    def _rich_table(self, columns: list[str], right: list[bool],
                    rows: list[dict[str, Any]]) -> int:
        """On a terminal: rich's table at the terminal's width. Returns the cells cut."""
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False,
                      show_edge=False, highlight=False)
        for name, numeric in zip(columns, right, strict=True):
            # a Text header: a str is read as markup ('[link=…]', '[/]' raised)
            table.add_column(Text(shown(name)[0]), justify="right" if numeric else "left",
                             overflow="fold")
        cut = 0
        for row in rows:
            cells = [shown(row.get(name)) for name in columns]
            cut += sum(c for _, c in cells)
            table.add_row(*(Text("NULL", style="dim italic") if row.get(name) is None
                            else Text(text) for name, (text, _) in zip(columns, cells,
                                                                       strict=True)))
        self.console.print(table)
        return cut

    def _plain_table(self, columns: list[str], right: list[bool],
                     rows: list[dict[str, Any]]) -> int:
        """Piped: at its natural width (never folded), no trailing blanks, each
        line written as it is made (a cell is at most CELL_LIMIT characters, so
        one long value pads every row by that much at most, never by its size)."""
        heads = [shown(name)[0] for name in columns]
        widths = [cell_len(h) for h in heads]
        cut = 0
        for row in rows:
            for i, name in enumerate(columns):
                text, was_cut = shown(row.get(name))
                widths[i] = max(widths[i], cell_len(text))
                cut += was_cut
        write = self.out.write

        def line(texts: list[str]) -> None:
            padded = [" " * (w - cell_len(t)) + t if r else t + " " * (w - cell_len(t))
                      for t, w, r in zip(texts, widths, right, strict=True)]
            write("   ".join(padded).rstrip() + "\n")

        line(heads)
        write("─" * (sum(widths) + 3 * (len(widths) - 1)) + "\n")
        for row in rows:
            line([shown(row.get(name))[0] for name in columns])
        return cut

    def _csv(self, result: dict[str, Any]) -> None:
        columns = [str(c) for c in result.get("columns") or []]
        if not columns:
            return
        if self._csv_blocks:
            self.out.write("\n")  # a blank line between the tables of several statements
        self._csv_blocks += 1
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in result.get("rows") or []:
            buf.write(",".join(csv_cell(row.get(name)) for name in columns) + "\n")
        self.out.write(buf.getvalue())
        if result.get("truncated"):  # a CSV has no room to say so: stderr does
            self.err_console.print(Text(f"WARNING: {visible(str(result.get('message')))}",
                                        style="bold yellow"), highlight=False)


def shown(value: Any) -> tuple[str, bool]:
    """A table's cell or header: `one_line` of the value, cut to CELL_LIMIT
    characters with a `…`; and whether it was cut."""
    text = cell(value)
    if len(text) <= CELL_LIMIT:
        text = one_line(text)
        if len(text) <= CELL_LIMIT:
            return text, False
    return one_line(text[:CELL_LIMIT])[:CELL_LIMIT] + "…", True


def _console(stream: TextIO) -> Console:
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    if is_tty:
        return Console(file=stream, highlight=False, soft_wrap=False)
    return Console(file=stream, highlight=False, width=_WIDE, color_system=None,
                   soft_wrap=False)
