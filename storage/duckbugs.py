"""Statements known to make DuckDB fail internally, refused before it runs.

An INTERNAL error leaves DuckDB's whole database invalid; the engine then
replaces it (storage/duckrestart.py), which is the general cure, but the
statement still fails and every query running beside it on that database
fails too. So the forms known to do it, and cheap to see in the tree, are
refused with a message that says how to write them.

DuckDB 2.0: a JSON function reading a JSON[] list (what `json_extract(j,
['a', 'b'])` or `j -> ['a', 'b']` gives: one value per path) casts the list
to JSON text as `[2, NULL]`, which is not JSON, and fails on it internally:
`json_extract(json_extract(j, ['a', 'b']), 1)`, `j -> ['a', 'b'] -> 1`,
`json_type(x::JSON[])`. A list of values whose type the tree does not show
(a column of a subquery) is not seen here; that one is restarted after."""

from __future__ import annotations

from sqlglot import exp

from catalog.errors import InvalidArgument

# The functions that read their first argument as one JSON document.
_READS_JSON = ("json_extract", "json_type", "json_array_length", "json_keys", "json_contains",
               "json_exists", "json_value", "json_structure", "json_transform", "json_pretty")


def check(node: exp.Func, name: str) -> None:
    """INVALID_ARGUMENT if `node` (named `name`) is a JSON function given a
    JSON[] list that the tree shows."""
    if not name.startswith(_READS_JSON):
        return
    arg = (node.expressions[0] if node.expressions else None) \
        if isinstance(node, exp.Anonymous) else node.this
    while isinstance(arg, exp.Paren):
        arg = arg.this
    if _json_list(arg):
        raise InvalidArgument(
            f"{name}() cannot read a JSON[] list (what a JSON path list such as ['a', 'b'] "
            "gives; DuckDB fails internally on it): pick one element first, as in "
            "json_extract(j, ['a', 'b'])[1], or give each path its own call, or make the list one "
            "JSON value with to_json(json_extract(j, ['a', 'b']))")


def _json_list(arg: object) -> bool:
    if isinstance(arg, exp.JSONExtract) and isinstance(arg.expression, exp.Array):
        return True  # json_extract(j, ['a', 'b']), j -> ['a', 'b']
    if isinstance(arg, exp.Cast):
        to = arg.to
        return (to.this == exp.DataType.Type.ARRAY and len(to.expressions) == 1
                and to.expressions[0].this == exp.DataType.Type.JSON)
    return False
