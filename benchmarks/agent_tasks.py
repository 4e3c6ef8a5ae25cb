"""The nine agent tasks of issue 14, replayed through the MCP client on the sandbox.

    python benchmarks/agent_tasks.py

Starts `flora-mcp --sandbox` over stdio with the official SDK client and does what an agent that
knows only tools/list would do for each task, then prints the calls made and the bytes of every
result (the JSON of each tools/call answer, as a client receives it) beside the issue's bounds.
Numbers are reported, never asserted; nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent

# task -> (bound in bytes, what the issue asks); tasks without a bound are reported only
BOUNDS = {
    "voice-over": (4_000, "answer < 4 KB by default"),
    "four variations": (60_000, "< 60 KB with previews"),
    "what have we spent": (2_000, "one call < 2 KB"),
}


class Agent:
    """Counts calls and result bytes per task."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.rows: list[dict[str, Any]] = []
        self.task: dict[str, Any] = {}

    def start(self, name: str) -> None:
        self.task = {"task": name, "calls": 0, "bytes": 0, "images": 0, "errors": 0, "notes": []}
        self.rows.append(self.task)

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args or {})
        wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.task["calls"] += 1
        self.task["bytes"] += len(json.dumps(wire, separators=(",", ":")))
        self.task["images"] += sum(1 for c in result.content if c.type == "image")
        if result.is_error:
            self.task["errors"] += 1
            self.task["notes"].append(f"refused: {result.content[0].text[:300]}")
        return result.structured_content or {}

    async def until_done(self, answer: dict[str, Any]) -> dict[str, Any]:
        """An unfinished run is followed with get_run, as the answer's `next` says."""
        for _ in range(10):
            if answer.get("status") not in ("pending", "running"):
                return answer
            answer = await self.call("get_run", {"run_id": answer["run_id"], "wait_seconds": 25})
        return answer


