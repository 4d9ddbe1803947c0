"""Seeded statements for the SQL fast path's differential checks
(sqlgrammar/fastpath.py): the fast path against the normal path, on the parse
(same tree, text and position, node for node) and on execution (the same
results and the same errors, code, message and position, on two servers
given the same statements: one with the fast path and one-row statements run
on the event loop, one with neither).

The statements are mostly the fast path's two shapes, valid and near-valid:
wrong types, overflow, unknown columns, tables and namespaces, quoting, case,
unicode, NULLs, duplicate and missing columns, system columns and tables,
USER tables with and without a user, keywords as names, odd numbers and
strings, comments, other blanks, a token dropped or doubled, a second
statement. Used by tests/sqlgrammar/test_fastpath.py,
tests/server/test_fastpath_exec.py and bench/bench_fastpath.py (large counts).
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETUP = [
    "CREATE NAMESPACE app",
    ("CREATE TABLE app.t (id BIGINT PRIMARY KEY, n INT, s TEXT NOT NULL DEFAULT 'x', d DOUBLE, "
     "b BOOLEAN, m DECIMAL(10,2), sm SMALLINT, dt DATE, ts TIMESTAMP, j JSON, "
     "vc VARCHAR(5), r REAL)"),
    "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, v TEXT)",
    "CREATE TABLE app.k (a INT, b TEXT NOT NULL)",
    "CREATE TABLE app.tk (name TEXT PRIMARY KEY, n INT)",
    "CREATE STREAM TABLE app.ev (id BIGINT PRIMARY KEY, v TEXT)",
    "CREATE NAMESPACE load",
    "CREATE TABLE load.t (id BIGINT PRIMARY KEY, client INT, v TEXT)",
]

TABLES = {
    "t": ["id", "n", "s", "d", "b", "m", "sm", "dt", "ts", "j", "vc", "r"],
    "u": ["id", "v"],
    "k": ["a", "b"],
    "tk": ["name", "n"],
    "ev": ["id", "v"],
}
ODD_TABLES = ["nope", "jobs", "namespaces", "select", "values", "current_date", "tée", '"t"',
              "T", "Tk", "from", "filter", "user"]
ODD_NAMESPACES = ["nope", "system", "App", "APP", "load", "main", "information_schema", '"app"',
                  "default", "café"]
ODD_COLUMNS = ["zz", "ID", "N", "_id", "_updated", "_deleted", "_seq", "select", "from",
               "filter", "interval", "user", "default", "null", "true", "load", "key",
               '"id"', "Id", "s", "v", "ñ", "rowid", "a", "b"]

INTS = ["0", "1", "7", "42", "32767", "32768", "65536", "2147483647", "2147483648",
        "9223372036854775807", "9223372036854775808", "99999999999999999999999", "00012",
        "1000000001", "5"]
DECIMALS = ["1.5", "0.25", "123456789.123", "0.001", "1.005", "99999999.99", "100000000.00",
            "3.14159265358979323846"]
STRINGS = ["''", "'a'", "'it''s'", "'héllo'", "'日本'", "'2026-01-02'", "'2026-13-45'",
           "'2026-01-02 03:04:05'", "'2026-01-02T03:04:05Z'", "'{\"a\": 1}'", "'[1,2'",
           "'true'", "'12'", "'1.5'", "' ; -- /* '", "'x'", "'abcdef'", "'🙂'", "'NULL'",
           "'back\\slash'", "'a''''b'", "'line\nbreak'", "'tab\there'", "'-5'"]
ODD_NUMBERS = ["1e5", "1.", ".5", "0x10", "1_000", "1.2.3", "1e", "2E-3"]
BLANKS = [" ", " ", " ", "  ", "\n", "\t", "\r\n", " \n  "]
ODD_BLANKS = ["\u00a0", " /* c */ ", " -- c\n", "\u2003", "\f", "\v"]


def _case(rng: random.Random, word: str) -> str:
    pick = rng.random()
    if pick < 0.5:
        return word
    if pick < 0.7:
        return word.lower()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word)


def _value(rng: random.Random) -> list[str]:
    pick = rng.random()
    if pick < 0.35:
        return ["-", rng.choice(INTS)] if rng.random() < 0.2 else [rng.choice(INTS)]
    if pick < 0.5:
        return ["-", rng.choice(DECIMALS)] if rng.random() < 0.3 else [rng.choice(DECIMALS)]
    if pick < 0.8:
        return [rng.choice(STRINGS)]
    if pick < 0.9:
        return [_case(rng, rng.choice(["NULL", "TRUE", "FALSE"]))]
    if pick < 0.95:
        return [rng.choice(ODD_NUMBERS)]
    return [rng.choice(["-", "- -", "abs(-4)", "1 + 2", "CAST('1' AS INT)", "DEFAULT", "?",
                        "$1", "E'x'", "[1]", "'a' 'b'", "x'00'", "-'5'"])]


def _table(rng: random.Random) -> tuple[list[str], str | None]:
    """Tokens naming a table, and the table's key in TABLES if it is one."""
    pick = rng.random()
    name = rng.choice(list(TABLES))
    if pick < 0.75:
        ns = "app" if rng.random() < 0.95 else rng.choice(["App", "APP"])
        return [ns, ".", _case(rng, name) if rng.random() < 0.2 else name], name
    if pick < 0.8:
        return ["load", ".", "t"], None
    if pick < 0.9:
        return ["app", ".", rng.choice(ODD_TABLES)], None
    if pick < 0.95:
        return [rng.choice(ODD_NAMESPACES), ".", name], None
    return [name], None  # no namespace


