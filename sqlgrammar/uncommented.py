"""A statement's text as sqlglot and DuckDB's parser read it: each run of
comments (the splitter's `Chunk.comments`) one space.

sqlglot's tokenizer holds the GIL over the whole text, keeps every comment
and writes them all back into the SQL DuckDB runs: `SELECT 1` with 2,000,000
`--` comments (8 MB) took 12-16 s and every other client's `SELECT 1` waited
up to 3 s. Nobody reads a comment, so the readers get the text without them,
and positions they report are mapped back to the statement's own text."""

from __future__ import annotations

import bisect


class Uncommented:
    """`text`: `original` with each span one space (an empty comment after a
    string). `position` and `line_column`
    turn a place in `text` into the same place in `original`."""

    def __init__(self, original: str, spans: tuple[tuple[int, int], ...]) -> None:
        self.original = original
        self._after: list[int] = []  # offset in `text` just past each span's space
        self._shift: list[int] = []  # characters removed up to and with that span
        if not spans:
            self.text = original
            return
        parts: list[str] = []
        prev = removed = 0
        for start, end in spans:
            # After a string, an empty comment: one space would let a string after
            # it continue the first ('a' newline /* c */ 'b' was read as 'ab')
            before = start - 1
            while before >= 0 and original[before].isspace():
                before -= 1
            # (a `--` comment is blank to the continuation rule, a `/* */` one is not)
            after_string = before >= 0 and original[before] == "'"
            mark = "/**/" if after_string and _holds_block(original, start, end) else " "
            parts += [original[prev:start], mark]
            removed += end - start - len(mark)
            self._after.append(end - removed)
            self._shift.append(removed)
            prev = end
        parts.append(original[prev:])
        self.text = "".join(parts)

    def offset(self, at: int) -> int:
        """Offset `at` in `text` -> the offset in `original` (a span's stand-in
        begins where it began)."""
        i = bisect.bisect_right(self._after, at) - 1
        return at + self._shift[i] if i >= 0 else at

    def line_column(self, at: int) -> tuple[int, int]:
        """Offset in `text` -> 1-based (line, column) in `original`."""
        where = self.offset(at)
        line = self.original.count("\n", 0, where) + 1
        return line, where - (self.original.rfind("\n", 0, where) + 1) + 1

    def position(self, line: int, column: int) -> tuple[int, int]:
        """1-based (line, column) in `text` -> the same in `original`."""
        if not self._after:
            return line, column
        start = len(self.text) - len(self.text.split("\n", max(line - 1, 0))[-1])
        return self.line_column(start + column - 1)


def _holds_block(text: str, start: int, end: int) -> bool:
    """Whether the run of comments text[start:end] holds a `/* */` one (a `--`
    comment's own text may hold `/*`: it is no block comment)."""
    at = start
    while at < end:
        if text.startswith("/*", at):
            return True
        if text.startswith("--", at):
            ends = [i for i in (text.find("\n", at, end), text.find("\r", at, end)) if i >= 0]
            at = min(ends) + 1 if ends else end
        else:
            at += 1
    return False
