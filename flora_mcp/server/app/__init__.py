"""The MCP App (`io.modelcontextprotocol/ui`): one HTML view of runs, media, costs and the canvas.

Hosts that negotiated MCP Apps render `ui://flora/app.html` next to the results of the tools bound
to it (BOUND_TOOLS carry `_meta.ui.resourceUri`). The view reads the tool result the host hands it
and calls our own tools through the host bridge (get_run to follow a run, read_canvas, list_runs,
place_on_canvas, start_generation), so every action passes the same checks, ledger and budget as
the agent's calls. It never sees an API key: media come from FLORA's media origins (declared in
the CSP) or, where those are not reachable (the embedded sandbox), as `flora://` resources read
through the bridge.

A client that did not negotiate Apps gets exactly the answers it got before; a host that did gets,
on read_canvas, the parsed edges of the diagram in `_meta` (under MAX_META_BYTES) to draw the graph.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp.server.apps import Apps, ResourceCsp, client_supports_apps
from mcp_types import CallToolResult

from ...mermaid import MermaidError, parse

if TYPE_CHECKING:
    from mcp.server.mcpserver.tools.base import Tool

    from ...config import Settings

APP_URI = "ui://flora/app.html"
META_KEY = "flora-mcp/app"  # the app's own part of a result's _meta (hosts with Apps only)
MAX_META_BYTES = 2048
BOUND_TOOLS = frozenset({"start_generation", "start_generations", "get_run", "run_action", "run_technique",
                         "list_runs", "read_canvas", "place_on_canvas"})
_CONFIG_MARK = "/*FLORA_APP_CONFIG*/{}"


@cache
def _template() -> str:
    return Path(__file__).with_name("app.html").read_text(encoding="utf-8")


def media_origins(settings: Settings) -> list[str]:
    """Where the view may load output files from: FLORA's media origins (FLORA_MEDIA_ORIGINS, else the
    API's own origin). None for the embedded sandbox: its files are not served, so the view reads them
    as resources through the host."""
    if settings.sandbox:
        return []
    given = [o.strip().rstrip("/") for o in (settings.media_origins or "").split(",") if o.strip()]
    origins = given or [_origin(settings.base_url)]
    return [o for o in dict.fromkeys(origins) if o]


def app_csp(settings: Settings) -> ResourceCsp:
    """Images and media from FLORA's media origins and `data:` (the previews in results, and files read as
    resources, are shown as data: URLs; hosts such as the MCP Inspector allow no data: unless declared).
    No connect, frame or font domains: the app reaches nothing itself."""
    return ResourceCsp(resource_domains=[*media_origins(settings), "data:"])


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def app_html(settings: Settings) -> str:
    """The one-file app, told which origins its media may come from (the same list as its CSP)."""
    config = json.dumps({"mediaOrigins": media_origins(settings)}, separators=(",", ":"))
    # "</" cannot end the inline script: JSON from settings is written inside <script>.
    return _template().replace(_CONFIG_MARK, config.replace("</", "<\\/"), 1)


def _add_canvas_graph(tool: Tool) -> None:
    """read_canvas, for a host with Apps: the diagram's graph in `_meta`, parsed here so the view draws it
    without a Mermaid parser of its own. Wrapped on this one tool: other calls keep their plain path."""
    answer = tool.fn

    async def run(arguments: dict[str, Any], ctx: Any) -> Any:
        result = await answer(arguments=arguments, ctx=ctx)
        if isinstance(result, CallToolResult) and not result.is_error and client_supports_apps(ctx):
            graph = canvas_graph((result.structured_content or {}).get("diagram"))
            if graph is not None:
                result = result.model_copy(update={"meta": {**(result.meta or {}), META_KEY: graph}})
        return result

    tool.fn = run


def canvas_graph(diagram: Any) -> dict[str, Any] | None:
    """The diagram's edges and groups as the server parses them, small enough for every result (≤ 2 KB)."""
    if not isinstance(diagram, str):
        return None
    try:
        chart = parse(diagram)
    except MermaidError:
        return None
    graph: dict[str, Any] = {"direction": chart.direction,
                             "edges": [[e.source, e.target, e.label] for e in chart.edges],
                             "groups": [[g.id, g.title, g.members] for g in chart.groups]}
    while len(json.dumps(graph, separators=(",", ":"))) > MAX_META_BYTES and (graph["edges"] or graph["groups"]):
        graph["groups"] = []  # groups go first, then edges from the end; the view says how many are missing
        if len(json.dumps(graph, separators=(",", ":"))) > MAX_META_BYTES and graph["edges"]:
            graph["edges"] = graph["edges"][: len(graph["edges"]) * 3 // 4]
        graph["truncated"] = len(chart.edges) - len(graph["edges"])
    return graph


def bind_app(tools: Iterable[Tool], settings: Settings) -> Apps:
    """Point the bound tools at the app (`_meta.ui.resourceUri`) and build the extension serving it."""
    for tool in tools:
        if tool.name in BOUND_TOOLS:
            tool.meta = {**(tool.meta or {}), "ui": {"resourceUri": APP_URI}}
        if tool.name == "read_canvas":
            _add_canvas_graph(tool)
    app = Apps()
    app.add_html_resource(
        APP_URI, app_html(settings), name="flora_app", title="FLORA runs",
        description="Runs, media, costs and the project canvas, for hosts that render MCP Apps",
        csp=app_csp(settings),
        prefers_border=True,
    )
    return app