def _columns(rng: random.Random, table: str | None) -> list[str]:
    cols = list(TABLES.get(table or "t", TABLES["t"]))
    rng.shuffle(cols)
    chosen = cols[:rng.randint(1, len(cols))]
    if rng.random() < 0.15:
        chosen[rng.randrange(len(chosen))] = rng.choice(ODD_COLUMNS)
    if rng.random() < 0.05:
        chosen.append(chosen[0])  # named twice
    if rng.random() < 0.1:
        chosen = [_case(rng, c) for c in chosen]
    return chosen


def _insert(rng: random.Random) -> list[str]:
    table_toks, table = _table(rng)
    toks = [_case(rng, "INSERT"), _case(rng, "INTO"), *table_toks]
    if rng.random() < 0.6:
        cols = _columns(rng, table)
        toks += ["("]
        for i, c in enumerate(cols):
            toks += ([","] if i else []) + [c]
        toks += [")"]
        width = len(cols)
    else:
        width = len(TABLES.get(table or "t", TABLES["t"]))
    if rng.random() < 0.1:
        width += rng.choice([-1, 1])
    toks += [_case(rng, "VALUES")]
    # Several rows a third of the time (sqlgrammar/fastrows.py), of mixed
    # value kinds per column; now and then one row a value short or long.
    rows = 1 if rng.random() < 0.67 else rng.choice([2, 2, 3, 4, 7])
    for r in range(rows):
        w = width + (rng.choice([-1, 1]) if r and rng.random() < 0.05 else 0)
        toks += ([","] if r else []) + ["("]
        for i in range(max(0, w)):
            toks += ([","] if i else []) + _value(rng)
        toks += [")"]
    return toks


def _select(rng: random.Random) -> list[str]:
    table_toks, table = _table(rng)
    cols = _columns(rng, table)
    toks = [_case(rng, "SELECT")]
    for i, c in enumerate(cols):
        toks += ([","] if i else []) + [c]
    key = {"t": "id", "u": "id", "tk": "name", "ev": "id", "k": "a"}.get(table or "", "id")
    if rng.random() < 0.15:
        key = rng.choice(ODD_COLUMNS + ["n", "s", "_id"])
    toks += [_case(rng, "FROM"), *table_toks, _case(rng, "WHERE"), key, "="]
    toks += _value(rng) if rng.random() < 0.3 else [rng.choice(INTS + STRINGS[:6])]
    return toks


