"""No import circles (tests/imports.py reads every import statement, including
those under TYPE_CHECKING and inside functions)."""

from __future__ import annotations

from pathlib import Path

from tests.imports import cycles, graph


def test_graph_sees_known_edges() -> None:
    edges = graph()
    assert "storage.registry" in edges["storage.engine"]
    assert "storage.backup.schema" in edges["storage.snapshot"]
    assert "catalog" in edges["storage.registry"]


def test_no_circle_anywhere() -> None:
    """No two Cairn modules import each other, directly or through others."""
    assert cycles(graph()) == []


def test_no_module_over_500_lines() -> None:
    """A module past ~500 lines is asking to be split (shared/style.md)."""
    root = Path(__file__).resolve().parents[1]
    long = {str(p.relative_to(root)): n
            for pkg in ("server", "sqlgrammar", "catalog", "storage", "console")
            for p in (root / pkg).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_layers_import_downwards() -> None:
    """storage imports only catalog; catalog and sqlgrammar nothing of Cairn above them."""
    allowed = {"storage": ("storage", "catalog"), "catalog": ("catalog",),
               "sqlgrammar": ("sqlgrammar",)}
    for module, targets in graph().items():
        top = module.split(".")[0]
        if top in allowed:
            bad = [t for t in targets if not t.startswith(allowed[top])]
            assert bad == [], (module, bad)
