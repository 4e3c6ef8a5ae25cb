"""The MCP App degrades cleanly and stays small: a client without MCP Apps gets exactly the answers it got
before, tools/list grows by the `_meta.ui` pointers only, a host with Apps gets at most 2 KB more per
result, and the app's one HTML file loads nothing remote. (As a person sees it: test_app_harness.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

from mcp.client import Client
from mcp.client.extension import advertise

from flora_mcp.connect import build_client
from flora_mcp.server import create_server
from flora_mcp.server.app import APP_URI, BOUND_TOOLS, MAX_META_BYTES, META_KEY, app_html, canvas_graph, media_origins
from tests.helpers import settings

APPS = advertise("io.modelcontextprotocol/ui", {"mimeTypes": ["text/html;profile=mcp-app"]})


def dump(result: Any) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


async def test_a_client_without_apps_gets_the_same_answers_and_a_host_with_apps_at_most_2_kb_more():
    server = create_server(settings(sandbox=True, sandbox_speed=50.0), connect=build_client)
    async with Client(server) as plain, Client(server, extensions=[APPS]) as host:
        ws = (await plain.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        project = (await plain.call_tool("list_projects", {"workspace_id": ws})).structured_content
        project_id = project["projects"][0]["project_id"]
        run = (await plain.call_tool("start_generation", {"type": "image", "prompt": "a mug", "workspace_id": ws,
                                                          "project_id": project_id, "wait_seconds": 30}))
        run_id = run.structured_content["run_id"]
        node = (await plain.call_tool("place_on_canvas", {"run_id": run_id, "project_id": project_id})
                ).structured_content["placed"][0]["node_id"]
        await plain.call_tool("patch_canvas", {"project_id": project_id,
                                               "diagram": f'graph LR\n  p1["Prompt (text)"]\n  p1 --> {node}'})
        calls = [("get_run", {"run_id": run_id}), ("list_runs", {}), ("read_canvas", {"project_id": project_id}),
                 ("list_models", {"type": "image"})]
        added = {}
        for tool, args in calls:
            without, with_apps = dump(await plain.call_tool(tool, args)), dump(await host.call_tool(tool, args))
            if tool == "list_runs":  # ages tick between the two calls
                for rows in (without, with_apps):
                    rows["structuredContent"]["runs"] = [r[:-1] for r in rows["structuredContent"]["runs"]]
                    rows["content"] = []
            assert META_KEY not in without.get("_meta", {}), tool  # 0 bytes more without Apps
            extra = with_apps.get("_meta", {}).pop(META_KEY, None)
            assert with_apps == without, tool  # everything else is identical
            added[tool] = size(extra) if extra is not None else 0
        assert added["read_canvas"] > 0 and max(added.values()) <= MAX_META_BYTES, added
        [meta] = [dump(await host.call_tool("read_canvas", {"project_id": project_id}))["_meta"][META_KEY]]
        assert meta["edges"] == [["p1", node, None]]

        plain_tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in (await plain.list_tools()).tools]
        host_tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in (await host.list_tools()).tools]
    assert plain_tools == host_tools
    for tool in plain_tools:  # the only addition to tools/list: the pointer to the app, on the bound tools
        expected = {"ui": {"resourceUri": APP_URI}} if tool["name"] in BOUND_TOOLS else None
        assert tool.get("_meta") == expected, tool["name"]
    assert {t["name"] for t in plain_tools} >= BOUND_TOOLS


async def test_the_app_resource_is_one_small_self_contained_html_file():
    async with Client(create_server(settings(sandbox=True), connect=build_client), extensions=[APPS]) as client:
        [entry] = [r for r in (await client.list_resources()).resources if r.uri == APP_URI]
        [content] = (await client.read_resource(APP_URI)).contents
    assert entry.mime_type == content.mime_type == "text/html;profile=mcp-app"
    html = content.text
    assert len(html.encode()) <= 200_000
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html, re.IGNORECASE)  # nothing fetched
    assert "@import" not in html and not re.search(r"url\((?!#)", html)  # only the arrowhead marker, in-document
    assert not re.search(r"\.innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", html)


def test_the_csp_allows_flora_media_origins_only_and_nothing_for_the_embedded_sandbox():
    assert media_origins(settings(sandbox=True)) == []
    assert media_origins(settings(sandbox=False, api_key="sk_test")) == ["https://app.flora.ai"]
    served = settings(sandbox=False, api_key="sk_test", base_url="http://127.0.0.1:8765/api/v1")
    assert media_origins(served) == ["http://127.0.0.1:8765"]  # `flora-mcp sandbox` serves its files there
    cdn = settings(sandbox=False, api_key="sk_test", media_origins="https://media.flora.ai/, https://cdn.flora.ai")
    assert media_origins(cdn) == ["https://media.flora.ai", "https://cdn.flora.ai"]
    html = app_html(cdn)
    assert '"mediaOrigins":["https://media.flora.ai","https://cdn.flora.ai"]' in html
    hostile = settings(sandbox=False, api_key="sk_test", media_origins="https://a.example/</script><script>x()")
    assert "</script><script>x()" not in app_html(hostile)


async def test_the_resource_declares_the_media_origins_as_its_csp():
    cdn = settings(sandbox=False, api_key="sk_test", media_origins="https://media.flora.ai")
    async with Client(create_server(cdn), extensions=[APPS]) as client:
        [content] = (await client.read_resource(APP_URI)).contents
    assert content.meta["ui"]["csp"] == {"resourceDomains": ["https://media.flora.ai", "data:"]}
    async with Client(create_server(settings(sandbox=True), connect=build_client), extensions=[APPS]) as client:
        [content] = (await client.read_resource(APP_URI)).contents
    assert content.meta["ui"]["csp"] == {"resourceDomains": ["data:"]}  # previews and resources: no network


def test_the_canvas_graph_stays_under_2_kb_and_says_what_it_left_out():
    nodes = "\n".join(f'  n{i}["Node {i} (image)"]' for i in range(200))
    edges = "\n".join(f"  n{i} -->|a long edge label {i}| n{i + 1}" for i in range(199))
    graph = canvas_graph(f"graph TD\n{nodes}\n{edges}")
    assert graph is not None and size(graph) <= MAX_META_BYTES
    assert graph["direction"] == "TD" and graph["truncated"] == 199 - len(graph["edges"]) > 0
    assert canvas_graph("not mermaid") is None and canvas_graph(None) is None
