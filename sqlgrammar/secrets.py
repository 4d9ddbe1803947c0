"""Where a statement's text holds a secret: the value of an
`encryption_passphrase` option, however it is written (a string literal, or
unquoted or in double quotes, which is a PARSE_ERROR but still the secret).
Used wherever a statement's text is kept outside the request: the server's
log lines and `cairn sql`'s history file."""

from __future__ import annotations

import re

_SECRET = re.compile(r"""(?i)(encryption_passphrase\s*=?\s*)"""
                     r"""('[^']*(?:''[^']*)*'?|"(?:[^"]|"")*"?|[^\s,)]+)""")


def hide_secrets(text: str, mask: str) -> str:
    """`text` with every secret option's value replaced by `mask`."""
    return _SECRET.sub(lambda m: m.group(1) + mask, text)
