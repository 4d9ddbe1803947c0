"""Text at the door: every string a client sends must be valid Unicode.

JSON lets a client send a lone surrogate (`"\\ud800"`): a valid escape that
decodes to a Python str no UTF-8 encoder, RocksDB record, Arrow array or
DuckDB string can hold. Such text is refused where it enters (400
INVALID_REQUEST), so nothing stored can make a later read fail. The HTTP API
checks the request's SQL, namespace and identity headers here; the PostgreSQL
front-end calls the same function on what it receives."""

from __future__ import annotations

from catalog.errors import InvalidRequest


def check_text(value: str, what: str) -> str:
    """`value` itself if it is valid Unicode (encodable as UTF-8), else
    INVALID_REQUEST naming `what` and where the bad character is."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = value.count("\n", 0, exc.start) + 1
        column = exc.start - (value.rfind("\n", 0, exc.start) + 1) + 1
        code = ord(value[exc.start])
        raise InvalidRequest(
            f"{what} is not valid Unicode: U+{code:04X} (a lone surrogate) at line {line}, "
            f"column {column}; send UTF-8 text"
        ) from None
    return value


def check_header(value: str | None, name: str) -> str | None:
    """An HTTP header value: aiohttp decodes header bytes that are not UTF-8
    with surrogate escapes, so they show up here as lone surrogates too."""
    return None if value is None else check_text(value, f"header {name}")
