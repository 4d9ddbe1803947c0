"""What the console prints: tables, JSON lines, CSV and marked errors, and when
Enter runs the buffer. Pure functions, no server."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import unicodedata
from typing import Any

import pytest

from console.client import ApiError, parse_reply
from console.jsontext import dumps, loads
from console.output import Printer, Source, mark_error
from console.prompt import is_complete

CELL_LIMIT = 1000  # characters of a table's cell (docs/console.md)
RESULT: dict[str, Any] = {
    "columns": ["id", "body", "meta", "ok"],
    "schema": [{"name": "id", "type": "BIGINT"}, {"name": "body", "type": "TEXT"},
               {"name": "meta", "type": "JSON"}, {"name": "ok", "type": "BOOLEAN"}],
    "rows": [{"id": 7, "body": "[b]not markup[/b]", "meta": {"a": [1, 2]}, "ok": True},
             {"id": 1234, "body": None, "meta": None, "ok": False}],
    "row_count": 2,
    "message": None,
}


def printed(fmt: str, *results: dict[str, Any], timing: bool = True) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    printer = Printer(fmt, out, err, timing=timing)
    for r in results:
        printer.result(r, 2.5)
    return out.getvalue(), err.getvalue()


def test_table_aligns_columns_and_counts_rows() -> None:
    out, _ = printed("table", RESULT)
    lines = out.splitlines()
    assert lines[0].split() == ["id", "body", "meta", "ok"]
    assert set(lines[1]) == {"─"}
    # numbers right-aligned under each other, text left-aligned, NULL spelled out
    assert lines[2].startswith("   7   [b]not markup[/b]   {\"a\":[1,2]}   true")
    assert lines[3].startswith("1234   NULL")
    assert lines[4] == "(2 rows)  Time: 2.5 ms"
    assert all(line == line.rstrip() for line in lines)


def test_table_messages_and_timing_switch() -> None:
    insert = {"columns": [], "rows": [], "row_count": 3, "message": "3 rows inserted"}
    out, _ = printed("table", insert, {"columns": [], "rows": [], "message": None}, timing=False)
    assert out.splitlines() == ["3 rows inserted", "OK"]
    one = {**RESULT, "rows": RESULT["rows"][:1]}
    assert printed("table", one)[0].splitlines()[-1] == "(1 row)  Time: 2.5 ms"


def test_json_is_one_result_object_per_line() -> None:
    insert = {"columns": [], "rows": [], "row_count": 1, "message": "1 row inserted"}
    out, _ = printed("json", RESULT, insert)
    first, second = (json.loads(line) for line in out.splitlines())
    assert first == RESULT
    assert second["message"] == "1 row inserted"


def test_csv_has_header_empty_nulls_and_blank_line_between_results() -> None:
    other = {"columns": ["n"], "rows": [{"n": "a,b"}], "schema": []}
    skipped = {"columns": [], "rows": [], "message": "Namespace 'x' created"}
    out, _ = printed("csv", RESULT, skipped, other)
    assert out == ('id,body,meta,ok\n7,[b]not markup[/b],"{""a"":[1,2]}",true\n1234,,,false\n'
                   '\nn\n"a,b"\n')


def test_error_marks_the_column_on_the_right_line() -> None:
    source = Source("SELECT 1;\nSELECT *\n\tFROM nope.t")
    err = ApiError("NOT_FOUND", "Namespace 'nope' does not exist", 2, 3, 7)
    assert mark_error(err, source) == ["LINE 3: \tFROM nope.t", "        \t     ^"]
    out, errs = io.StringIO(), io.StringIO()
    Printer("table", out, errs).error(err, source)
    assert errs.getvalue().splitlines()[0] == "ERROR NOT_FOUND: Namespace 'nope' does not exist"
    assert out.getvalue() == ""


def test_error_in_a_file_names_it_and_shortens_long_lines() -> None:
    text = "SELECT " + "x, " * 100 + "oops"
    err = ApiError("PARSE_ERROR", "unexpected", 1, 1, len(text) - 3)
    where, line, caret = mark_error(err, Source(text, "load.sql"))
    assert where == f"at load.sql:1:{len(text) - 3}"
    assert line.startswith("LINE 1: ...") and line.endswith("oops")
    assert caret.index("^") == line.index("oops")


def test_error_without_position_is_one_line() -> None:
    assert mark_error(ApiError("UNAUTHENTICATED", "no token"), Source("SELECT 1")) == []


@pytest.mark.parametrize(("text", "complete"), [
    ("SELECT 1;", True),
    ("SELECT 1", False),
    ("SELECT 1\n  FROM t\n;", True),
    ("SELECT ';'", False),
    ("SELECT 'it''s;", False),
    ("SELECT 1; -- done", True),
    ("SELECT 1 -- not yet;", False),
    ("SELECT 1 /* ; */", False),
    ("SELECT 1; SELECT 2", False),
    ("\\dt", True),
    ("  ", True),
    ("quit", True),
])
def test_enter_runs_only_a_finished_statement(text: str, complete: bool) -> None:
    assert is_complete(text) is complete


def test_reply_parsing_keeps_results_before_the_error() -> None:
    body = {"status": "error", "results": [RESULT], "took": 1,
            "error": {"code": "PARSE_ERROR", "message": "bad", "statement": 2, "line": 1,
                      "column": 9}}
    reply = parse_reply(json.dumps(body).encode(), 1.0)
    assert reply.results == [RESULT]
    assert reply.error == ApiError("PARSE_ERROR", "bad", 2, 1, 9)
    broken = parse_reply(b"<html>502 Bad Gateway</html>", 1.0)
    assert broken.error is not None and broken.error.code == "INVALID_RESPONSE"


def test_control_characters_are_shown_never_sent_to_the_terminal() -> None:
    """A value, a column name, a message or an error is text any user of the
    server may have written: ESC sequences in it would move the cursor over
    earlier lines, clear the screen or set the clipboard (OSC 52). Rich let ESC
    through; the table and the errors show it as an escape."""
    evil = "ok\x1b[1A\x1b[2K\x1b]52;c;ZXZpbA==\x1b\\\x9b2J\u202edone\x07"
    result = {"columns": ["v", f"c{evil}"], "schema": [], "rows": [{"v": evil, f"c{evil}": 1}],
              "row_count": 1, "message": f"note {evil}"}
    out, _ = printed("table", result)
    assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out and "\x07" not in out
    assert "ok\\x1b[1A\\x1b[2K\\x1b]52;c;ZXZpbA==\\x1b\\\\x9b2J\\u202edone\\x07" in out
    assert "note ok\\x1b[1A" in out
    err = io.StringIO()
    Printer("table", io.StringIO(), err).error(ApiError("NOT_FOUND", f"table '{evil}' missing"))
    assert "\x1b" not in err.getvalue() and "table 'ok\\x1b[1A" in err.getvalue()
    # Tabs and newlines stay what they are; JSON lines escape on their own.
    out, _ = printed("table", {**result, "rows": [{"v": "a\tb\nc", f"c{evil}": 1}]})
    assert "\\x09" not in out and "\\x0a" not in out and "c" in out
    out, _ = printed("json", result)
    assert "\x1b" not in out and json.loads(out.splitlines()[0])["rows"][0]["v"] == evil


def test_column_names_are_never_markup() -> None:
    """A PIVOT makes values column names: a role-user's `[link=…]` became a
    terminal hyperlink in the header, and `[/]` ended `cairn sql` with a
    MarkupError traceback."""
    names = ["[link=https://evil.example/]totals", "[b]x[/b]", "[/]"]
    result = {"columns": names, "schema": [], "rows": [{n: 1 for n in names}], "row_count": 1}
    out, _ = printed("table", result)
    assert out.splitlines()[0].split() == names


def test_a_line_break_in_a_value_cannot_print_a_row() -> None:
    rows = [{"u": "alice", "r": "user"}, {"u": "staff\nmallory  admin", "r": "user"},
            {"u": "p\u2028q", "r": "user"}]
    out, _ = printed("table", {"columns": ["u", "r"], "schema": [], "rows": rows},
                     timing=False)
    lines = out.splitlines()
    assert len(lines) == 2 + 3 + 1 and lines[-1] == "(3 rows)"
    assert lines[3].startswith("staff\\nmallory  admin") and lines[4].startswith("p\\u2028q")


def test_a_long_value_is_one_line_when_piped() -> None:
    long = "x" * CELL_LIMIT  # twelve of them: a row wider than any console
    names = [f"v{i}" for i in range(12)]
    out, _ = printed("table", {"columns": names, "schema": [], "rows": [{n: long for n in names}]},
                     timing=False)
    assert len(out.splitlines()) == 4 and "   ".join([long] * 12) in out


def test_csv_tells_null_from_the_empty_string() -> None:
    result = {"columns": ["k", "v", "w"], "schema": [],
              "rows": [{"k": 1, "v": None, "w": True}, {"k": 2, "v": "", "w": "\\."},
                       {"k": 3, "v": 'a "q", b', "w": "x\ny"}]}
    out, _ = printed("csv", result)
    assert out == 'k,v,w\n1,,true\n2,"","\\."\n3,"a ""q"", b","x\ny"\n'


def test_an_error_line_is_counted_by_newlines_alone() -> None:
    """The server counts lines by "\\n": splitlines() also cut at U+2028 and
    a form feed, and showed a piece of line 1 as line 2."""
    source = Source("SELECT 'a\u2028b' -- c\fd\nSELECT nope AS a;")
    err = ApiError("NOT_FOUND", "no column nope", 1, 2, 8)
    assert mark_error(err, source) == ["LINE 2: SELECT nope AS a;", "               ^"]


class Terminal(io.StringIO):
    """A stream rich takes for a terminal (it folds and expands there)."""

    def isatty(self) -> bool:
        return True


def _hidden_characters() -> list[str]:
    """Every character the table must show as an escape, found by its Unicode
    category (no list of known ones), plus the Default_Ignorable code points."""
    found = [chr(c) for c in range(sys.maxunicode + 1)
             if unicodedata.category(chr(c)) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    return found + ["\u3164", "\u115f", "\ufe0f", "\u034f", "\U000e0100", "\U000e0080"]


@pytest.mark.parametrize("stream", [io.StringIO, Terminal])
def test_a_tab_or_any_invisible_character_is_an_escape(stream: type[io.StringIO]) -> None:
    """A TAB was printed as it is: rich expanded it and folded the cell, so a
    role user's 'carol<TAB>eve' printed as two lines, the second a fake row
    'eve'. U+061C, U+200E/F (bidi controls) and U+200B, U+2060, U+FEFF were
    raw too: 'adm<U+200B>in' read 'admin'. Values and column names."""
    hidden = ["\t", *_hidden_characters()]
    rows = [{"who\tcol\u200b": f"a{ch}b"} for ch in hidden]
    out = stream()
    Printer("table", out, io.StringIO(), timing=False).result(
        {"columns": ["who\tcol\u200b"], "schema": [], "rows": rows})
    text = re.sub("\x1b\\[[0-9;]*m", "", out.getvalue())  # the terminal's bold and grey
    lines = text.splitlines()
    assert lines[0] == "who\\tcol\\u200b"
    assert len(lines) == 2 + len(rows) + 1 and lines[-1] == f"({len(rows)} rows)"
    escape = re.compile(r"a\\([tn]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})b *")
    for ch, line in zip(hidden, lines[2:-1], strict=True):
        assert escape.fullmatch(line), (ch, line)
    assert set(text) & set(hidden) == {"\n"}  # only the lines' own ends
    # the repro's own values; a tab in an error message stays a tab (rich expands it)
    out = io.StringIO()
    names = [{"name": "carol\teve"}, {"name": "adm\u200bin"}, {"name": "\u061c12 34"}]
    Printer("table", out, timing=False).result({"columns": ["name"], "schema": [], "rows": names})
    assert out.getvalue().splitlines()[2:] == ["carol\\teve", "adm\\u200bin", "\\u061c12 34",
                                               "(3 rows)"]
    err = io.StringIO()
    Printer("table", io.StringIO(), err).error(ApiError("X", "a\tb\u200ec"))
    assert re.fullmatch(r"ERROR X: a +b\\u200ec\n", err.getvalue())


def test_json_values_keep_their_text_and_every_key() -> None:
    """What the server sent is what each format prints: a key given twice (the
    first is the one SQL reads), a number's digits, -0, 1E2; a JSON value
    nested deeper than Python's recursion limit is written back too."""
    deep: list[Any] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    value = ('{"role":"admin","n":[12345678901234567890.123456789,-0,1E2,0.5,7],'
             '"role":"user","in":{"k":1,"k":2}}')
    answer = ('{"status":"success","results":[{"columns":["j","d"],"schema":[{"name":"j",'
              '"type":"JSON"},{"name":"d","type":"DOUBLE"}],"rows":[{"j":' + value +
              ',"d":1e20}],"row_count":1,"message":null}],"took":1.5}')
    reply = parse_reply(answer.encode(), 1.0)
    assert reply.ok and reply.results[0]["rows"][0]["j"]["role"] == "admin"
    out, _ = printed("json", *reply.results)
    assert out == answer[answer.index("[{") + 1:answer.index(',"took"') - 1] + "\n"
    out, _ = printed("table", *reply.results, timing=False)
    assert out.splitlines()[2].split() == [value, "1e20"]
    out, _ = printed("csv", *reply.results)
    assert list(csv.reader(io.StringIO(out))) == [["j", "d"], [value, "1e20"]]
    assert dumps(deep) == "[" * 5001 + "]" * 5001
    assert dumps(loads("[" * 900 + "]" * 900)) == "[" * 900 + "]" * 900


