"""The fault matrix: requested generations vs charges under every failure we know, and whether every
charged run's ID reached the agent (in an answer, or in list_runs).

    python benchmarks/fault_matrix.py

FLORA is the sandbox over real HTTP on loopback (so client timeouts are real); flora-mcp runs
in-process behind the official MCP client. The agent follows each answer's advice: on "unknown" it
calls again with the idempotency_key it was given; on an error it calls again with the same
arguments; a call cut by its client (openai-agents' 5 s default) is retried once. Numbers are
reported, never asserted; the same scenarios are tests in tests/test_paid.py.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mcp.client import Client  # noqa: E402

from flora_mcp.client import FloraClient  # noqa: E402
from flora_mcp.config import Settings  # noqa: E402
from flora_mcp.retry import RetryPolicy  # noqa: E402
from flora_mcp.server import create_server  # noqa: E402
from tests.helpers import running_sandbox  # noqa: E402


@dataclass
class Row:
    name: str
    faults: dict[str, Any]
    mode: str = "conflict"  # the sandbox's idempotency behaviour: 409 (spec) or replay (docs)
    generations: int = 4
    timeout: float = 30.0  # FLORA_TIMEOUT
    cut_after: float | None = None  # the MCP client gives up on a call after this many seconds
    model: str = "t2i-flux-2-schnell"
    kind: str = "image"
    reached: set[str] = field(default_factory=set)
    accepted_without_id: int = 0
    errors: int = 0


ROWS = [
    Row("no faults", {}),
    Row("drop after processing (409)", {"drop_after_processing": 4, "only_paths": ["/generate"]}),
    Row("drop after processing (replay)", {"drop_after_processing": 4, "only_paths": ["/generate"]}, mode="replay"),
    Row("503 on POST x2", {"server_errors": 8, "only_paths": ["/generate"]}),
    Row("429 + Retry-After", {"rate_limit": 3, "rate_window": 2.0}),
    Row("answer later than FLORA_TIMEOUT (409)", {"slow_answers": 4, "slow_answer_seconds": 1.5,
                                                  "only_paths": ["/generate"]}, timeout=0.5),
    Row("answer later than FLORA_TIMEOUT (replay)", {"slow_answers": 4, "slow_answer_seconds": 1.5,
                                                     "only_paths": ["/generate"]}, mode="replay", timeout=0.5),
    Row("GET /runs failing after the POST", {"server_errors": 40, "only_paths": ["/runs/*"]}),
    Row("client cuts the call at 5 s, retries", {}, generations=2, cut_after=5.0, kind="video",
        model="t2v-seedance-1-lite"),
]


async def control(base: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx2.AsyncClient() as http:
        return (await http.post(base.removesuffix("/api/v1") + "/_sandbox", json=body)).json()


async def run_row(base: str, row: Row, n: int) -> tuple[int, set[str]]:
    key = f"sk_sandbox_matrix{n}"  # each row its own FLORA account: its charges are its own
    retry = RetryPolicy(max_retries=2, max_total=10.0)
    flora = FloraClient(key, base_url=base, timeout=row.timeout, retry=retry)
    settings = Settings(state_url="memory:", wait_seconds=10.0, timeout=row.timeout)
    async with Client(create_server(settings, client=flora)) as agent:
        ws = (await agent.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        prj = (await agent.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]
        await agent.call_tool("list_models", {})
        await control(base, {"faults": row.faults, "idempotency_mode": row.mode})
        try:
            for g in range(row.generations):
                args = {"type": row.kind, "prompt": f"{row.name} #{g}", "model": row.model, "workspace_id": ws,
                        "project_id": prj["project_id"], "wait_seconds": 8 if row.cut_after else 2}
                await follow_advice(agent, args, row)
        finally:
            await control(base, {"faults": {"drop_after_processing": 0, "server_errors": 0, "slow_answers": 0,
                                            "rate_limit": None, "only_paths": []}, "idempotency_mode": "conflict"})
        listed = (await agent.call_tool("list_runs", {"limit": 100})).structured_content
        row.reached |= {r[0] for r in listed["runs"] if r[0].startswith("run_")}
    await flora.aclose()
    charges = [c for c in (await control(base, {}))["charges"] if c["account"] == _fingerprint(key)]
    return len(charges), {c["run_id"] for c in charges}


def _fingerprint(key: str) -> str:
    from flora_mcp.sandbox.state import fingerprint

    return fingerprint(key)


async def follow_advice(agent: Client, args: dict[str, Any], row: Row) -> None:
    for _ in range(4):  # an agent gives up after a few tries
        try:
            result = await agent.call_tool("start_generation", args, read_timeout_seconds=row.cut_after)
        except Exception:  # the client cut the call: the agent retries the same call
            await anyio.sleep(0.2)
            continue
        data = result.structured_content or {}
        if data.get("run_id"):
            row.reached.add(data["run_id"])
        if result.is_error:
            row.errors += 1
            continue  # an error: the agent calls again with the same arguments
        if data.get("status") == "unknown" and not data.get("run_id"):
            args = args | {"idempotency_key": data["idempotency_key"]}  # as the answer advises
            continue
        if data.get("status") == "accepted":
            row.accepted_without_id += 1
        return


async def main() -> None:
    for name in ("flora_mcp", "httpx2", "httpx"):  # the table is the output; retries are expected
        logging.getLogger(name).setLevel(logging.WARNING)
    with running_sandbox(speed=20) as base:
        print(f"{'scenario':42} {'asked':>5} {'charged':>7} {'IDs reached':>11} {'accepted, ID unknown':>20}")
        totals = [0, 0, 0]
        for n, row in enumerate(ROWS):
            started = time.monotonic()
            charges, charged_ids = await run_row(base, row, n)
            reached = len(charged_ids & row.reached)
            totals = [totals[0] + row.generations, totals[1] + charges, totals[2] + reached]
            flag = "" if charges == row.generations and reached + row.accepted_without_id == charges else "  <-- check"
            print(f"{row.name:42} {row.generations:>5} {charges:>7} {reached:>11} {row.accepted_without_id:>20}"
                  f"   ({time.monotonic() - started:.1f} s){flag}")
        print(f"{'total':42} {totals[0]:>5} {totals[1]:>7} {totals[2]:>11}")


if __name__ == "__main__":
    anyio.run(main)
