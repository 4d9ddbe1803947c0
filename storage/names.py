"""Names folded to lower case as DuckDB folds them: A-Z only.

`str.lower()` is Unicode's: U+212A KELVIN SIGN became ASCII 'k' (and U+0130
'İ' became 'i' and a combining dot), so `DELETE FROM app.\u212a` deleted from
app.k, `INSERT INTO t (\u212a)` wrote column k and a search_path of '\u212aELVIN'
meant namespace kelvin, while CREATE refused the name and DuckDB's own
`SELECT \u212a` found no column. Folded here, a name with any other letter keeps
it, and fails the name rule ([A-Za-z_][A-Za-z0-9_]*) where one is checked.
"""

from __future__ import annotations

import string

from sqlglot import exp

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(name: str) -> str:
    """`name` with A-Z made a-z and every other character as written."""
    return name.lower() if name.isascii() else name.translate(_ASCII_LOWER)


def function_name(node: exp.Func) -> str:
    """A call's name as the checks compare it: as written for a call sqlglot
    does not know, else sqlglot's own name of it; lower case."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()
