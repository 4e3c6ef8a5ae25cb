"""`flora-mcp demo`: a scripted agent session against the embedded sandbox.

It drives the real server through the official MCP client, tool by tool, the way an agent would:
list_workspaces -> list_projects -> list_models -> start_generation (with progress) -> get_run, then
place_on_canvas -> read_canvas: the image lands on the project canvas, printed as Mermaid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_PROMPT = "A cinematic product photo of a ceramic mug on a sunlit table"


def _say(text: str) -> None:
    print(text, flush=True)


def _bar(progress: float, message: str | None) -> None:
    width = 30
    filled = int(width * min(max(progress, 0), 100) / 100)
    sys.stdout.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {progress:5.1f}%  {message or '':<24}")
    sys.stdout.flush()


async def run_demo(prompt: str = DEFAULT_PROMPT, output_dir: Path = Path("flora-output"), speed: float = 4.0,
                   app_page: Path | None = None) -> int:
    """`app_page`: also write the MCP App rendered against this session's run there (see server/app/page.py)."""
    from mcp.client import Client
    from mcp.client.extension import advertise

    from .config import Settings
    from .connect import build_client
    from .server import create_server

    settings = Settings(sandbox=True, sandbox_speed=speed, output_dir=output_dir.resolve(), api_key=None)
    server = create_server(settings, connect=build_client)

    async def call(client: Client, tool: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
        _say(f"\n> {tool}({json.dumps(args)})")
        result = await client.call_tool(tool, args, **kw)
        data = result.structured_content or {}
        if result.is_error:
            raise SystemExit(f"  ! {result.content[0].text}")
        return data

    async def progress(value: float, total: float | None, message: str | None) -> None:
        _bar(value * 100 / (total or 100), message)

    # Advertising MCP Apps changes nothing the demo prints; read_canvas then also carries the graph for the app.
    apps = [advertise("io.modelcontextprotocol/ui", {"mimeTypes": ["text/html;profile=mcp-app"]})] if app_page else None
    async with Client(server, extensions=apps) as client:
        tools = await client.list_tools()
        _say(f"Connected to {client.server_info.name if client.server_info else 'flora-mcp'} (embedded sandbox, "
             f"no key, no network); {len(tools.tools)} tools: {', '.join(t.name for t in tools.tools)}")

        workspaces = (await call(client, "list_workspaces", {}))["workspaces"]
        workspace = workspaces[0]
        _say(f"  {len(workspaces)} workspaces; using {workspace['workspace_id']} ({workspace['name']})")

        projects = await call(client, "list_projects", {"workspace_id": workspace["workspace_id"], "limit": 3})
        project = projects["projects"][0]
        _say(f"  {projects['total_estimate']} projects; using {project['project_id']} ({project['name']})")

        models = (await call(client, "list_models", {"type": "image"}))["models"]
        model = next((m for m in models if m["id"] == "t2i-flux-2-pro"), models[0])
        for m in models:
            _say(f"  {m['id']:<22} {m['name']:<20} {m['credits']:>3} credits ~{m['run_seconds']}s  {m['params']}")

        args = {
            "type": "image",
            "prompt": prompt,
            "workspace_id": workspace["workspace_id"],
            "project_id": project["project_id"],
            "model": model["id"],
            "params": {"aspect_ratio": "16:9"},
            "wait_seconds": 30,
        }
        run = await call(client, "start_generation", args, progress_callback=progress)
        _say("")
        while run.get("status") in ("pending", "running"):
            run = await call(client, "get_run", {"run_id": run["run_id"], "wait_seconds": 30}, progress_callback=progress)
            _say("")
        _say(f"  run {run['run_id']}: {run['status']}, charged ${run.get('charged_usd', 0):.3f}")
        if run["status"] != "completed":
            _say(f"  error: {run.get('error_message')}")
            return 1
        for output in run["outputs"]:
            _say(f"  output {output['id']}: {output['mime']} {output.get('size', '')}, {output.get('bytes', '?')} bytes")
            if output.get("path"):
                _say(f"\nSaved: {output['path']}")

        placed = await call(client, "place_on_canvas", {"run_id": run["run_id"], "project_id": project["project_id"]})
        _say(f"  on the canvas as node {', '.join(p['node_id'] for p in placed['placed'])}")
        canvas = await call(client, "read_canvas", {"project_id": project["project_id"]})
        _say(f"\nThe project canvas ({canvas['canvas_url']}):\n{canvas['diagram']}")
        if app_page is not None:
            from .server.app.page import write_demo_page

            await write_demo_page(client, app_page, args, run["run_id"], project["project_id"])
            _say(f"\nThe app as an MCP Apps host shows it: {app_page.resolve()}")
    return 0
