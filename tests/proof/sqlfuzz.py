"""Hypothesis strategies for SQL fuzzing: valid statements of Cairn's grammar
(the dataclass strategies of tests/sqlgrammar, plus ordinary SQL over a small
vocabulary so statements hit real namespaces and tables), and mutations of
their text: dropped, doubled and swapped tokens, swapped keywords, huge
identifiers, odd Unicode, NULs and control characters, cut-off text."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

from sqlgrammar import KEYWORDS, ast, to_sql
from tests.sqlgrammar.test_sql_properties import statements as dataclass_statements

# A small world, so generated statements often name things that exist.
NAMESPACES = ["app", "other", "system", "copy"]
TABLES = ["app.t", "app.u", "app.missing", "other.t", "system.jobs", "system.tables",
          "system.backups", "t", "APP.T", "App.U"]  # names fold case
# Ordinary SQL also meets names of more parts than ns.table (NOT_FOUND, never a 500).
QUERY_TABLES = TABLES + ["SYSTEM.JOBS", "a.b.c.d", "app.t.x", '"APP"."T"']
COLUMNS = ["id", "v", "n", "_deleted", "_updated", "missing", "*"]
TARGETS = ["nightly", "fuzz/one", "", "/", "/etc", "../escape", "s3://b/p", "x\ty", "nightly/."]

SQL_WORDS = sorted(KEYWORDS | {
    "SELECT", "FROM", "WHERE", "ORDER", "BY", "LIMIT", "GROUP", "HAVING", "JOIN", "ON", "AS",
    "WITH", "UNION", "ALL", "VALUES", "INSERT", "INTO", "UPDATE", "SET", "DELETE", "COPY",
    "ATTACH", "PRAGMA", "INSTALL", "NULL", "TRUE", "FALSE", "AND", "OR", "NOT", "IN", "IS",
    "LIKE", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "END", "DISTINCT", "COUNT",
})
ODD_TEXT = [
    "\x00", "\x01", "\x1b[31m", "\u202e", "\u200b", "\ufeff", "\u0301", "\u2028", "\u00a0",
    "ß", "İ", "ﬁ", "Ω", "𝔘𝔫𝔦", "😀", "ＳＥＬＥＣＴ", "\ud800", "\udfff", "\\", "$$", "`",
    "'", '"', "''", "(", ")", ";", "--", "/*", "*/", "\n", "\r\n", "\t", "%s", "{}",
]
HUGE = [65, 1000, 100_000]
NESTING = [2, 64, 400, 1000, 5000]

_TOKEN = re.compile(r"""'[^']*(?:''[^']*)*'|"[^"]*(?:""[^"]*)*"|[A-Za-z_][A-Za-z0-9_]*|"""
                    r"""\d+(?:\.\d*)?|\s+|.""", re.DOTALL)

literals = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.sampled_from(["NULL", "TRUE", "FALSE", "1.5", "-0.0", "1e308", "''", "'it''s'"]),
    st.text(max_size=20).map(lambda s: "'" + s.replace("'", "''") + "'"),
)
conditions = st.builds(
    lambda c, op, lit: f"{c} {op} {lit}",
    st.sampled_from([c for c in COLUMNS if c != "*"]),
    # `IS` takes only NULL, TRUE or FALSE in DuckDB's grammar (sqlglot took `IS 0`)
    st.sampled_from(["=", "<>", "<", ">=", "IS DISTINCT FROM", "IS NOT DISTINCT FROM", "LIKE"]),
    literals,
)


@st.composite
def queries(draw: Any) -> str:
    """Ordinary SQL over the small world, always well-formed."""
    table = draw(st.sampled_from(QUERY_TABLES))
    where = draw(st.none() | conditions)
    tail = f" WHERE {where}" if where else ""
    kind = draw(st.sampled_from(["select", "select", "insert", "update", "delete", "agg"]))
    if kind == "select":
        cols = ", ".join(draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=3)))
        order = draw(st.sampled_from(["", " ORDER BY 1", " ORDER BY id DESC"]))
        limit = draw(st.sampled_from(["", " LIMIT 0", " LIMIT 5", " LIMIT 100000"]))
        return f"SELECT {cols} FROM {table}{tail}{order}{limit}"
    if kind == "agg":
        return f"SELECT count(*) AS n, max(id) AS m FROM {table}{tail}"
    if kind == "insert":
        rows = draw(st.lists(st.tuples(literals, literals), min_size=1, max_size=3))
        values = ", ".join(f"({a}, {b})" for a, b in rows)
        cols = draw(st.sampled_from(["", " (id, v)", " (v, id)", " (id, missing)"]))
        return f"INSERT INTO {table}{cols} VALUES {values}"
    if kind == "update":
        return f"UPDATE {table} SET v = {draw(literals)}{tail}"
    return f"DELETE FROM {table}{tail}"


def _names(draw: Any) -> tuple[str, str, str]:
    """A namespace, a table and a quoted target of the small world."""
    return (draw(st.sampled_from(NAMESPACES)), draw(st.sampled_from(TABLES)),
            "'" + draw(st.sampled_from(TARGETS)).replace("'", "''") + "'")


@st.composite
def world_statements(draw: Any) -> str:
    """Cairn's own statements over the small world (so they reach real handlers)."""
    ns, table, target = _names(draw)
    options = draw(st.sampled_from([
        "", " WITH (label = 'fuzz')", " WITH (compression = 'none')", " WITH (detached = true)",
        " WITH (keep_last = 2)", " WITH (keep_last = 0)", " WITH (nope = 1)",
        " WITH (replace = true)", " WITH (backup_id = 'bk-nope')", " WITH (as_of = 'yesterday')",
        " WITH (as_of = '2000-01-01T00:00:00Z')", " WITH (encryption_passphrase = 'x')",
        " WITH (as_of = '2999-01-01T00:00:00')", " WITH (as_of = '2000-01-01')",  # no zone: UTC
    ]))
    archive_options = draw(st.sampled_from([
        "", " WITH (interval = '100ms')", " WITH (interval = 'never')", " WITH (label = 'x')",
    ]))
    return draw(st.sampled_from([
        f"CREATE NAMESPACE IF NOT EXISTS {ns}",
        f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, v TEXT)",
        f"SHOW TABLES IN {ns}", "SHOW NAMESPACES", f"DESCRIBE TABLE {table}",
        f"DESCRIBE TABLE {table} HISTORY", f"FLUSH TABLE {table}", f"FLUSH ALL TABLES IN {ns}",
        f"ALTER TABLE {table} ADD COLUMN n INT DEFAULT 1", f"ALTER TABLE {table} DROP COLUMN n",
        f"BACKUP DATABASE {ns} TO {target}{options}",
        f"BACKUP DATABASE IF EXISTS {ns} TO {target}",
        f"RESTORE DATABASE {ns} FROM {target} AS copy{options}",
        f"RESTORE DATABASE IF NOT EXISTS {ns} FROM {target}",
        f"SHOW BACKUPS IN {target}", f"SHOW BACKUPS FOR DATABASE {ns} LIMIT 3",
        f"SHOW BACKUP {target}", f"VERIFY BACKUP {target} IN {target}",
        f"DROP BACKUP IF EXISTS {target} IN {target}", f"KILL JOB {target}",
        "SHOW SCHEDULES", f"DROP TABLE IF EXISTS {table}",
        f"START ARCHIVING DATABASE {ns} TO {target}{archive_options}",
        f"STOP ARCHIVING DATABASE {ns}", "SHOW ARCHIVES",
        f"SHOW RESTORE POINTS FOR DATABASE {ns} IN {target}",
        f"VERIFY ARCHIVE FOR DATABASE {ns} IN {target}",
    ]))


@st.composite
def scope_statements(draw: Any) -> str:
    """Table-scope and several-namespace backups and restores over the small world."""
    ns, table, target = _names(draw)
    options = draw(st.sampled_from([
        "", " WITH (label = 'fuzz')", " WITH (replace = true)", " WITH (backup_id = 'bk-nope')",
        " WITH (keep_last = 1)", " WITH (nope = 1)", " WITH (detached = true)",
    ]))
    return draw(st.sampled_from([
        f"BACKUP DATABASE {ns}, other TO {target}{options}", f"BACKUP ALL TO {target}{options}",
        f"RESTORE ALL FROM {target}{options}", f"BACKUP TABLE {table} TO {target}{options}",
        f"BACKUP TABLE app.t, {table} TO {target}",
        f"RESTORE TABLE {table} FROM {target} AS copy.t{options}",
        f"RESTORE TABLE {table} FROM {target}",
    ]))


# Every valid statement as text: printed dataclasses and the small world.
valid_sql = st.one_of(dataclass_statements.map(to_sql), queries(), world_statements(),
                      scope_statements())


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@st.composite
def mutated(draw: Any, base: st.SearchStrategy[str] = valid_sql, huge: bool = True) -> str:
    """A valid statement (or two) broken by one to three token-level mutations."""
    text = draw(base)
    if draw(st.booleans()):
        text += draw(st.sampled_from([";", "; ", ";\n"])) + draw(base)
    toks = tokens(text) or [""]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(toks) - 1))
        j = draw(st.integers(0, len(toks) - 1))
        how = draw(st.sampled_from(["drop", "double", "swap", "keyword", "huge", "odd",
                                    "odd", "cut", "case", "nul", "nest"]))
        if how == "drop" and len(toks) > 1:
            del toks[i]
        elif how == "double":
            toks.insert(i, toks[i])
        elif how == "swap":
            toks[i], toks[j] = toks[j], toks[i]
        elif how == "keyword":
            toks[i] = draw(st.sampled_from(SQL_WORDS))
        elif how == "huge" and huge:
            toks.insert(i, draw(st.sampled_from(["a", "Z", "_", "é", "'"])) *
                        draw(st.sampled_from(HUGE)))
        elif how == "odd":
            toks.insert(i, draw(st.sampled_from(ODD_TEXT)))
        elif how == "cut":
            toks = toks[: max(1, i)]
        elif how == "case":
            toks[i] = toks[i].swapcase()
        elif how == "nul":
            toks[i] = toks[i] + "\x00"
        elif how == "nest":  # a token deep inside parentheses (or brackets)
            depth = draw(st.sampled_from(NESTING))
            left, right = draw(st.sampled_from(["()", "[]", "{}"]))
            toks[i] = left * depth + toks[i] + right * depth
    return "".join(toks)


