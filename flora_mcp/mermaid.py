"""Mermaid flowcharts, the subset FLORA uses for its canvas: parse to a graph, serialize back.

FLORA reads and patches a project's canvas as a Mermaid flowchart (GET/PATCH /projects/{id}/canvas):

    graph LR
      n1["Prompt (text)"]
      n2["Result (image)"]
      n1 -->|text| n2

Understood here: a `graph`/`flowchart` header with a direction; nodes `id["Label (kind)"]` (also the
shapes `[..]`, `(..)`, `{..}`, `([..])`, `[[..]]`, `((..))`, quoted or not); bare `id` references;
edges `a --> b`, `a -->|label| b`, `a -- label --> b`, chained (`a --> b --> c`), with nodes declared
inline; `subgraph id["Title"]` … `end` (FLORA's groups); `%%` comments; and `classDef`, `class`,
`style`, `linkStyle`, `click` and `direction` lines, which carry no topology and are skipped.
Anything else is a MermaidError naming the line and what was expected.

Shared by the server's pre-flight check of a canvas patch and the sandbox's canvas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DIRECTIONS = ("LR", "RL", "TD", "TB", "BT")
_HEADER = re.compile(r"^(?:graph|flowchart)(?:\s+(LR|RL|TD|TB|BT))?$", re.IGNORECASE)
_ID = r"[A-Za-z0-9_]+"
_ID_RE = re.compile(_ID)
_SKIPPED = re.compile(r"^(classDef|class|style|linkStyle|click|direction)\b")
# Shapes, longest opener first so "([" wins over "(".
_SHAPES = (("([", "])"), ("[[", "]]"), ("((", "))"), ("[", "]"), ("(", ")"), ("{", "}"))
_KIND = re.compile(r"^(.*?)\s*\(([^()]+)\)$")


class MermaidError(ValueError):
    """A diagram that is not a flowchart this module reads; the message names the line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.detail = message


@dataclass
class Node:
    id: str
    label: str | None = None  # None: only referenced (an existing node), never declared here
    kind: str | None = None  # the "(kind)" at the end of a label: text, image, video, audio, action…
    line: int | None = None  # where it was first declared or referenced

    def text(self) -> str:
        """The label as it appears in the diagram, kind included."""
        base = self.label or ""
        return f"{base} ({self.kind})" if self.kind else base


@dataclass
class Edge:
    source: str
    target: str
    label: str | None = None
    line: int | None = None

    def key(self) -> tuple[str, str, str | None]:
        return (self.source, self.target, self.label)


@dataclass
class Group:
    id: str
    title: str | None = None
    members: list[str] = field(default_factory=list)


@dataclass
class Flowchart:
    direction: str = "LR"
    nodes: dict[str, Node] = field(default_factory=dict)  # in order of first appearance
    edges: list[Edge] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    def declared(self) -> dict[str, Node]:
        return {i: n for i, n in self.nodes.items() if n.label is not None}

    def referenced_only(self) -> dict[str, Node]:
        return {i: n for i, n in self.nodes.items() if n.label is None}

    def topology(self) -> tuple:
        """What the diagram says, without line numbers: for comparing two diagrams."""
        return (self.direction,
                tuple((n.id, n.label, n.kind) for n in self.nodes.values()),
                tuple(e.key() for e in self.edges),
                tuple((g.id, g.title, tuple(g.members)) for g in self.groups))


