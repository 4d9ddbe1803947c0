"""Pure parsing for Cairn: SQL text -> typed statement dataclasses (see `ast`).

Imports no other Cairn package and never touches storage.
"""

from . import ast
from .errors import EmptySql, SqlInvalid, SqlSyntaxError
from .parser import KEYWORDS, iter_script, parse_one, parse_script
from .printer import to_sql

__all__ = [
    "KEYWORDS",
    "EmptySql",
    "SqlInvalid",
    "SqlSyntaxError",
    "ast",
    "iter_script",
    "parse_one",
    "parse_script",
    "to_sql",
]