# Shapes that once answered 500 (issue 11.9), as whole statements.
HOSTILE = [
    "SELECT " + "(" * 400 + "1" + ")" * 400,
    "SELECT * FROM app.t WHERE " + "(" * 400 + "id = 1" + ")" * 400,
    "INSERT INTO app.t VALUES (9, '\ud800')",
    "INSERT INTO app.t VALUES (9, 'a\udfffb')",
    "SELECT * FROM a.b.c.d",
    "SELECT * FROM APP.T",
    "INSERT INTO APP.T VALUES (10, 'x')",
    "RESTORE DATABASE app FROM 'nightly' AS copy WITH (as_of = '2999-01-01T00:00:00')",
    "SELECT " + "[" * 400 + "1" + "]" * 400,
    "SELECT 1" + " + 1" * 3000,
    "SELECT " + "(SELECT " * 300 + "1" + ")" * 300,
]
hostile = st.sampled_from(HOSTILE)

# Anything at all: valid, mutated, or arbitrary text.
any_sql = st.one_of(valid_sql, mutated(), st.text(max_size=200), hostile)


def statement_kinds() -> list[type]:
    """Every statement class, for checking the generator reaches them all."""
    return [c for c in vars(ast).values()
            if isinstance(c, type) and issubclass(c, ast.Statement) and c is not ast.Statement]
