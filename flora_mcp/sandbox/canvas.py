"""A project's canvas in the sandbox: nodes and edges, shown and patched as a Mermaid flowchart.

Node IDs are the Mermaid IDs (FLORA documents node IDs as unprefixed, and patches reference
existing nodes by their Mermaid IDs): a node the sandbox creates gets n1, n2, …; a node a patch
declares keeps the ID the patch gave it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..mermaid import Edge, Flowchart, Group, MermaidError, Node, parse, serialize

MEDIA_KINDS = ("image", "video", "audio", "text")
NODE_PARAM_FIELDS = ("prompt", "model", "content_url", "aspect_ratio", "resolution", "model_parameters")
_OUTPUT_KINDS = {"imageUrl": "image", "videoUrl": "video", "audioUrl": "audio", "text": "text", "documentUrl": "text"}


class CanvasProblem(ValueError):
    """A patch or run the canvas refuses; `fields` is the error envelope's fields list."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{f['field']}: {f['message']}" for f in fields))
        self.fields = fields


@dataclass
class CanvasNode:
    node_id: str  # also its Mermaid ID
    kind: str  # image | video | audio | text | action
    label: str
    url: str | None = None  # the media URL, or a text node's text
    asset_id: str | None = None
    width: int | None = None
    height: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # node_params a patch gave it
    action_id: str | None = None
    action_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProjectCanvas:
    nodes: dict[str, CanvasNode] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    direction: str = "LR"

    # --- reading ------------------------------------------------------------------------------------
    def chart(self) -> Flowchart:
        nodes = {i: Node(i, n.label, n.kind) for i, n in self.nodes.items()}
        return Flowchart(self.direction, nodes, list(self.edges), [Group(g.id, g.title, list(g.members))
                                                                     for g in self.groups])

    def diagram(self) -> str:
        return serialize(self.chart())

    def summary(self) -> dict[str, int]:
        linked = {e.source for e in self.edges} | {e.target for e in self.edges}
        return {"node_count": len(self.nodes), "edge_count": len(self.edges),
                "workflow_count": len(self._components(linked)),
                "isolated_node_count": sum(1 for i in self.nodes if i not in linked),
                "group_count": len(self.groups)}

    def _components(self, linked: set[str]) -> list[set[str]]:
        """Connected groups of two or more nodes: FLORA's workflows."""
        parent = {i: i for i in linked}

        def root(i: str) -> str:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for edge in self.edges:
            parent[root(edge.source)] = root(edge.target)
        components: dict[str, set[str]] = {}
        for i in linked:
            components.setdefault(root(i), set()).add(i)
        return list(components.values())

    def media(self) -> list[dict[str, Any]]:
        """The visible media nodes, as GET /projects/{id}/nodes lists them."""
        return [{"node_id": n.node_id, "type": n.kind, "label": n.label or None, "asset_id": n.asset_id,
                 "url": n.url or None, "width": n.width, "height": n.height}
                for n in self.nodes.values() if n.kind in MEDIA_KINDS]

    def inputs_of(self, node_id: str) -> list[CanvasNode]:
        return [self.nodes[e.source] for e in self.edges if e.target == node_id and e.source in self.nodes]

    # --- changing -----------------------------------------------------------------------------------
    def new_id(self) -> str:
        number = len(self.nodes) + 1
        while f"n{number}" in self.nodes:
            number += 1
        return f"n{number}"

    def add(self, kind: str, label: str, **values: Any) -> CanvasNode:
        node = CanvasNode(self.new_id(), kind, label, **values)
        self.nodes[node.node_id] = node
        return node

    def connect(self, source: str, target: str, label: str | None = None) -> bool:
        edge = Edge(source, target, label)
        if any(e.key() == edge.key() for e in self.edges):
            return False
        self.edges.append(edge)
        return True

    def apply(self, diagram: str, node_params: dict[str, Any], known_models: set[str]) -> dict[str, Any]:
        """Add and connect what the patch describes; all of it or, on any problem, none of it."""
        try:
            patch = parse(diagram)
        except MermaidError as exc:
            raise CanvasProblem([{"field": "diagram", "message": str(exc)}]) from None
        problems: list[dict[str, str]] = []
        for node in patch.nodes.values():
            if node.id in self.nodes:
                continue
            where = f"line {node.line}: " if node.line else ""
            if node.label is None:
                existing = ", ".join(list(self.nodes)[:12]) or "none yet"
                problems.append({"field": "diagram", "message": f"{where}node {node.id} is not on the canvas; declare "
                                 f'it as {node.id}["Label (kind)"] or use an existing ID ({existing})'})
            elif (node.kind or "").lower() not in MEDIA_KINDS:
                problems.append({"field": "diagram", "message": f"{where}node {node.id}: end its label with a kind, one "
                                 f"of {', '.join(MEDIA_KINDS)}, e.g. {node.id}[\"{node.label} (text)\"]"})
        problems += _node_params_problems(node_params, patch, known_models)
        if problems:
            raise CanvasProblem(problems)

        warnings: list[str] = []
        created_nodes = 0
        for node in patch.nodes.values():
            existing = self.nodes.get(node.id)
            if existing is None:
                self.nodes[node.id] = CanvasNode(node.id, (node.kind or "").lower(), node.label or "")
                created_nodes += 1
            elif node.label is not None and (node.label, (node.kind or "").lower()) != (existing.label, existing.kind):
                warnings.append(f"{node.id} is already on the canvas as {existing.label!r} ({existing.kind}); "
                                "patches add and connect, they do not rename: its label was kept")
        for node_id, values in node_params.items():
            self._set_params(self.nodes[node_id], values)
        created_edges = sum(self.connect(e.source, e.target, e.label) for e in patch.edges)
        for group in patch.groups:
            mine = next((g for g in self.groups if g.id == group.id), None)
            if mine is None:
                mine = Group(group.id, group.title)
                self.groups.append(mine)
            mine.members += [m for m in group.members if m not in mine.members]
        applied = Flowchart(patch.direction, {i: Node(i, self.nodes[i].label, self.nodes[i].kind)
                                              for i in patch.nodes}, patch.edges, patch.groups)
        return {"diagram": serialize(applied), "created_node_count": created_nodes,
                "created_edge_count": created_edges, "warnings": warnings}

    @staticmethod
    def _set_params(node: CanvasNode, values: dict[str, Any]) -> None:
        node.params.update({k: v for k, v in values.items() if v is not None})
        if node.kind == "text" and values.get("prompt"):
            node.url = values["prompt"]
        if values.get("content_url"):
            node.url = values["content_url"]

    def add_outputs(self, source: str, outputs: list[dict[str, Any]], label: str) -> None:
        """A finished run's outputs appear on the canvas wired from the node that made them."""
        for index, output in enumerate(outputs, start=1):
            node = self.add(_OUTPUT_KINDS.get(output["type"], "image"), f"{label} {index}", url=output["url"])
            self.connect(source, node.node_id)


def _node_params_problems(node_params: Any, patch: Flowchart, known_models: set[str]) -> list[dict[str, str]]:
    if not isinstance(node_params, dict):
        return [{"field": "node_params", "message": "Expected object"}]
    problems = []
    for node_id, values in node_params.items():
        where = f"node_params.{node_id}"
        if node_id not in patch.nodes:
            problems.append({"field": where, "message": f"{node_id} is not a node of the diagram; "
                             f"nodes: {', '.join(patch.nodes)}"})
            continue
        if not isinstance(values, dict):
            problems.append({"field": where, "message": "Expected object"})
            continue
        for key in NODE_PARAM_FIELDS:
            value = values.get(key)
            if value is None:
                continue
            if key == "model_parameters":
                if not isinstance(value, dict):
                    problems.append({"field": f"{where}.{key}", "message": "Expected object"})
            elif not isinstance(value, str):
                problems.append({"field": f"{where}.{key}", "message": "Expected string"})
            elif key == "content_url" and not re.match(r"^https?://\S+$", value):
                problems.append({"field": f"{where}.{key}", "message": "Invalid url"})
            elif key == "model" and value not in known_models:
                problems.append({"field": f"{where}.{key}", "message": "Unknown model endpoint ID"})
    return problems
