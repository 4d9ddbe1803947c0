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
`json_type(x::JSON[])`, `json_type([NULL::JSON])`, `json_type(array_agg(j))`,
`json_type((j -> ['a', 'b'])[1:2])`. So a list the tree shows (a list
literal, a call that makes a list, a slice of one, a JSON path list, a cast
to a list) is refused as such a function's document, whatever its element
type: `to_json(...)` makes it one document. A list whose type the tree does
not show (a column of a subquery) is not seen here; that one is restarted
after."""

from __future__ import annotations

from sqlglot import exp

from catalog.errors import InvalidArgument

from .names import function_name

# The functions that read their first argument as one JSON document.
_READS_JSON = ("json_extract", "json_type", "json_array_length", "json_keys", "json_contains",
               "json_exists", "json_value", "json_structure", "json_transform", "json_pretty")
# ... and those that read every argument so (a regress pass's json_merge_patch).
_READS_ALL = ("json_merge_patch",)
# Calls that make a list of their arguments' values (list_*/array_* that
# answer one element or a scalar are not among them).
_MAKES_LIST = frozenset({
    "array_agg", "list", "list_value", "list_pack", "array_value", "list_concat", "list_cat",
    "array_concat", "array_cat", "list_append", "array_append", "array_push_back",
    "list_prepend", "array_prepend", "array_push_front", "list_slice", "array_slice",
    "list_filter", "array_filter", "filter", "list_sort", "array_sort", "list_reverse_sort",
    "array_reverse_sort", "list_reverse", "array_reverse", "list_distinct", "array_distinct",
    "list_transform", "array_transform", "apply", "list_apply", "array_apply", "flatten",
    "list_resize", "array_resize", "list_select", "array_select", "list_where", "array_where",
    "list_intersect", "array_intersect", "list_zip", "array_zip", "list_grade_up",
    "array_grade_up", "map_keys", "map_values", "json_transform", "json_transform_strict",
    "from_json_strict", "string_split", "str_split", "regexp_split_to_array"})
# Calls that make one JSON document of whatever they are given.
_ONE_DOCUMENT = frozenset({"to_json", "json_quote", "array_to_json", "row_to_json", "json"})


def check(node: exp.Func, name: str) -> None:
    """INVALID_ARGUMENT if `node` (named `name`) is a JSON function given a
    JSON[] list that the tree shows."""
    if name.startswith(_READS_ALL):
        args = list(node.expressions) if isinstance(node, exp.Anonymous) else \
            [node.this, *node.expressions]
    elif name.startswith(_READS_JSON):
        args = [(node.expressions[0] if node.expressions else None)
                if isinstance(node, exp.Anonymous) else node.this]
    else:
        return
    if any(_json_list(arg) for arg in args):
        raise InvalidArgument(
            f"{name}() cannot read a JSON[] list (what a JSON path list such as ['a', 'b'] "
            "gives; DuckDB fails internally on it): pick one element first, as in "
            "json_extract(j, ['a', 'b'])[1], or give each path its own call, or make the list one "
            "JSON value with to_json(json_extract(j, ['a', 'b']))")


def _json_list(arg: object) -> bool:
    """Whether `arg` may be, as the tree shows, a list: one, or an expression
    that may answer one of the lists it holds (coalesce, CASE, if, an index of
    a list of lists, unnest, ...: a regress pass's). Not looked into: a
    subquery (its column's type is not shown) and what makes one JSON
    document (`to_json(...)`, a cast to JSON)."""
    while isinstance(arg, exp.Paren):
        arg = arg.this
    if isinstance(arg, exp.JSONExtract) and isinstance(arg.expression, exp.Array):
        return True  # json_extract(j, ['a', 'b']), j -> ['a', 'b']
    if isinstance(arg, exp.Array | exp.ArrayAgg | exp.List | exp.Explode | exp.FromJson):
        return True  # [NULL::JSON], array_agg(j), list_value(...), unnest([[..]]), from_json
    if isinstance(arg, exp.Cast):
        if arg.to.this == exp.DataType.Type.ARRAY or arg.to.is_type("array"):
            return True
        return not arg.to.is_type("json") and _json_list(arg.this)
    if isinstance(arg, exp.Bracket):
        if any(isinstance(e, exp.Slice) for e in arg.expressions):
            return _json_list(arg.this)  # a slice of a list is a list
        base = arg.this
        while isinstance(base, exp.Paren):
            base = base.this
        if isinstance(base, exp.JSONExtract) or isinstance(base, exp.Cast) and _json_list(base):
            return False  # one element of a JSON[]: one document (the advice)
        return _json_list(base)  # an element of a list of lists may be a list
    if isinstance(arg, exp.Subquery | exp.Select | exp.Column | exp.Literal):
        return False
    if isinstance(arg, exp.Func):
        name = function_name(arg)
        if name in _ONE_DOCUMENT or isinstance(arg, exp.JSONArray | exp.JSONObject):
            return False
        if name in _MAKES_LIST or isinstance(arg, exp.ArrayConcat | exp.ArraySort
                                              | exp.ArrayFilter | exp.Transform):
            return True
    return isinstance(arg, exp.Expression) and any(
        _json_list(child) for child in arg.iter_expressions())