_WORDY = re.compile(r"[A-Za-z0-9_'\"$\u0080-\U0010ffff.]")


def _join(rng: random.Random, toks: list[str]) -> str:
    out = ""
    for tok in toks:
        if out:
            need = bool(_WORDY.match(out[-1]) and _WORDY.match(tok[0]))
            if rng.random() < 0.03:
                out += rng.choice(ODD_BLANKS)
            elif need or rng.random() < 0.7:
                out += rng.choice(BLANKS)
        out += tok
    return out


def statement(rng: random.Random) -> str:
    """One statement (or a near-statement) of the fast path's shapes."""
    toks = _insert(rng) if rng.random() < 0.5 else _select(rng)
    if rng.random() < 0.08:  # near-valid: a token dropped, doubled or swapped
        i = rng.randrange(len(toks))
        how = rng.randrange(3)
        if how == 0:
            del toks[i]
        elif how == 1:
            toks.insert(i, toks[i])
        elif i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
    text = _join(rng, toks)
    if rng.random() < 0.2:
        text = rng.choice(BLANKS) + text
    tail = rng.random()
    if tail < 0.15:
        text += rng.choice([";", " ;", ";\n", "; ", " ; \n"])
    elif tail < 0.18:
        text += rng.choice([";;", "; SELECT 1", " LIMIT 1", " AND n = 1", ";--", " -- end",
                            " /* x */", "\u00a0", ")"])
    return text


# --- parse: the fast path's tree against sqlglot's ---------------------------------


def check_parse(sql: str) -> bool:
    """True if the fast path took `sql`; raises AssertionError if what it
    gave differs from the normal path in any way."""
    from sqlgrammar import parser
    from sqlgrammar.errors import EmptySql, SqlInvalid, SqlSyntaxError
    from sqlgrammar.fastpath import same_tree

    fast = parser._fast(sql)
    if fast is None:
        return False
    parser.FAST_PATH = False
    try:
        slow = list(parser.iter_script(sql))
    except (SqlSyntaxError, SqlInvalid, EmptySql) as exc:
        raise AssertionError(f"fast path took {sql!r}, the normal path refuses it: {exc}") from None
    finally:
        parser.FAST_PATH = True
    assert len(slow) == 1, (sql, slow)
    s, f = slow[0], fast
    assert (f.text, f.index, f.line, f.column) == (s.text, s.index, s.line, s.column), (sql, f, s)
    assert type(f.statement) is type(s.statement), sql
    assert f.statement.kind == s.statement.kind, sql  # type: ignore[attr-defined]
    fast = f.statement.fast  # type: ignore[attr-defined]
    if fast is not None:  # read off the normal path's tree before anything folds it
        assert described(s.statement.expression) == typed(fast), (  # type: ignore[attr-defined]
            f"{sql!r}: {fast!r} != {described(s.statement.expression)!r}")  # type: ignore[attr-defined]
    assert same_tree(f.statement.expression, s.statement.expression), (  # type: ignore[attr-defined]
        f"{sql!r}: {f.statement.expression!r} != {s.statement.expression!r}")  # type: ignore[attr-defined]
    return True


def typed(fast: Any) -> tuple[Any, ...]:
    """A FastInsert with each value as (type, repr): `1 == True` and
    `Decimal('1.0') == Decimal('1.00')`, but neither stores the same bytes.
    A FastSelect as its fields."""
    if not hasattr(fast, "rows"):
        return (fast.db, fast.table, fast.columns, fast.key, fast.text, fast.is_string,
                fast.negative)
    return (fast.db, fast.table, fast.columns,
            [[(type(v), repr(v)) for v in row] for row in fast.rows])


