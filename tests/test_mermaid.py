"""The Mermaid flowchart subset FLORA's canvas speaks: what parses, what round-trips, what is refused."""

from __future__ import annotations

import pytest

from flora_mcp.mermaid import Edge, Flowchart, Group, MermaidError, Node, parse, serialize

FLORA_EXAMPLE = 'graph LR\n  n1["Prompt (text)"]\n  n2["Result (image)"]\n  n1 -->|text| n2'


def test_floras_documented_example_parses_and_serializes_back_unchanged():
    chart = parse(FLORA_EXAMPLE)
    assert [(n.id, n.label, n.kind) for n in chart.nodes.values()] == [("n1", "Prompt", "text"),
                                                                       ("n2", "Result", "image")]
    assert [e.key() for e in chart.edges] == [("n1", "n2", "text")]
    assert serialize(chart) == FLORA_EXAMPLE


def test_patch_example_from_the_openapi_file():
    chart = parse('graph LR\n  source["Product photo (Image)"]\n  output["Editorial campaign image (Image)"]\n'
                  "  source --> output")
    assert chart.nodes["source"].kind == "Image" and chart.nodes["output"].label == "Editorial campaign image"
    assert [e.key() for e in chart.edges] == [("source", "output", None)]


def test_the_wider_subset_reads_and_comes_back_the_same_graph():
    text = """flowchart TD
    %% a comment
    a[Plain label] --> b(("Model (image)")) -- uses --> c;
    subgraph g1["Mood board"]
      d["He said #quot;hi#quot; (text)"]
      e{"Decision"}
    end
    classDef hot fill:#f96
    class a hot
    style b stroke:#333
    d -->|feeds| a
    c
    """
    chart = parse(text)
    assert chart.direction == "TD"
    assert chart.nodes["d"].label == 'He said "hi"' and chart.nodes["d"].kind == "text"
    assert chart.nodes["c"].label is None  # referenced, never declared
    assert chart.groups == [Group("g1", "Mood board", ["d", "e"])]
    assert [e.key() for e in chart.edges] == [("a", "b", None), ("b", "c", "uses"), ("d", "a", "feeds")]
    again = parse(serialize(chart))
    assert again.topology() == chart.topology()
    assert serialize(again) == serialize(chart)  # the canonical text is a fixed point


@pytest.mark.parametrize("label", ['quote " inside', "pipe | and #hash", "brackets [x] (y)", "ünïcödé 🎨"])
def test_awkward_labels_round_trip(label):
    chart = Flowchart("LR", {"a": Node("a", label, "text"), "b": Node("b", "Out", "image")},
                      [Edge("a", "b", "edge | label")])
    back = parse(serialize(chart))
    assert back.nodes["a"].label == label and back.nodes["a"].kind == "text"
    assert back.edges[0].label == "edge | label"


def test_a_label_without_a_kind_has_none():
    chart = parse('graph LR\n  a["Just a label"]\n  b["(text)"]')
    assert (chart.nodes["a"].label, chart.nodes["a"].kind) == ("Just a label", None)
    assert (chart.nodes["b"].label, chart.nodes["b"].kind) == ("(text)", None)


def test_declaring_a_referenced_node_later_is_one_node():
    chart = parse('graph LR\n  a --> b\n  b["Result (image)"]')
    assert list(chart.nodes) == ["a", "b"] and chart.nodes["b"].label == "Result" and chart.nodes["b"].line == 2
    assert list(chart.referenced_only()) == ["a"] and list(chart.declared()) == ["b"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", "the diagram is empty"),
    ("   \n  ", "the diagram is empty"),
    ("a --> b", 'line 1: expected the header "graph LR"'),
    ("graph XY\n  a --> b", "line 1: expected the header"),
    ('graph LR\n  a["unclosed', "line 2: unclosed quote"),
    ('graph LR\n  a["x"', "line 2: expected ']'"),
    ("graph LR\n  a[x", "line 2: unclosed node shape"),
    ("graph LR\n  a -->", "line 2: the edge has no target"),
    ("graph LR\n  a -.-> b", 'line 2: only "-->" edges are supported'),
    ("graph LR\n  a ==> b", 'line 2: only "-->" edges are supported'),
    ("graph LR\n  a & b --> c", 'line 2: "&" is not supported'),
    ("graph LR\n  a b", "line 2: expected an edge"),
    ("graph LR\n  a -->|oops b", "line 2: unclosed edge label"),
    ("graph LR\n  -x", "line 2: expected a node ID"),
    ('graph LR\n  a["One (text)"]\n  a["Two (text)"]', "line 3: node a is declared twice"),
    ("graph LR\n  subgraph g\n  a", "subgraph g is not closed"),
    ("graph LR\n  end", 'line 2: "end" without a matching "subgraph"'),
    ("graph LR\n  subgraph g\n  end\n  subgraph g\n  end", "line 4: subgraph g is declared twice"),
    ('graph LR\n  a[say "hi"]', "line 2: put the label in quotes"),
], ids=[
    "empty", "blank", "no-header", "wrong-header", "unclosed-quote", "unclosed-bracket", "unclosed-shape",
    "edge-without-target", "dotted-edge", "thick-edge", "ampersand", "no-edge", "unclosed-label", "no-node-id",
    "declared-twice", "open-subgraph", "stray-end", "subgraph-twice", "unquoted-quotes"
])
def test_malformed_diagrams_name_the_line_and_the_fix(text, expected):
    with pytest.raises(MermaidError) as caught:
        parse(text)
    assert expected in str(caught.value)
