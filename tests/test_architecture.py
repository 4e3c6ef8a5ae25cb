"""The import graph README's Architecture draws: imports go one way, and only connect.py (and the
`flora-mcp sandbox` command) reach the sandbox. Read from the source with ast, function-level imports
included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flora_mcp"


def _imports(path: Path) -> set[str]:
    """Every flora_mcp module `path` imports, as dotted names."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]  # what a relative import starts from (the same for a package's __init__)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {target} if node.module else {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name.startswith("flora_mcp")}


def _layer(path: Path) -> set[str]:
    return set().union(*(_imports(p) for p in ([path] if path.is_file() else path.rglob("*.py"))))


def _reaches(names: set[str], module: str) -> bool:
    return any(n == module or n.startswith(module + ".") for n in names)


@pytest.mark.parametrize(("layer", "must_not_import"), [
    ("server", ["flora_mcp.sandbox", "flora_mcp.transports", "flora_mcp.cli"]),
    ("transports", ["flora_mcp.sandbox", "flora_mcp.cli"]),
    ("client.py", ["flora_mcp.sandbox", "flora_mcp.server", "flora_mcp.transports", "flora_mcp.ledger"]),
    ("ledger", ["flora_mcp.server", "flora_mcp.transports", "flora_mcp.client", "flora_mcp.sandbox"]),
    ("sandbox", ["flora_mcp.server", "flora_mcp.transports", "flora_mcp.ledger", "flora_mcp.cli"]),
    ("connect.py", ["flora_mcp.server", "flora_mcp.transports"]),
])
def test_imports_go_one_way(layer, must_not_import):
    imported = _layer(PACKAGE / layer)
    assert imported, f"found no imports in {layer}: the reader is broken"
    assert [m for m in must_not_import if _reaches(imported, m)] == []


def test_only_connect_and_the_sandbox_command_reach_the_sandbox():
    reaching = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                      if "sandbox" not in p.relative_to(PACKAGE).parts and _reaches(_imports(p), "flora_mcp.sandbox"))
    assert reaching == ["cli.py", "connect.py"]
