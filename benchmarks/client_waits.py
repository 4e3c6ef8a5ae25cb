"""Which default wait serves each client best: calls and errors per finished run, measured.

    python benchmarks/client_waits.py

Drives the server in process over the official SDK client on the sandbox, time scaled down SCALE
times (an 8 s image finishes in 0.8 s, a 5 s client cut becomes 0.5 s). For each client's call timeout
(CLIENTS.md) and each policy for the default wait, an agent starts one run and follows it as the answers
say: a call cut by the client is an error the agent sees, then it repeats the call (the ledger answers
with the same run, so nothing is paid twice); an answer with a run still going is followed by get_run.
Prints calls and errors per finished run; nothing is asserted, nothing leaves the machine.
"""

from __future__ import annotations

import time

import anyio
from mcp.client import Client
from mcp_types import Implementation

from flora_mcp.config import Settings
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from flora_mcp.server.client_timeouts import CLIENT_TIMEOUTS, MARGIN, SHORTEST_WAIT

SCALE = 10.0
CLIENTS = [  # (who, clientInfo.name it sends, seconds it waits for one call)
    ("openai-agents", "mcp", 5.0),
    ("google-adk (stdio)", "google-adk", 5.0),
    ("llama-index-tools-mcp", "mcp", 30.0),
    ("pydantic-ai", "fastmcp", 300.0),
    ("Claude", "claude-ai", 60.0),
    ("fastmcp", "fastmcp", None),
]
RUNS = [("image", "t2i-flux-2-pro", 8), ("video", "t2v-seedance-1-lite", 45)]


def by_client(name: str) -> float:
    cut = CLIENT_TIMEOUTS.get(name)
    return 25.0 if cut is None else min(25.0, max(cut - MARGIN, SHORTEST_WAIT))


POLICIES = {"fixed 25 s": lambda name: 25.0, "short 4 s": lambda name: 4.0, "by clientInfo": by_client}


async def follow_one(kind: str, model: str, wait: float, cut: float | None, name: str) -> tuple[int, int, float]:
    sandbox = Sandbox(speed=SCALE)
    settings = Settings(state_url="memory:", wait_seconds=wait / SCALE)
    calls = errors = 0
    began = time.monotonic()
    async with Client(create_server(settings, client=sandbox.client()),
                      client_info=Implementation(name=name, version="1")) as client:
        ws = (await client.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        prj = (await client.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]
        start = {"type": kind, "prompt": "a mug on a table", "model": model, "workspace_id": ws,
                 "project_id": prj["project_id"]}
        answer: dict = {}
        for _ in range(40):
            calls += 1
            tool, args = ("get_run", {"run_id": answer["run_id"]}) if answer.get("run_id") else ("start_generation", start)
            try:
                with anyio.fail_after(cut / SCALE if cut else None):
                    result = await client.call_tool(tool, args)
            except TimeoutError:
                errors += 1  # the client cut the call: the agent saw an error and calls again
                continue
            answer = result.structured_content or {}
            if answer.get("status") in ("completed", "failed"):
                break
    return calls, errors, (time.monotonic() - began) * SCALE


async def main() -> None:
    print(f"{'client (cuts a call at)':34} {'run':6} " + " ".join(f"{p:>18}" for p in POLICIES))
    totals = {p: [0, 0, 0] for p in POLICIES}
    for who, name, cut in CLIENTS:
        for kind, model, seconds in RUNS:
            cells = []
            for policy, wait_for in POLICIES.items():
                calls, errors, _ = await follow_one(kind, model, wait_for(name), cut, name)
                totals[policy][0] += calls
                totals[policy][1] += errors
                totals[policy][2] += 1
                cells.append(f"{calls} calls {errors} err")
            label = f"{who} ({cut:g} s)" if cut else f"{who} (none)"
            print(f"{label:34} {kind:6} " + " ".join(f"{c:>18}" for c in cells))
    print(f"{'per finished run':41} " + " ".join(
        f"{t[0] / t[2]:>6.2f} c {t[1] / t[2]:>5.2f} err" for t in totals.values()))


if __name__ == "__main__":
    anyio.run(main)