def described(tree: Any) -> tuple[Any, ...]:
    """What `storage.dml.insert` reads of a single-row INSERT's tree (before
    names are folded), in `typed`'s form: the FastInsert it must equal; of a
    point SELECT's, the FastSelect (names as written, the literal's node)."""
    from sqlglot import exp

    from storage.values import literal

    if isinstance(tree, exp.Select):
        table, eq = tree.args["from_"].this, tree.args["where"].this
        value = eq.expression
        negative = isinstance(value, exp.Neg)
        lit = value.this if negative else value
        return (table.db or None, table.name, [c.this.this for c in tree.expressions],
                eq.this.this.this, lit.this, lit.is_string, negative)
    target, columns = tree.this, None
    if isinstance(target, exp.Schema):
        columns = [c.name for c in target.expressions]
        target = target.this
    return (target.db or None, target.name, columns,
            [[(type(v), repr(v)) for v in map(literal, row.expressions)]
             for row in tree.expression.expressions])


# --- execution: two servers, one with the fast path, one without --------------------


@dataclass
class Pair:
    """Two server states with the same history; statements run on both."""

    fast: Any
    slow: Any
    ran: int = 0
    fast_taken: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


SESSIONS = [(None, "admin"), ("alice", "admin"), ("bob", "user"), ("alice", "user")]


def _normal(outcome: Any) -> Any:
    results = []
    for r in outcome.results:
        j = r.to_json()
        j["rows"] = [{k: ("<ts>" if k == "_updated" else v) for k, v in row.items()}
                     for row in j["rows"]]
        results.append(j)
    err = outcome.error
    return results, None if err is None else (err.error.code, err.error.message, err.statement,
                                              err.line, err.column)


async def open_pair(root: Path) -> Pair:
    from server import config as config_mod
    from server.app import open_state
    from server.executor import execute
    from server.session import Session

    states = []
    for name in ("fast", "slow"):
        # "slow": the normal path all the way, parsed by sqlglot and run on a
        # statement thread (no inline run on the event loop, server/state.py).
        cfg = config_mod.from_dict({"storage": {"data_dir": str(root / name)},
                                    "server": {"inline_statements": name == "fast"},
                                    "pgwire": {"port": 0}})
        cairn = await asyncio.get_running_loop().run_in_executor(None, open_state, cfg)
        for text in SETUP:
            out = await execute(cairn, Session(user_id="alice"), text)
            assert out.error is None, (text, out.error)
        states.append(cairn)
    return Pair(states[0], states[1])


async def close_pair(pair: Pair) -> None:
    from server.app import close_state

    for cairn in (pair.fast, pair.slow):
        await asyncio.get_running_loop().run_in_executor(None, close_state, cairn)


async def check_execution(pair: Pair, sql: str, rng: random.Random) -> None:
    """Run `sql` on both servers (fast path on / off), same session: the
    results and the errors must be identical."""
    from server.executor import execute
    from server.session import Session
    from sqlgrammar import parser

    user, role = rng.choice(SESSIONS)
    namespace = "app" if rng.random() < 0.1 else None
    took = parser._fast(sql) is not None

    def session() -> Session:
        return Session(user_id=user, role=role, namespace=namespace)

    got = []
    for cairn, fast in ((pair.fast, True), (pair.slow, False)):
        parser.FAST_PATH = fast
        try:
            got.append(_normal(await execute(cairn, session(), sql)))
        except Exception as exc:  # InvalidRequest and the like, raised before any result
            got.append((type(exc).__name__, str(exc)))
        finally:
            parser.FAST_PATH = True
    assert got[0] == got[1], f"{sql!r} ({user}, {role}, {namespace}): {got[0]} != {got[1]}"
    pair.ran += 1
    pair.fast_taken += took
    key = "ok" if isinstance(got[0], tuple) and got[0][1] is None else "error"
    pair.outcomes[key] = pair.outcomes.get(key, 0) + 1
