"""The import graph docs/architecture.md draws, read from the source with ast (function-level and
TYPE_CHECKING imports included): no circles anywhere, inside packages too; nothing inside the package
imports its face (flora_mcp/__init__.py); the server never reaches the sandbox; layers import one way."""

from __future__ import annotations

import pytest

from scripts.import_graph import PACKAGE, cycles, face_imports, import_graph, reaches


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_reader_sees_the_imports(graph):
    assert len(graph) > 40 and "flora_mcp.server.tools.generation" in graph
    assert "flora_mcp.client" in graph["flora_mcp.connect"]  # a function-level import
    assert "flora_mcp.models" in graph["flora_mcp.server.guidance"]  # a TYPE_CHECKING import


def test_no_import_circles(graph):
    assert cycles(graph) == []


def test_no_module_imports_the_package_face(graph):
    """The face re-exports the public names lazily; importing it from inside turns every module into a
    dependent of everything the face names."""
    assert face_imports(graph) == []


@pytest.mark.parametrize(("layer", "must_not_reach"), [
    ("flora_mcp.server", ["flora_mcp.sandbox", "flora_mcp.connect", "flora_mcp.transports", "flora_mcp.cli",
                          "flora_mcp.demo"]),
    ("flora_mcp.transports", ["flora_mcp.cli", "flora_mcp.demo"]),  # the sandbox only through connect.py
    # client and sandbox reach the ledger only through config.state_url's default path (function-level)
    ("flora_mcp.client", ["flora_mcp.sandbox", "flora_mcp.server", "flora_mcp.transports"]),
    ("flora_mcp.ledger", ["flora_mcp.server", "flora_mcp.transports", "flora_mcp.client", "flora_mcp.sandbox"]),
    ("flora_mcp.sandbox", ["flora_mcp.server", "flora_mcp.transports", "flora_mcp.cli"]),
    ("flora_mcp.connect", ["flora_mcp.server", "flora_mcp.transports"]),
], ids=["server", "transports", "client", "ledger", "sandbox", "connect"])
def test_layers_import_one_way(graph, layer, must_not_reach):
    """Transitively: a layer reaches none of the rooms above it (or, for the server, the sandbox)."""
    reached = reaches(graph, [m for m in graph if m == layer or m.startswith(layer + ".")])
    assert [m for m in must_not_reach if any(r == m or r.startswith(m + ".") for r in reached)] == []


def test_only_the_edges_choose_the_sandbox(graph):
    """The server is handed a client factory; connect.py (used by cli, demo and the transports) and the
    `flora-mcp sandbox` command are the only modules outside the sandbox that import it."""
    direct = sorted(m for m, targets in graph.items() if not m.startswith("flora_mcp.sandbox")
                    and any(t.startswith("flora_mcp.sandbox") for t in targets))
    assert direct == ["flora_mcp.cli", "flora_mcp.connect"]
    assert (PACKAGE / "connect.py").is_file()
