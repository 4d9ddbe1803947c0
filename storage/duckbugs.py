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
type: `to_json(...)` makes it one document. A column of a subquery or CTE
the query reads from (by name, by the alias's column list, through `*`) is
what that one's SELECT makes it, and a scalar subquery its one column:
`json_type(x) FROM (SELECT [j, NULL]::JSON[] AS x ...) s` reached DuckDB (a
role user's, in token mode) and failed it. A list whose making the tree does
not show (a struct's field, a column of a table function) still reaches
DuckDB: the DuckDB is replaced and the statement quarantined
(server/duckfaults.py)."""

from __future__ import annotations

from sqlglot import exp

from catalog.errors import InvalidArgument

from .names import fold, function_name

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
    "from_json_strict", "string_split", "str_split", "regexp_split_to_array", "string_to_array",
    "split", "regexp_split", "string_split_regex", "str_split_regex", "regexp_extract_all",
    "json_keys", "range", "generate_series", "map_extract", "element_at", "map_entries",
    "array_pop_back", "array_pop_front", "parse_path"})
# ... as sqlglot names them (a regress pass's: string_to_array is a Split).
_LIST_CALLS = (exp.ArrayConcat, exp.ArraySort, exp.ArrayFilter, exp.Transform, exp.Split,
               exp.RegexpSplit, exp.RegexpExtractAll, exp.JSONKeys, exp.GenerateSeries)
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


def _json_list(arg: object, depth: int = 0) -> bool:
    """Whether `arg` may be, as the tree shows, a list: one, or an expression
    that may answer one of the lists it holds (coalesce, CASE, if, an index of
    a list of lists, unnest, ...: a regress pass's). Not looked into: a
    subquery's answer (its column's type is not shown) and what makes one
    JSON document (`to_json(...)`, a cast to JSON). A column of a subquery
    or CTE the query reads from is what that one's SELECT makes it."""
    while isinstance(arg, exp.Paren):
        arg = arg.this
    if isinstance(arg, exp.JSONExtract) and isinstance(arg.expression, exp.Array):
        return True  # json_extract(j, ['a', 'b']), j -> ['a', 'b']
    if isinstance(arg, exp.Array | exp.ArrayAgg | exp.List | exp.Explode | exp.FromJson):
        return True  # [NULL::JSON], array_agg(j), list_value(...), unnest([[..]]), from_json
    if isinstance(arg, exp.Cast):
        if arg.to.this == exp.DataType.Type.ARRAY or arg.to.is_type("array"):
            return True
        return not arg.to.is_type("json") and _json_list(arg.this, depth)
    if isinstance(arg, exp.Bracket):
        if any(isinstance(e, exp.Slice) for e in arg.expressions):
            return _json_list(arg.this, depth)  # a slice of a list is a list
        base = arg.this
        while isinstance(base, exp.Paren):
            base = base.this
        if isinstance(base, exp.JSONExtract) or isinstance(base, exp.Cast) and _json_list(base, depth):
            return False  # one element of a JSON[]: one document (the advice)
        return _json_list(base, depth)  # an element of a list of lists may be a list
    if isinstance(arg, exp.Column):  # a subquery's or CTE's column: what it is made of
        made = _source_column(arg)
        return made is not None and depth < _MAX_DEPTH and _json_list(made, depth + 1)
    if isinstance(arg, exp.Subquery) and isinstance(arg.this, exp.Select) \
            and arg.this.expressions:  # a scalar subquery: its one column
        first = arg.this.expressions[0]
        return depth < _MAX_DEPTH and _json_list(
            first.this if isinstance(first, exp.Alias) else first, depth + 1)
    if isinstance(arg, exp.Subquery | exp.Select | exp.Literal):
        return False
    if isinstance(arg, exp.Func):
        name = function_name(arg)
        if name in _ONE_DOCUMENT or isinstance(arg, exp.JSONArray | exp.JSONObject):
            return False
        if name in _MAKES_LIST or isinstance(arg, _LIST_CALLS):
            return True
    return isinstance(arg, exp.Expression) and any(
        _json_list(child, depth) for child in arg.iter_expressions())


_MAX_DEPTH = 16  # columns followed through subqueries and CTEs (a recursive CTE loops)


def _source_column(col: exp.Column) -> object:
    """What the subquery or CTE that the query around `col` reads from (its
    FROM and JOINs) makes of the column `col` names; None if that is not a
    subquery's or CTE's column (a table's, a struct's field)."""
    select = col.find_ancestor(exp.Select)
    return None if select is None else _made_in(select, fold(col.name), fold(col.table), 0)


def _made_in(select: exp.Select, name: str, table: str, depth: int) -> object:
    """The expression that makes the column `name` (of the source `table`, or
    any) of what `select` reads from: its output column of that name (by
    position if the alias lists column names), or through a `*`, the column
    of that name of what that SELECT reads from."""
    for src in [select.args.get("from_"), *(select.args.get("joins") or [])]:
        node = src.this if isinstance(src, exp.From | exp.Join) else None
        if node is None or table and fold(node.alias_or_name) != table:
            continue
        alias = node.args.get("alias")
        if isinstance(node, exp.Subquery):
            body = node.this
        elif isinstance(node, exp.Table) and not node.db \
                and isinstance(cte := _cte(select, fold(node.name)), exp.CTE):
            body = cte.this
            if not (isinstance(alias, exp.TableAlias) and alias.columns):
                alias = cte.args.get("alias")  # WITH c(x) AS (...)
        else:
            continue
        while isinstance(body, exp.Subquery | exp.SetOperation):
            body = body.this  # a UNION's columns are named by its first SELECT
        if not isinstance(body, exp.Select):
            continue
        named = [fold(c.name) for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
        for i, out in enumerate(body.expressions):
            said = named[i] if i < len(named) else fold(out.alias_or_name)
            if said == name:
                return out.this if isinstance(out, exp.Alias) else out
        if depth < _MAX_DEPTH and not named and any(
                isinstance(out, exp.Star) or isinstance(out, exp.Column)
                and isinstance(out.this, exp.Star) for out in body.expressions):
            found = _made_in(body, name, "", depth + 1)
            if found is not None:
                return found
    return None


def _cte(node: exp.Expression, name: str) -> object:
    """The CTE `name` in scope at `node` (of the nearest WITH that has it)."""
    at: object = node
    while at is not None:
        with_ = at.args.get("with_") if isinstance(at, exp.Query) else None
        if isinstance(with_, exp.With):
            for cte in with_.expressions:
                if fold(cte.alias_or_name) == name:
                    return cte
        at = at.parent if isinstance(at, exp.Expression) else None
    return None
