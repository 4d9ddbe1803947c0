"""storage/spelling.py's functions that storage/types.py calls, with spelling
(and DuckDB and sqlglot with it: ~0.2 s of CPU) imported at the first call,
not at import. The archive helper process (storage/archive/helper.py) imports
storage.types, through storage.buffer, for its segment bodies' blocks and
never calls these: its start took ~0.5 s of CPU, now ~0.3 s."""

from __future__ import annotations

import decimal
from types import ModuleType
from typing import Any

_spelling: ModuleType | None = None


def _real() -> Any:
    global _spelling
    if _spelling is None:
        from . import spelling
        _spelling = spelling
    return _spelling


def cast_reads(text: str) -> bool:
    return _real().cast_reads(text)  # type: ignore[no-any-return]


def decimal_cast(text: str, precision: int, scale: int) -> decimal.Decimal:
    return _real().decimal_cast(text, precision, scale)  # type: ignore[no-any-return]


def json_of(value: Any) -> str:
    return _real().json_of(value)  # type: ignore[no-any-return]


def kept_decimal(text: str) -> decimal.Decimal | str:
    return _real().kept_decimal(text)  # type: ignore[no-any-return]


def number_sql(value: decimal.Decimal | float) -> str:
    return _real().number_sql(value)  # type: ignore[no-any-return]


def spelled(sql: str, to: str) -> str:
    return _real().spelled(sql, to)  # type: ignore[no-any-return]
