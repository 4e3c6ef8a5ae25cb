"""The package's module-level import graph, read from the source with ast.

Every `import`/`from ... import` counts, wherever it stands (module top, inside a function, under
TYPE_CHECKING): a circle drawn only by a function-level import is still a circle a reader must hold in mind.
`python scripts/import_graph.py` prints the figures docs/architecture.md quotes; tests/test_architecture.py
holds them to 0 circles and 0 imports of the package face.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "flora_mcp"
FACE = "flora_mcp"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path, known: set[str]) -> set[str]:
    """The flora_mcp modules `path` imports. `from .pkg import name` points at `pkg.name` when that is a
    module, else at `pkg`."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    """module -> the modules it imports, for every .py file in flora_mcp/."""
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {_module_name(p) for p in paths}
    return {_module_name(p): _targets(p, known) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's circles: each strongly connected component of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def face_imports(graph: dict[str, set[str]]) -> list[str]:
    """Modules inside the package that import its face (flora_mcp/__init__.py): arrows that run back up.
    `__main__` (python -m flora_mcp) is an entry point, not a room, but it imports the cli, not the face."""
    return sorted(module for module, targets in graph.items() if module != FACE and FACE in targets)


def reaches(graph: dict[str, set[str]], start: list[str]) -> set[str]:
    """Every module reachable from `start` (not counting the starting modules unless reached again)."""
    seen: set[str] = set()
    todo = [t for s in start for t in graph.get(s, ())]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def main() -> None:
    graph = import_graph()
    circles = cycles(graph)
    print(f"modules: {len(graph)}")
    print(f"arrows: {sum(len(t) for t in graph.values())}")
    print(f"circles: {len(circles)}")
    for circle in circles:
        print("  " + " <-> ".join(m.removeprefix("flora_mcp.") for m in circle))
    back = face_imports(graph)
    print(f"imports of the package face from inside: {len(back)}" + (f" ({', '.join(back)})" if back else ""))
    server = [m for m in graph if m.startswith("flora_mcp.server")]
    sandbox = sorted(m for m in reaches(graph, server) if m.startswith("flora_mcp.sandbox"))
    print(f"server reaches the sandbox: {'yes (' + ', '.join(sandbox) + ')' if sandbox else 'no'}")


if __name__ == "__main__":
    main()
