"""Where a statement's text holds a secret: the value of an
`encryption_passphrase` option, however it is written (a string literal, or
unquoted or in double quotes, which is a PARSE_ERROR but still the secret;
a comment may stand between the name, the `=` and the value).
Used wherever a statement's text is kept outside the request: the server's
log lines and `cairn sql`'s history file."""

from __future__ import annotations

import re

_GAP = r"(?:\s|--[^\n\r]*|/\*.*?\*/)*"  # blanks and comments around the `=`
# The value: a string, a quoted name, a bare word, each followed by the next
# option or the end; anything else (E'…', $$…$$, ('…'), CAST('…' AS TEXT),
# 'a' || 'b', 'a' newline 'b': a PARSE_ERROR, still the secret) is hidden to
# the end of the text, rather than read in part.
_END = rf"(?={_GAP}(?:[,)]|$))"  # what may follow a value: the next option or the end
_SECRET = re.compile(rf"""(?is)(encryption_passphrase{_GAP}=?{_GAP})"""
                     rf"""('[^']*(?:''[^']*)*'{_END}|"(?:[^"]|"")*"{_END}|[A-Za-z0-9_]+{_END}|.*)""")


def hide_secrets(text: str, mask: str) -> str:
    """`text` with every secret option's value replaced by `mask`."""
    return _SECRET.sub(lambda m: m.group(1) + mask, text)
