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
    _known: set[str] = field(default_factory=set, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._known = set(self.members)

    def add(self, node_id: str) -> None:
        if node_id not in self._known:
            self._known.add(node_id)
            self.members.append(node_id)


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
# Every step below moves an index along one line (no slicing of what is left, no backtracking
# pattern), so parsing takes time linear in the diagram's size; the caps bound that size.
MAX_DIAGRAM_CHARS = 200_000
MAX_NODES = 2_000
MAX_EDGES = 4_000
_WS = re.compile(r"\s*")


def parse(text: str) -> Flowchart:
    """The flowchart in `text`; MermaidError (with the line number) for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise MermaidError('the diagram is empty; start with "graph LR" and one node per line')
    if len(text) > MAX_DIAGRAM_CHARS:
        raise MermaidError(f"the diagram is {len(text):,} characters; at most {MAX_DIAGRAM_CHARS:,} are read at "
                           "once: send it in smaller patches")
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
        if len(chart.nodes) > MAX_NODES or len(chart.edges) > MAX_EDGES:
            raise MermaidError(f"more than {MAX_NODES:,} nodes or {MAX_EDGES:,} edges; send the diagram in smaller "
                               "patches", number)
    if not header_seen:
        raise MermaidError('the diagram has no "graph LR" header')
    if stack:
        raise MermaidError(f'subgraph {stack[-1].id} is not closed: add a line "end"')
    return chart


def _subgraph(chart: Flowchart, rest: str, number: int) -> Group:
    if not rest:
        raise MermaidError('a subgraph needs an ID: subgraph g1["Title"]', number)
    match = _ID_RE.match(rest)
    after = _WS.match(rest, match.end()).end() if match else 0
    if match and (after == len(rest) or rest[after] in "[({"):
        gid, title = match.group(0), None
        if after < len(rest):
            title, end = _shape(rest, after, number)
            if rest[end:].strip():
                raise MermaidError(f"unexpected {_quote(rest[end:].strip())} after the subgraph title", number)
    else:  # "subgraph Some title": Mermaid uses the text as both ID and title
        gid, title = re.sub(r"\W+", "_", rest).strip("_") or "group", rest
    if any(g.id == gid for g in chart.groups):
        raise MermaidError(f"subgraph {gid} is declared twice", number)
    group = Group(gid, title)
    chart.groups.append(group)
    return group


def _statement(chart: Flowchart, line: str, number: int, group: Group | None) -> None:
    """One node declaration, or a chain of nodes joined by edges."""
    pos = 0
    previous: str | None = None
    pending_label: str | None = None
    while True:
        node_id, pos = _node(chart, line, pos, number, group)
        if previous is not None:
            chart.edges.append(Edge(previous, node_id, pending_label, number))
        pos = _WS.match(line, pos).end()
        if pos == len(line):
            return
        arrow = _arrow(line, pos, number)
        if arrow is None:
            if line.startswith("&", pos):
                raise MermaidError('"&" is not supported: write one edge per line (a --> c, then b --> c)', number)
            raise MermaidError(f"expected an edge (a --> b or a -->|label| b) after {node_id}, got "
                               f"{_quote(line[pos:pos + 61])}", number)
        pending_label, pos = arrow
        previous = node_id


def _node(chart: Flowchart, line: str, pos: int, number: int, group: Group | None) -> tuple[str, int]:
    if pos >= len(line):
        raise MermaidError("the edge has no target: write a --> b", number)
    match = _ID_RE.match(line, pos)
    if not match:
        raise MermaidError(f"expected a node ID (letters, digits, _), got {_quote(line[pos:pos + 61])}", number)
    node_id, pos = match.group(0), match.end()
    label = kind = None
    declared = pos < len(line) and line[pos] in "[({"
    if declared:
        full, pos = _shape(line, pos, number)
        label, kind = _split_kind(full)
    node = chart.nodes.get(node_id)
    if node is None:
        node = chart.nodes[node_id] = Node(node_id, label, kind, number)
        if group is not None:
            group.add(node_id)
    elif declared:
        if node.label is not None and (node.label, node.kind) != (label, kind):
            raise MermaidError(f"node {node_id} is declared twice with different labels "
                               f"({_quote(node.text())} on line {node.line}); declare it once", number)
        node.label, node.kind = label, kind
        if group is not None:
            group.add(node_id)
    return node_id, pos


def _shape(line: str, pos: int, number: int) -> tuple[str, int]:
    """The label inside the node shape at `pos`, and the index just after the shape."""
    for opener, closer in _SHAPES:
        if not line.startswith(opener, pos):
            continue
        body = pos + len(opener)
        if line.startswith('"', body):
            end = line.find('"', body + 1)
            if end < 0:
                raise MermaidError(f'unclosed quote in {_quote(line[pos:pos + 61])}: close the label with "', number)
            label = line[body + 1:end]
            if not line.startswith(closer, end + 1):
                raise MermaidError(f"expected {closer!r} after the quoted label {_quote(label)}", number)
            return _unescape(label), end + 1 + len(closer)
        end = line.find(closer, body)
        if end < 0:
            raise MermaidError(f"unclosed node shape in {_quote(line[pos:pos + 61])}: end it with {closer!r}", number)
        label = line[body:end]
        if any(c in label for c in '[]{}"'):
            raise MermaidError(f'put the label in quotes: {opener}"{label}"{closer}', number)
        return _unescape(label.strip()), end + len(closer)
    raise MermaidError(f"expected a node shape like [\"Label (kind)\"], got {_quote(line[pos:pos + 61])}", number)


def _arrow(line: str, pos: int, number: int) -> tuple[str | None, int] | None:
    """(edge label, index after the edge) for an edge at `pos`, else None."""
    if line.startswith("-->", pos):
        after = _WS.match(line, pos + 3).end()
        if line.startswith("|", after):
            end = line.find("|", after + 1)
            if end < 0:
                raise MermaidError("unclosed edge label: write -->|label| target", number)
            return _unescape(line[after + 1:end].strip()) or None, _WS.match(line, end + 1).end()
        return None, after
    if line.startswith("--", pos) and pos + 2 < len(line) and line[pos + 2].isspace():
        # "-- label -->": the first "-->" after a blank, with some text before that blank
        first = _WS.match(line, pos + 2).end()
        search = first
        while (end := line.find("-->", search)) >= 0:
            if first < end and line[end - 1].isspace():
                return _unescape(line[first:end].strip()), _WS.match(line, end + 3).end()
            search = end + 1
    for other in ("-.->", "==>", "---", "-.-", "===", "--o", "--x", "<-->"):
        if line.startswith(other, pos):
            raise MermaidError(f'only "-->" edges are supported, got {other!r}: write a --> b', number)
    return None


def _split_kind(label: str) -> tuple[str, str | None]:
    """("Label", "kind") from "Label (kind)": the last parenthesised word, with text before it."""
    if not label.endswith(")"):
        return label, None
    opened = label.rfind("(")
    inner = label[opened + 1:-1]
    base = label[:opened].rstrip() if opened > 0 else ""
    if opened < 0 or not inner or ")" in inner or not base:
        return label, None
    return base, inner.strip()


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
