"""The dispatch table: roles declared beside each handler, duplicates refused at
import, one error-body builder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from catalog.errors import NotFound, PermissionDenied
from server.dispatch import DuplicateHandler, Routes, merge
from server.executor import ROUTES
from server.result import Result, error_body
from server.state import Session
from sqlgrammar import ast


@dataclass(frozen=True)
class One(ast.Statement):
    pass


@dataclass(frozen=True)
class Two(ast.Statement):
    target: str | None = None


async def handler(cairn: Any, session: Session, stmt: Any) -> Result:
    return Result.of_message("ran")


def test_a_statement_claimed_twice_in_one_module_raises() -> None:
    routes = Routes()
    routes.handles(One, role="user")(handler)
    with pytest.raises(DuplicateHandler, match="One has two handlers"):
        routes.handles(One, role="admin")(handler)


def test_a_statement_claimed_by_two_modules_raises() -> None:
    a, b = Routes(), Routes()
    a.handles(One, role="user")(handler)
    b.handles(Two, One, role="admin")(handler)
    with pytest.raises(DuplicateHandler, match="One is handled by both"):
        merge(a, b)
    assert set(merge(a)) == {One}


def test_an_unknown_role_is_refused_at_import() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        Routes().handles(One, role="root")(handler)  # type: ignore[arg-type]


def test_role_checks() -> None:
    routes = Routes()
    routes.handles(One, role="admin")(handler)
    routes.handles(Two, role=lambda s: "admin" if s.target else "user")(handler)
    admin, user = Session("root", "admin"), Session("alice", "user")
    odd = Session("bob", "superuser")  # an unknown role counts as the lowest
    routes.table[One].check(admin, One())
    for who in (user, odd):
        with pytest.raises(PermissionDenied, match="needs role admin; user '.*' has role"):
            routes.table[One].check(who, One())
    routes.table[Two].check(user, Two())
    with pytest.raises(PermissionDenied):
        routes.table[Two].check(user, Two(target="x"))


def test_admin_only_statements_as_the_contract_lists_them() -> None:
    admin_only = {ast.CreateNamespace, ast.DropNamespace, ast.CreateTable, ast.DropTable,
                  ast.AlterTableAddColumn, ast.AlterTableDropColumn, ast.BackupDatabase,
                  ast.RestoreDatabase, ast.VerifyBackup, ast.DropBackup, ast.KillJob,
                  ast.PauseJob, ast.ResumeJob, ast.AttachBackups}
    for cls in admin_only:
        assert ROUTES[cls].role == "admin", cls.__name__


def test_one_error_body() -> None:
    body = error_body(NotFound("no"), 1.23456, [Result.of_message("ok")], statement=2,
                      line=1, column=5)
    assert body == {"status": "error", "results": [Result.of_message("ok").to_json()],
                    "took": 1.235, "error": {"code": "NOT_FOUND", "message": "no",
                                             "statement": 2, "line": 1, "column": 5}}
    assert error_body(NotFound("no"), 0)["error"] == {"code": "NOT_FOUND", "message": "no"}


async def test_a_recursion_error_is_the_statement_nesting_only_for_a_query(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RecursionError while a statement other than a query runs says nothing
    of its nesting (a manifest nested ~1000 deep made SHOW BACKUPS IN answer 400
    "the statement nests too deeply"): a bug, 500 with its trace in the log. A
    query's own (its sqlglot tree) is still 400."""
    from storage.backup import Repository
    from tests.helpers import ok, sql, state

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                     "BACKUP DATABASE app TO 'nightly'")

    def deep(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(Repository, "listing", deep)
    status, body = await sql(client, "SHOW BACKUPS IN 'nightly'")
    assert status == 500 and body["error"]["code"] == "INTERNAL", body
    assert "nests" not in body["error"]["message"], body
    monkeypatch.setattr(state(client).engine, "query", deep)
    status, body = await sql(client, "SELECT id FROM app.t")
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    assert "nests too deeply" in body["error"]["message"], body
