"""How the console prints: aligned tables (rich), JSON lines or CSV, and errors.

Results go to stdout and errors to stderr, so `cairn sql -c ... --format csv > f`
gives a clean file and a failing script still says why on the terminal."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .client import ApiError

FORMATS = ("table", "json", "csv")
_NUMERIC = re.compile(r"^(SMALLINT|INT|INTEGER|BIGINT|REAL|FLOAT|DOUBLE|DECIMAL|HUGEINT|"
                      r"UBIGINT|UINTEGER|TINYINT|NUMERIC)\b", re.IGNORECASE)
_WIDE = 10_000  # width for a non-terminal: tables at their natural width, never wrapped
# Control characters (C0 but tab and newline, DEL, C1) and the bidirectional
# overrides: in a value, a column name or an error message, any user of the
# server may have written them, and printed raw to a terminal ESC sequences
# move the cursor over earlier lines, clear the screen, set the title or the
# clipboard (OSC 52). Rich drops BEL, CR and BS but lets ESC through.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# In a table's cell or header a line break would start a line that reads as a
# row of its own ('staff\nmallory  admin' printed a fourth "row" under a
# footer of 3): shown as an escape there, as every other control is.
_BREAK = re.compile("[\n\u2028\u2029]")
_CONTEXT = 60  # characters of a long source line shown either side of an error


@dataclass(frozen=True)
class Source:
    """What the user typed (or the file): errors' line and column point into it."""

    text: str
    name: str | None = None  # a file name, shown in the error


def cell(value: Any) -> str:
    """A value as the table shows it: JSON values compact, booleans lower case."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def visible(text: str) -> str:
    """`text` with every control character written as an escape (`\\x1b`),
    for the terminal: what a value says, never what it would do there."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """`visible(text)` with its line breaks as escapes too (`\\n`): a table's
    cell or header, where a break would print a line that reads as a row."""
    return _BREAK.sub(lambda m: "\\n" if m.group() == "\n" else _escape(m), visible(text))


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
            self.out.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
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
            table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False,
                          show_edge=False, highlight=False)
            for name in columns:
                numeric = bool(_NUMERIC.match(types.get(name, "")))
                # a Text header: a str is read as markup ('[link=…]', '[/]' raised)
                table.add_column(Text(one_line(name)), justify="right" if numeric else "left",
                                 overflow="fold")
            for row in rows:
                table.add_row(*(_styled(row.get(name)) for name in columns))
            self._print_table(table)
            footer.append(rows_label(len(rows)))
        if result.get("message"):
            footer.insert(0, visible(str(result["message"])))
        elif not columns:
            footer.append("OK")
        if self.timing and took_ms is not None:
            footer.append(f"Time: {took_ms:.1f} ms")
        self.console.print(Text("  ".join(footer), style="dim" if columns else ""),
                           highlight=False)

    def _print_table(self, table: Table) -> None:
        if self.console.is_terminal:
            self.console.print(table)
            return
        # natural width (never folded: a value past _WIDE widens the console),
        # no trailing blanks
        widest = sum(max([len(str(col.header)), *(len(str(getattr(c, "plain", c)))
                                                      for c in col.cells)]) + 3
                     for col in table.columns)
        self.console.width = max(_WIDE, widest)
        with self.console.capture() as captured:
            self.console.print(table)
        self.out.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))

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


def _styled(value: Any) -> Text:
    """A cell as rich Text, never markup, so `[b]` in data prints as typed."""
    return Text("NULL", style="dim italic") if value is None else Text(one_line(cell(value)))


def _console(stream: TextIO) -> Console:
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    if is_tty:
        return Console(file=stream, highlight=False, soft_wrap=False)
    return Console(file=stream, highlight=False, width=_WIDE, color_system=None,
                   soft_wrap=False)
