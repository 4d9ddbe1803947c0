"""The grammar object, the transformer's coverage and the printer's edges."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from lark import Lark, Tree

from sqlgrammar import ast, parser, to_sql
from sqlgrammar.printer import literal
from sqlgrammar.transformer import ToAst


def test_parser_is_lalr_and_built_once() -> None:
    assert parser._LARK.options.parser == "lalr"
    assert parser._LARK.options.propagate_positions is True
    import sqlgrammar.parser as again

    assert again._LARK is parser._LARK


def test_every_keyword_is_upper_case_and_found() -> None:
    assert {"CREATE", "NAMESPACE", "BACKUP", "RESTORE", "SCHEDULE", "HISTORY"} <= parser.KEYWORDS
    assert all(k.isupper() for k in parser.KEYWORDS)


def test_default_raises_for_unknown_rules() -> None:
    with pytest.raises(NotImplementedError, match="no_such_rule"):
        ToAst().__default__("no_such_rule", [], None)
    with pytest.raises(NotImplementedError):
        ToAst().transform(Tree("no_such_rule", []))


def test_coverage_check_catches_a_rule_without_a_method() -> None:
    grammar = 'start: shiny\nshiny: "x"'
    with pytest.raises(RuntimeError, match="shiny"):
        parser._check_coverage(Lark(grammar, parser="lalr"))


def test_grammar_builds_when_the_cache_cannot_be_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cache goes to the temp dir; if that is unusable, the grammar still loads."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(not_a_dir))
    lark = parser._load_grammar()
    assert lark.parse("SHOW TABLES IN app") == ast.ShowTables("app")


def test_grammar_builds_without_cache_when_lark_refuses_it(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Lark.open
    calls: list[object] = []

    def open_without_cache(*args: Any, **kwargs: Any) -> Lark:
        calls.append(kwargs.get("cache"))
        if kwargs.get("cache"):
            raise PermissionError("read-only")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Lark, "open", open_without_cache)
    lark = parser._load_grammar()
    assert len(calls) == 2 and calls[1] is None
    assert Path(str(calls[0])).parent.name == f"cairn-{os.geteuid()}"
    assert lark.parse("SHOW SCHEDULES") == ast.ShowSchedules()


def test_printer_refuses_what_has_no_sql() -> None:
    with pytest.raises(TypeError):
        to_sql(ast.Statement())
    with pytest.raises(ValueError):
        literal(float("inf"))
    with pytest.raises(TypeError):
        literal([1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "sql"),
    [(None, "NULL"), (True, "TRUE"), (False, "FALSE"), (0, "0"), (-7, "-7"),
     (2.5, "2.5"), (1e-05, "1e-05"), ("it's", "'it''s'"), ("", "''")],
)
def test_literal(value: ast.OptionValue, sql: str) -> None:
    assert literal(value) == sql
