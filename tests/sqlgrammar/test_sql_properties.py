"""Hypothesis: any statement built from the dataclasses prints and parses back equal."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgrammar import KEYWORDS, ast, parse_one, parse_script, to_sql
from sqlgrammar.transformer import TYPE_ALIASES

# Names: ordinary ones up to the 64-character limit, plus every keyword (the
# printer must quote those) and a few that look special.
names = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,63}", fullmatch=True),
    st.sampled_from(sorted(k.lower() for k in KEYWORDS)),
    st.sampled_from(["system", "select", "int", "e", "_", "n" * 64]),
)
values: st.SearchStrategy[ast.OptionValue] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.sampled_from(["", "'", "''", ";", "--", "/*", "*/", '"', "a\nb", "$$"]),
)
# A DEFAULT's number with a point or exponent reads back as the exact Decimal.
default_values: st.SearchStrategy[ast.DefaultValue] = st.one_of(
    values.filter(lambda v: not isinstance(v, float)),
    st.decimals(min_value=-10**300, max_value=10**300, allow_nan=False, allow_infinity=False),
)
options = st.lists(st.tuples(names, values), max_size=4, unique_by=lambda kv: kv[0]).map(tuple)
table_refs = st.builds(ast.TableRef, st.none() | names, names)
strings = st.text()
counts = st.integers(min_value=0, max_value=10**12)

plain_types = st.sampled_from(sorted({ast.TypeSpec(n) for n in TYPE_ALIASES.values()}, key=str))
decimal_types = st.integers(1, 38).flatmap(
    lambda p: st.integers(0, p).map(lambda s: ast.TypeSpec("DECIMAL", (p, s))))
text_types = st.integers(1, 10**9).map(lambda n: ast.TypeSpec("TEXT", (n,)))
types = st.one_of(plain_types, decimal_types, text_types)


@st.composite
def column_defs(draw: Any, name: st.SearchStrategy[str] = names,
                allow_key: bool = True) -> ast.ColumnDef:
    has_default = draw(st.booleans())
    return ast.ColumnDef(
        name=draw(name),
        type=draw(types),
        not_null=draw(st.booleans()),
        primary_key=allow_key and draw(st.booleans()),
        has_default=has_default,
        default=draw(default_values) if has_default else None,
    )


@st.composite
def create_tables(draw: Any) -> ast.CreateTable:
    cols = draw(st.lists(column_defs(allow_key=False), min_size=1, max_size=6,
                         unique_by=lambda c: c.name))
    key = draw(st.none() | st.integers(0, len(cols) - 1))
    if key is not None:
        cols[key] = ast.ColumnDef(**{**cols[key].__dict__, "primary_key": True})
    return ast.CreateTable(
        draw(table_refs), tuple(cols), draw(st.sampled_from(["shared", "user", "stream"])),
        draw(st.booleans()), draw(options))


statements: st.SearchStrategy[ast.Statement] = st.one_of(
    st.builds(ast.CreateNamespace, names, st.booleans()),
    st.builds(ast.DropNamespace, names, st.booleans(), st.booleans()),
    st.just(ast.ShowNamespaces()),
    create_tables(),
    st.builds(ast.DropTable, table_refs, st.booleans()),
    st.builds(ast.AlterTableAddColumn, table_refs, column_defs(allow_key=False), st.booleans(),
              st.booleans()),
    st.builds(ast.AlterTableDropColumn, table_refs, names, st.booleans(), st.booleans()),
    st.builds(ast.ShowTables, st.none() | names),
    st.builds(ast.DescribeTable, table_refs, st.booleans()),
    st.builds(ast.FlushTable, table_refs),
    st.builds(ast.FlushAllTables, names),
    st.builds(ast.BackupDatabase, names, strings, st.booleans(), options),
    st.builds(ast.RestoreDatabase, names, strings, st.none() | names, st.booleans(), options),
    st.builds(ast.BackupDatabases, st.lists(names, min_size=2, max_size=4).map(tuple), strings,
              st.just(False), options),
    st.builds(ast.BackupDatabases, st.just(()), strings, st.just(True), options),
    st.builds(ast.RestoreAll, strings, options),
    st.builds(ast.BackupTables, st.lists(table_refs, min_size=1, max_size=3).map(tuple), strings,
              options),
    st.builds(ast.RestoreTable, table_refs, strings, st.none() | table_refs, options),
    st.builds(ast.ShowBackups, st.none() | names, st.none() | strings, st.none() | counts),
    st.builds(ast.ShowBackup, strings, st.none() | strings, options),
    st.builds(ast.VerifyBackup, strings, st.none() | strings, options),
    st.builds(ast.DropBackup, strings, st.none() | strings, st.booleans()),
    st.builds(ast.AttachBackups, strings),
    st.just(ast.ShowJobs()),
    st.builds(ast.ShowJob, strings),
    st.builds(ast.KillJob, strings),
    st.builds(ast.PauseJob, strings),
    st.builds(ast.ResumeJob, strings),
    st.builds(ast.CreateSchedule, names, names, strings, strings,
              st.none() | counts.filter(bool), st.booleans(), options),
    st.builds(ast.CreateSchedule, names, names, strings, st.none(),
              st.none() | counts.filter(bool), st.booleans(), options, strings),
    st.just(ast.ShowSchedules()),
    st.builds(ast.DropSchedule, names, st.booleans()),
    st.builds(ast.Explain, st.sampled_from(["SELECT 1", "SELECT * FROM app.t WHERE id = 2",
                                            "SUMMARIZE app.t", "PIVOT app.t ON k USING sum(v)"])
              .map(parse_one), st.booleans()),
    st.builds(ast.StartArchiving, names, strings, options),
    st.builds(ast.StopArchiving, names),
    st.just(ast.ShowArchives()),
    st.builds(ast.ShowRestorePoints, names, strings),
    st.builds(ast.VerifyArchive, names, strings, options),
)


@settings(max_examples=400, deadline=None)
@given(statements)
def test_print_then_parse_is_identity(statement: ast.Statement) -> None:
    sql = to_sql(statement)
    assert parse_one(sql) == statement
    [parsed] = parse_script(sql)
    assert parsed.text == sql


@settings(max_examples=100, deadline=None)
@given(st.lists(statements, min_size=1, max_size=5), st.sampled_from([";", ";\n", " ;\n\n  "]))
def test_scripts_split_back_into_their_statements(
    stmts: list[ast.Statement], separator: str
) -> None:
    texts = [to_sql(s) for s in stmts]
    request = separator.join(texts)
    parsed = parse_script(request)
    assert [p.statement for p in parsed] == stmts
    assert [p.text for p in parsed] == texts
    offset = 0
    for p, text in zip(parsed, texts, strict=True):
        before = request[:offset]
        assert (p.line, p.column) == (before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)
        offset += len(text) + len(separator)