# --- parsing -----------------------------------------------------------------------------------------
def parse(text: str) -> Flowchart:
    """The flowchart in `text`; MermaidError (with the line number) for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise MermaidError('the diagram is empty; start with "graph LR" and one node per line')
    chart = Flowchart()
    stack: list[Group] = []
    header_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().rstrip(";").strip()
        if not line or line.startswith("%%"):
            continue
        if not header_seen:
            match = _HEADER.match(line)
            if not match:
                raise MermaidError(f'expected the header "graph LR" (or flowchart TD, …), got {_quote(line)}', number)
            chart.direction = (match.group(1) or "TB").upper()
            header_seen = True
            continue
        if _SKIPPED.match(line):
            continue
        if line == "end":
            if not stack:
                raise MermaidError('"end" without a matching "subgraph"', number)
            stack.pop()
            continue
        if line.startswith("subgraph ") or line == "subgraph":
            stack.append(_subgraph(chart, line[len("subgraph"):].strip(), number))
            continue
        _statement(chart, line, number, stack[-1] if stack else None)
    if not header_seen:
        raise MermaidError('the diagram has no "graph LR" header')
    if stack:
        raise MermaidError(f'subgraph {stack[-1].id} is not closed: add a line "end"')
    return chart


def _subgraph(chart: Flowchart, rest: str, number: int) -> Group:
    if not rest:
        raise MermaidError('a subgraph needs an ID: subgraph g1["Title"]', number)
    match = re.match(rf"^({_ID})\s*(.*)$", rest)
    if match and match.group(2):
        title, tail = _shape(match.group(2), number)
        if tail.strip():
            raise MermaidError(f"unexpected {_quote(tail.strip())} after the subgraph title", number)
        gid = match.group(1)
    elif match:
        gid, title = match.group(1), None
    else:  # "subgraph Some title": Mermaid uses the text as both ID and title
        gid, title = re.sub(r"\W+", "_", rest).strip("_") or "group", rest
    if any(g.id == gid for g in chart.groups):
        raise MermaidError(f"subgraph {gid} is declared twice", number)
    group = Group(gid, title)
    chart.groups.append(group)
    return group


def _statement(chart: Flowchart, line: str, number: int, group: Group | None) -> None:
    """One node declaration, or a chain of nodes joined by edges."""
    rest = line
    previous: str | None = None
    pending_label: str | None = None
    while True:
        node_id, rest = _node(chart, rest, number, group)
        if previous is not None:
            chart.edges.append(Edge(previous, node_id, pending_label, number))
        rest = rest.strip()
        if not rest:
            return
        arrow = _arrow(rest, number)
        if arrow is None:
            if rest.startswith("&"):
                raise MermaidError('"&" is not supported: write one edge per line (a --> c, then b --> c)', number)
            raise MermaidError(f"expected an edge (a --> b or a -->|label| b) after {node_id}, got {_quote(rest)}",
                               number)
        pending_label, rest = arrow
        previous = node_id


def _node(chart: Flowchart, text: str, number: int, group: Group | None) -> tuple[str, str]:
    match = _ID_RE.match(text)
    if not text:
        raise MermaidError("the edge has no target: write a --> b", number)
    if not match:
        raise MermaidError(f"expected a node ID (letters, digits, _), got {_quote(text)}", number)
    node_id, rest = match.group(0), text[match.end():]
    label = kind = None
    declared = bool(rest) and rest[0] in "[({"
    if declared:
        full, rest = _shape(rest, number)
        label, kind = _split_kind(full)
    node = chart.nodes.get(node_id)
    if node is None:
        node = chart.nodes[node_id] = Node(node_id, label, kind, number)
        if group is not None:
            group.members.append(node_id)
    elif declared:
        if node.label is not None and (node.label, node.kind) != (label, kind):
            raise MermaidError(f"node {node_id} is declared twice with different labels "
                               f"({_quote(node.text())} on line {node.line}); declare it once", number)
        node.label, node.kind = label, kind
        if group is not None and node_id not in group.members:
            group.members.append(node_id)
    return node_id, rest


def _shape(text: str, number: int) -> tuple[str, str]:
    """The label inside a node shape and what follows the shape."""
    for opener, closer in _SHAPES:
        if not text.startswith(opener):
            continue
        body = text[len(opener):]
        if body.startswith('"'):
            end = body.find('"', 1)
            if end < 0:
                raise MermaidError(f'unclosed quote in {_quote(text)}: close the label with "', number)
            label, after = body[1:end], body[end + 1:]
            if not after.startswith(closer):
                raise MermaidError(f"expected {closer!r} after the quoted label {_quote(label)}", number)
            return _unescape(label), after[len(closer):]
        end = body.find(closer)
        if end < 0:
            raise MermaidError(f"unclosed node shape in {_quote(text)}: end it with {closer!r}", number)
        label = body[:end]
        if any(c in label for c in '[]{}"'):
            raise MermaidError(f'put the label in quotes: {opener}"{label}"{closer}', number)
        return _unescape(label.strip()), body[end + len(closer):]
    raise MermaidError(f"expected a node shape like [\"Label (kind)\"], got {_quote(text)}", number)


def _arrow(text: str, number: int) -> tuple[str | None, str] | None:
    """(edge label, rest) for an edge at the start of `text`, else None."""
    if text.startswith("-->"):
        rest = text[3:].lstrip()
        if rest.startswith("|"):
            end = rest.find("|", 1)
            if end < 0:
                raise MermaidError("unclosed edge label: write -->|label| target", number)
            return _unescape(rest[1:end].strip()) or None, rest[end + 1:].lstrip()
        return None, rest
    match = re.match(r"^--\s+(.+?)\s+-->\s*", text)
    if match:
        return _unescape(match.group(1).strip()), text[match.end():]
    for other in ("-.->", "==>", "---", "-.-", "===", "--o", "--x", "<-->"):
        if text.startswith(other):
            raise MermaidError(f'only "-->" edges are supported, got {other!r}: write a --> b', number)
    return None


def _split_kind(label: str) -> tuple[str, str | None]:
    match = _KIND.match(label)
    if match and match.group(1):
        return match.group(1), match.group(2).strip()
    return label, None


def _unescape(text: str) -> str:
    return text.replace("#quot;", '"').replace("#124;", "|")


def _quote(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


# --- serializing ---------------------------------------------------------------------------------------
def node_line(node: Node) -> str:
    return f'{node.id}["{node.text().replace(chr(34), "#quot;")}"]' if node.label is not None else node.id


def edge_line(edge: Edge) -> str:
    if edge.label:
        return f"{edge.source} -->|{edge.label.replace('|', '#124;')}| {edge.target}"
    return f"{edge.source} --> {edge.target}"


def serialize(chart: Flowchart) -> str:
    """The canonical text: header, ungrouped nodes, groups with their nodes, then edges."""
    lines = [f"graph {chart.direction}"]
    grouped = {m for g in chart.groups for m in g.members}
    lines += [f"  {node_line(n)}" for n in chart.nodes.values() if n.id not in grouped]
    for group in chart.groups:
        title = f'["{group.title.replace(chr(34), "#quot;")}"]' if group.title else ""
        lines.append(f"  subgraph {group.id}{title}")
        lines += [f"    {node_line(chart.nodes[m])}" for m in group.members if m in chart.nodes]
        lines.append("  end")
    lines += [f"  {edge_line(e)}" for e in chart.edges]
    return "\n".join(lines)