def test_a_huge_value_is_cut_and_the_piped_table_streams() -> None:
    """One role user's 1 MB value in the first column padded every row of a
    piped table to 1 MB, the whole table built in memory first: 101 rows wrote
    105 MB and held 783 MB. A cell is cut at CELL_LIMIT characters with a "…"
    (and the footer says so); the rows are written a line at a time."""
    class Lines(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.largest = 0

        def write(self, text: str) -> int:
            self.largest = max(self.largest, len(text))
            return super().write(text)

    huge = "x" * 1_000_000
    rows = [{"note": f"n{i}", "id": i} for i in range(100)] + [{"note": huge, "id": 999}]
    result = {"columns": ["note", "id" + "y" * 5000], "schema": [], "rows": rows}
    result["rows"] = [{"note": r["note"], "id" + "y" * 5000: r["id"]} for r in rows]
    out = Lines()
    Printer("table", out, timing=False).result(result)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 + 101 + 1
    assert lines[0] == "note" + " " * (CELL_LIMIT + 1 - 4) + "   id" + "y" * (CELL_LIMIT - 2) + "…"
    assert lines[-2] == "x" * CELL_LIMIT + "…   999"
    assert lines[-1] == "(101 rows)  1 value cut at 1,000 characters (--format csv or json " \
                        "shows them whole)"
    assert len(out.getvalue()) < 250 * (CELL_LIMIT + 10)  # not 101 MB
    assert out.largest < 3 * (CELL_LIMIT + 10)  # a line at a time, not the table at once
    # on a terminal too, and csv and json keep the value whole
    term = Terminal()
    Printer("table", term, timing=False).result(result)
    assert huge not in term.getvalue() and len(term.getvalue()) < 100_000
    assert huge in printed("csv", result)[0] and huge in printed("json", result)[0]