def _png(width: int, height: int) -> bytes:
    """A small PNG for the upload task (two colour halves)."""
    rows = b"".join(b"\0" + (b"\x20\x60\xc0" * (width // 2) + b"\xe0\xa0\x20" * (width - width // 2))
                    for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


async def replay(agent: Agent, tools: set[str], upload_path: Path) -> None:
    agent.start("find where to work")
    workspaces = await agent.call("list_workspaces")
    workspace_id = workspaces["workspaces"][0]["workspace_id"]
    projects = await agent.call("list_projects", {"workspace_id": workspace_id})
    project_id = projects["projects"][0]["project_id"]
    where = {"workspace_id": workspace_id, "project_id": project_id}

    agent.start("hero image")
    await agent.call("list_models", {"type": "image"})
    hero = await agent.until_done(await agent.call("start_generation", {
        "type": "image", "prompt": "Hero banner: a ceramic mug on a sunlit oak table, soft shadows",
        "model": "t2i-flux-2-pro", "params": [{"name": "aspect_ratio", "value": "16:9"}], **where}))

    agent.start("video")
    video = await agent.until_done(await agent.call("start_generation", {
        "type": "video", "prompt": "Slow pan across the mug as steam rises", "model": "t2v-seedance-1-lite",
        "params": [{"name": "duration", "value": "5"}], **where}))
    agent.task["notes"].append(f"video status {video.get('status')}")

    agent.start("voice-over")
    await agent.until_done(await agent.call("start_generation", {
        "type": "audio", "prompt": "Meet the mug that keeps your coffee warm all morning.", **where}))

    agent.start("text on an image")
    await agent.until_done(await agent.call("run_action", {
        "action_id": "add-text-to-image", "inputs": [hero["outputs"][0]],  # the output object, as is
        "params": [{"name": "text", "value": "Warm all morning"}], **where}))

    agent.start("four variations")
    await agent.until_done(await agent.call("start_generation", {
        "type": "image", "prompt": "Four square variations of the mug in different glazes", "model": "t2i-flux-2-pro",
        "params": [{"name": "num_images", "value": "4"}, {"name": "aspect_ratio", "value": "1:1"}], **where}))

    agent.start("what have we spent")
    if "list_runs" in tools:
        await agent.call("list_runs", {})
    else:
        agent.task["notes"].append("TODO: list_runs comes with the ledger (issue 11); not in this build")
        agent.task["calls"] = None

    agent.start("a technique")
    techniques = await agent.call("list_techniques", {"workspace_id": workspace_id})
    poster = next(t for t in techniques["techniques"] if t["id"] == "tech_headline_poster")
    await agent.until_done(await agent.call("run_technique", {
        "technique_id": poster["id"], "workspace_id": workspace_id,
        "inputs": [{"name": "headline", "value": "Warm all morning"}]}))

    agent.start("upload + rotate")
    asset = await agent.call("upload_asset", {"path": str(upload_path), "workspace_id": workspace_id})
    await agent.until_done(await agent.call("run_action", {
        "action_id": "rotate-image", "inputs": [asset],  # upload_asset's answer, as is
        "params": [{"name": "angle", "value": "90"}], **where}))

    agent.start("a new project")
    await agent.call("create_project", {"name": "Mug launch", "workspace_id": workspace_id})

    # Not one of the nine: the sloppy inputs the agent tried next. Refusals are expected here
    # (each should name the fix and say nothing was charged); the other calls should just work.
    agent.start("sloppy inputs")
    image = {"type": "image", "prompt": "a mug", "model": "t2i-flux-2-pro", "dry_run": True}
    await agent.call("start_generation", {**image, **where, "aspect_ratio": "16:9"})
    await agent.call("start_generation", {**image, **where, "params": {"aspect_ratio": "square"}})
    await agent.call("start_generation", {**image, **where, "prompt": "a mug " * 4000})
    await agent.call("start_generation", {"type": "audio", "prompt": "hi", "model": "tts-elevenlabs-v3",
                                          "params": {"voice": "Roger"}, "dry_run": True, **where})
    await agent.call("start_generation", {**image, "project_id": project_id})  # no workspace_id
    await agent.call("run_action", {"action_id": "split-text", "inputs": [{"type": "text", "text": "a,b"}],
                                    "workspace_id": workspace_id})  # no project_id


async def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    env |= {"FLORA_SANDBOX_SPEED": "20", "PYTHONPATH": str(ROOT)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp", "--sandbox"], env=env)
    with tempfile.TemporaryDirectory() as folder:
        upload = Path(folder) / "product.png"
        upload.write_bytes(_png(200, 300))
        async with Client(params) as client:
            listed = (await client.list_tools()).tools
            tools_list_bytes = sum(len(json.dumps(t.model_dump(mode="json", by_alias=True, exclude_none=True),
                                                  separators=(",", ":"))) for t in listed)
            agent = Agent(client)
            await replay(agent, {t.name for t in listed}, upload)
    print(f"tools/list: {len(listed)} tools, {tools_list_bytes:,} bytes")
    print(f"{'task':22} {'calls':>5} {'bytes':>8} {'images':>6}  bound")
    for row in agent.rows:
        bound, says = BOUNDS.get(row["task"], (None, ""))
        calls = "TODO" if row["calls"] is None else row["calls"]
        verdict = "" if bound is None or row["calls"] is None else ("within" if row["bytes"] < bound else "OVER")
        if row["task"] == "video":
            bound, says, verdict = None, "answer includes an image", "yes" if row["images"] else "NO"
        print(f"{row['task']:22} {calls:>5} {row['bytes']:>8,} {row['images']:>6}  {says} {verdict}".rstrip())
        for note in row["notes"]:
            print(f"{'':22} {note}")
    print(f"total: {sum(r['calls'] or 0 for r in agent.rows)} calls, {sum(r['bytes'] for r in agent.rows):,} bytes; "
          f"errors: {sum(r['errors'] for r in agent.rows)}")


if __name__ == "__main__":
    anyio.run(main)
