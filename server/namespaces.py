"""CREATE / DROP / SHOW NAMESPACES."""

from __future__ import annotations

from catalog import Namespace, Table
from catalog.errors import AlreadyExists, InvalidArgument, NotFound
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
        with cairn.namespace_lock:
            if cairn.catalog.get(Namespace, stmt.name) is not None:
                if stmt.if_not_exists:
                    return Result.of_message(f"Namespace '{stmt.name}' already exists, skipped")
                raise AlreadyExists(f"Namespace '{stmt.name}' already exists")
            cairn.catalog.put(Namespace(stmt.name))
        return Result.of_message(f"Namespace '{stmt.name}' created")

    return await cairn.run(work)


@routes.handles(DropNamespace, role="admin")
async def drop_namespace(cairn: Cairn, session: Session, stmt: DropNamespace) -> Result:
    check_namespace_name(stmt.name)

    def work() -> Result:
        with cairn.namespace_lock:
            if cairn.catalog.get(Namespace, stmt.name) is None:
                if stmt.if_exists:
                    return Result.of_message(f"Namespace '{stmt.name}' does not exist, skipped")
                raise NotFound(f"Namespace '{stmt.name}' does not exist")
            tables = cairn.catalog.scan(Table, stmt.name + "\x00")
            if tables and not stmt.cascade:
                raise InvalidArgument(
                    f"Namespace '{stmt.name}' has {len(tables)} table(s); use DROP NAMESPACE "
                    f"{stmt.name} CASCADE to drop them too"
                )
            if tables:
                cairn.engine.drop_namespace_tables(stmt.name)
            cairn.catalog.delete(Namespace, stmt.name)
        return Result.of_message(f"Namespace '{stmt.name}' dropped")

    return await cairn.run(work)


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
