"""Which handler runs a statement, and which role may run it, declared beside
the handler itself.

Each handler module makes one `Routes` and decorates its handlers:

    routes = Routes()

    @routes.handles(ast.CreateTable, role="admin")
    async def create_table(cairn, session, stmt): ...

`role` is "admin" (role admin only) or "user" (any authenticated caller), or a
function of the statement for the few statements whose role depends on a
clause (SHOW BACKUPS IN 'target' reads a target: admin). The executor joins
every module's routes with `merge()`, which raises at import time if two
handlers claim one statement class, so a statement never silently changes
hands when a module is added."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from catalog.errors import PermissionDenied
from sqlgrammar import ast

from .result import Result
from .state import Cairn, Session

Role = Literal["admin", "user"]
RoleRule = Role | Callable[[Any], Role]
Handler = Callable[[Cairn, Session, Any], Awaitable[Result]]
H = TypeVar("H", bound=Handler)

ROLES: tuple[Role, ...] = ("user", "admin")  # lowest first


class DuplicateHandler(Exception):
    """Two handlers claim one statement class (raised at import)."""


@dataclass(frozen=True)
class Route:
    statement: type[ast.Statement]
    handler: Handler
    role: RoleRule

    def required_role(self, stmt: ast.Statement) -> Role:
        role = self.role(stmt) if callable(self.role) else self.role
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} for {self.statement.__name__}")
        return role

    def check(self, session: Session, stmt: ast.Statement) -> None:
        """PERMISSION_DENIED unless the caller's role is at least the required one."""
        need = self.required_role(stmt)
        have = session.role if session.role in ROLES else "user"
        if ROLES.index(have) < ROLES.index(need):
            raise PermissionDenied(
                f"{type(stmt).__name__} needs role {need}; user '{session.user_id}' has role "
                f"{session.role}"
            )


class Routes:
    """One module's handlers, keyed by statement class."""

    def __init__(self) -> None:
        self.table: dict[type[ast.Statement], Route] = {}

    def handles(self, *statements: type[ast.Statement], role: RoleRule) -> Callable[[H], H]:
        if not statements:
            raise TypeError("handles() needs at least one statement class")

        def register(handler: H) -> H:
            for cls in statements:
                if cls in self.table:
                    raise DuplicateHandler(
                        f"{cls.__name__} has two handlers: {self.table[cls].handler.__name__} "
                        f"and {handler.__name__}"
                    )
                if not callable(role) and role not in ROLES:
                    raise ValueError(f"unknown role {role!r} for {cls.__name__}")
                self.table[cls] = Route(cls, handler, role)
            return handler

        return register


def merge(*modules: Routes) -> dict[type[ast.Statement], Route]:
    """Every module's routes in one table; a statement class claimed twice raises."""
    merged: dict[type[ast.Statement], Route] = {}
    for routes in modules:
        for cls, route in routes.table.items():
            if cls in merged:
                raise DuplicateHandler(
                    f"{cls.__name__} is handled by both {merged[cls].handler.__module__}."
                    f"{merged[cls].handler.__name__} and {route.handler.__module__}."
                    f"{route.handler.__name__}"
                )
            merged[cls] = route
    return merged
