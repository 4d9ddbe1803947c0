"""No import circles (tests/imports.py reads every import statement, including
those under TYPE_CHECKING and inside functions)."""

from __future__ import annotations

from tests.imports import cycles, graph


def test_graph_sees_known_edges() -> None:
    edges = graph()
    assert "storage.registry" in edges["storage.engine"]
    assert "storage.backup.schema" in edges["storage.snapshot"]
    assert "catalog" in edges["storage.registry"]


def test_no_circle_through_storage_or_catalog() -> None:
    """The storage engine, its backup path and the catalog import one way.
    (storage.backup.archive <-> archive_objects and server.jobs <-> server.state
    are being untangled with issue 12's other parts.)"""
    found = [c for c in cycles(graph())
             if any(m.startswith(("storage.", "catalog")) for m in c)
             and c != ["storage.backup.archive", "storage.backup.archive_objects"]]
    assert found == []


def test_layers_import_downwards() -> None:
    """storage imports only catalog; catalog and sqlgrammar nothing of Cairn above them."""
    allowed = {"storage": ("storage", "catalog"), "catalog": ("catalog",),
               "sqlgrammar": ("sqlgrammar",)}
    for module, targets in graph().items():
        top = module.split(".")[0]
        if top in allowed:
            bad = [t for t in targets if not t.startswith(allowed[top])]
            assert bad == [], (module, bad)
