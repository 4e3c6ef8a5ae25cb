"""The app without a host: one HTML page that shows the app against recorded tool results.

`flora-mcp demo --app` writes it after its sandbox session, so a newcomer sees what a host with MCP Apps
shows. A few lines of script stand in for the host: they answer the app's `ui/initialize`, hand each
frame its tool's input and result, and answer `resources/read` and `tools/call` from what the demo
recorded (anything else is answered with an error saying the page is a recording).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_HOST = """
const SHOWS = __SHOWS__, RESOURCES = __RESOURCES__, TOOLS = __TOOLS__;
const APP = __APP__;
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; media-src data:";
for (const show of SHOWS) {
  const box = document.createElement("section"), title = document.createElement("h2"), frame = document.createElement("iframe");
  title.textContent = show.tool + "(" + JSON.stringify(show.args) + ")";
  frame.setAttribute("sandbox", "allow-scripts");
  frame.title = "FLORA app: " + show.tool;
  box.append(title, frame);
  document.getElementById("shows").append(box);
  const post = (msg) => frame.contentWindow.postMessage(Object.assign({jsonrpc: "2.0"}, msg), "*");
  window.addEventListener("message", (event) => {
    if (event.source !== frame.contentWindow) return;
    const msg = event.data || {};
    if (msg.method === "ui/notifications/size-changed") frame.style.height = Math.ceil(msg.params.height) + 4 + "px";
    if (msg.method === "ui/notifications/initialized") {
      post({method: "ui/notifications/tool-input", params: {arguments: show.args}});
      post({method: "ui/notifications/tool-result", params: show.result});
    }
    if (msg.id === undefined || !msg.method) return;
    let result = null;
    if (msg.method === "ui/initialize") {
      result = {protocolVersion: "2026-01-26", hostInfo: {name: "flora-mcp demo page", version: "1"},
        hostCapabilities: {serverTools: {}, serverResources: {}},
        hostContext: {theme: matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light",
          toolInfo: {tool: {name: show.tool, inputSchema: {type: "object"}}}, displayMode: "inline"}};
    } else if (msg.method === "resources/read" && RESOURCES[msg.params.uri]) {
      result = {contents: [RESOURCES[msg.params.uri]]};
    } else if (msg.method === "tools/call" && TOOLS[msg.params.name]) {
      result = TOOLS[msg.params.name];
    }
    post(result ? {id: msg.id, result} : {id: msg.id, error: {code: -32601,
      message: "This page is a recording of the demo; connect flora-mcp to an MCP Apps host to " + msg.method}});
  });
  frame.srcdoc = APP.replace("<head>", '<head><meta http-equiv="Content-Security-Policy" content="' + CSP + '">');
}
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>FLORA app — flora-mcp demo</title>
<style>body{margin:0;padding:20px;font:14px system-ui,sans-serif;background:#eef0f3;color:#1b1b1f}
main{max-width:780px;margin:auto}h1{font-size:18px}h2{font:12px ui-monospace,monospace;color:#5d5f66;margin:18px 0 6px;
overflow-wrap:anywhere}iframe{width:100%;height:240px;border:0;border-radius:12px;background:#fff;display:block}</style>
</head><body><main><h1>What an MCP Apps host shows for the demo's sandbox run</h1>
<p>Written by <code>flora-mcp demo --app</code>: the app (<code>ui://flora/app.html</code>) in sandboxed frames, fed the
recorded tool results. Buttons that would start or change something answer that this is a recording.</p>
<div id="shows"></div></main>
<script>__HOST__</script>
</body></html>
"""


def _js(value: Any) -> str:
    """JSON safe inside <script>: no "</" can end it."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def static_page(app_html: str, shows: list[dict[str, Any]], resources: dict[str, dict[str, Any]],
                tools: dict[str, dict[str, Any]]) -> str:
    """A page showing the app once per entry of `shows` ({tool, args, result}); `resources` answers
    resources/read by URI and `tools` answers tools/call by name (results as the wire carries them)."""
    values = {"SHOWS": _js(shows), "RESOURCES": _js(resources), "TOOLS": _js(tools), "APP": _js(app_html)}
    host = re.sub(r"__(SHOWS|RESOURCES|TOOLS|APP)__", lambda m: values[m.group(1)], _HOST)  # one pass: data stays data
    return _PAGE.replace("__HOST__", host)


async def write_demo_page(client: Any, path: Path, args: dict[str, Any], run_id: str, project_id: str) -> None:
    """Record what the app needs for the demo's finished run (through `client`, an MCP client that
    advertised Apps) and write the page: the run as start_generation answers it, the canvas, the runs."""
    from . import APP_URI

    def wire(result: Any) -> dict[str, Any]:
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    [app] = (await client.read_resource(APP_URI)).contents
    run = wire(await client.call_tool("get_run", {"run_id": run_id}))
    canvas = wire(await client.call_tool("read_canvas", {"project_id": project_id}))
    runs = wire(await client.call_tool("list_runs", {}))
    resources = {}
    for output in run.get("structuredContent", {}).get("outputs", []):
        uri = f"flora://runs/{run_id}/outputs/{output['id']}"
        [content] = (await client.read_resource(uri)).contents
        resources[uri] = content.model_dump(mode="json", by_alias=True, exclude_none=True)
    shows = [{"tool": "start_generation", "args": args, "result": run},
             {"tool": "read_canvas", "args": {"project_id": project_id}, "result": canvas},
             {"tool": "list_runs", "args": {}, "result": runs}]
    tools = {"get_run": run, "read_canvas": canvas, "list_runs": runs}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(static_page(app.text, shows, resources, tools), encoding="utf-8")
