"""CREATE / DROP / SHOW NAMESPACES."""

from __future__ import annotations

from catalog import Namespace, Table
from catalog.errors import InvalidArgument, NotFound
from sqlgrammar.ast import CreateNamespace, DropNamespace, ShowNamespaces

from .dispatch import Routes
from .result import Result
from .state import Cairn, Session

routes = Routes()

RESERVED = frozenset({"system", "information_schema", "main", "temp", "pg_catalog"})


def check_namespace_name(name: str) -> None:
    """Names the parser accepts but Cairn keeps for itself."""
    if name in RESERVED:
        raise InvalidArgument(f"Namespace name '{name}' is reserved")


def require_namespace(cairn: Cairn, name: str) -> Namespace:
    ns = cairn.catalog.get(Namespace, name)
    if ns is None:
        raise NotFound(f"Namespace '{name}' does not exist")
    return ns


@routes.handles(CreateNamespace, role="admin")
async def create_namespace(cairn: Cairn, session: Session, stmt: CreateNamespace) -> Result:
    check_namespace_name(stmt.name)

    def work() -> Result:
        if not cairn.engine.create_namespace(stmt.name, if_not_exists=stmt.if_not_exists):
            return Result.of_message(f"Namespace '{stmt.name}' already exists, skipped")
        return Result.of_message(f"Namespace '{stmt.name}' created")

    return await cairn.run(session.stoppable(work))


@routes.handles(DropNamespace, role="admin")
async def drop_namespace(cairn: Cairn, session: Session, stmt: DropNamespace) -> Result:
    check_namespace_name(stmt.name)

    def work() -> Result:
        # One catalog batch (storage/registry.py): a concurrent BACKUP sees the
        # namespace whole or not at all.
        if not cairn.engine.drop_namespace(stmt.name, cascade=stmt.cascade,
                                           if_exists=stmt.if_exists):
            return Result.of_message(f"Namespace '{stmt.name}' does not exist, skipped")
        return Result.of_message(f"Namespace '{stmt.name}' dropped")

    return await cairn.run(session.stoppable(work))


@routes.handles(ShowNamespaces, role="user")
async def show_namespaces(cairn: Cairn, session: Session, stmt: ShowNamespaces) -> Result:
    def work() -> Result:
        rows = []
        for ns in cairn.catalog.scan(Namespace):
            count = len(cairn.catalog.scan(Table, ns.name + "\x00"))
            rows.append({"namespace": ns.name, "created_at": ns.created_at, "table_count": count})
        return Result.of_rows(
            [("namespace", "TEXT"), ("created_at", "TIMESTAMP"), ("table_count", "BIGINT")], rows
        )

    return await cairn.run(work)
