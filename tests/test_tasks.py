"""MCP Tasks (io.modelcontextprotocol/tasks, 2026-07-28): a paid start answered with a task handle."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client import Client, advertise
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter

from flora_mcp.ledger import open_ledger
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from tests.helpers import first_ids, settings

TASKS = "io.modelcontextprotocol/tasks"
ANY = TypeAdapter(dict[str, Any])


class Raw(types.Request[dict | None, str]):
    method: str
    params: dict | None = None


async def send(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A raw request: the SDK client stamps its declared extensions into each request's _meta."""
    return await client.session.send_request(Raw(method=method, params=params), ANY)


def served(sandbox: Sandbox, ledger, key: str = "sk_sandbox_demo", *, opt_in: bool = True) -> Client:
    """An in-memory 2026-07-28 session on a server with its own FLORA key, over a shared ledger; the
    client declares the tasks extension unless opt_in=False."""
    return Client(create_server(settings(), client=sandbox.client(key), ledger=ledger),
                  extensions=[advertise(TASKS, {})] if opt_in else None)


async def _video_args(client: Client) -> dict[str, Any]:
    ws, prj = await first_ids(client)
    return {"type": "video", "prompt": "a fox", "model": "t2v-seedance-1-lite", "workspace_id": ws, "project_id": prj}


def _status_reads(sandbox: Sandbox) -> int:
    return sum(1 for _, m, p in sandbox.state.request_log if m == "GET" and p.startswith("/runs/"))


async def test_a_start_becomes_a_task_that_completes_with_outputs_and_no_get_run():
    sandbox, ledger = Sandbox(speed=30), open_ledger("memory:")
    async with served(sandbox, ledger) as client:
        assert client.protocol_version == "2026-07-28"
        created = await send(client, "tools/call", {"name": "start_generation", "arguments": await _video_args(client)})
        assert created["resultType"] == "task" and created["status"] == "working"
        assert len(created["taskId"]) >= 32 and created["pollIntervalMs"] > 0
        seen = []
        with anyio.fail_after(20):
            while True:
                task = await send(client, "tasks/get", {"taskId": created["taskId"]})
                seen.append(task["status"])
                if task["status"] != "working":
                    break
                await anyio.sleep(0.5)
    assert seen[0] == "working" and task["status"] == "completed" and task["resultType"] == "complete"
    answer = task["result"]["structuredContent"]
    assert answer["status"] == "completed" and answer["outputs"] and answer["idempotency_key"]
    assert not task["result"].get("isError")


async def test_a_client_that_did_not_opt_in_gets_the_ordinary_result():
    sandbox, ledger = Sandbox(speed=200), open_ledger("memory:")
    async with served(sandbox, ledger, opt_in=False) as client:
        result = await send(client, "tools/call", {"name": "start_generation",
                                                   "arguments": await _video_args(client) | {"wait_seconds": 5}})
        assert "resultType" not in result or result["resultType"] == "complete"
        assert result["structuredContent"]["status"] == "completed"
        with pytest.raises(MCPError) as refused:
            await send(client, "tasks/get", {"taskId": "x" * 32})
        assert refused.value.error.code == -32021


async def test_another_users_task_is_not_found_and_another_process_answers_for_its_owner():
    """Three servers on one ledger: the task's maker, another user, and the same user elsewhere."""
    sandbox, ledger = Sandbox(speed=30), open_ledger("memory:")
    async with served(sandbox, ledger) as maker:
        created = await send(maker, "tools/call", {"name": "start_generation", "arguments": await _video_args(maker)})
    async with served(sandbox, ledger, "sk_sandbox_someone_else") as stranger:
        with pytest.raises(MCPError) as missing:
            await send(stranger, "tasks/get", {"taskId": created["taskId"]})
        assert missing.value.error.code == types.INVALID_PARAMS and "not found" in missing.value.error.message
    async with served(sandbox, ledger) as elsewhere:
        with anyio.fail_after(20):
            while (task := await send(elsewhere, "tasks/get", {"taskId": created["taskId"]}))["status"] == "working":
                await anyio.sleep(0.5)
        reads = _status_reads(sandbox)
        again = await send(elsewhere, "tasks/get", {"taskId": created["taskId"]})
    assert task["status"] == "completed" and again == task
    assert _status_reads(sandbox) == reads  # a finished task answers from its record


async def test_cancel_stops_the_waiting_and_says_the_run_goes_on_and_is_charged():
    sandbox, ledger = Sandbox(speed=1), open_ledger("memory:")
    async with served(sandbox, ledger) as client:
        created = await send(client, "tools/call", {"name": "start_generation", "arguments": await _video_args(client)})
        ack = await send(client, "tasks/cancel", {"taskId": created["taskId"]})
        assert {k: v for k, v in ack.items() if k != "_meta"} == {"resultType": "complete"}  # an empty ack
        task = await send(client, "tasks/get", {"taskId": created["taskId"]})
    [run_id] = [r for a, r, _ in sandbox.state.charges] or [sandbox.state.runs and next(iter(sandbox.state.runs))]
    assert task["status"] == "cancelled"
    assert run_id in task["statusMessage"] and "charged" in task["statusMessage"]


async def test_get_run_is_task_capable_and_a_refused_start_completes_at_once_with_its_error():
    sandbox, ledger = Sandbox(speed=30), open_ledger("memory:")
    async with served(sandbox, ledger, opt_in=False) as plain:
        args = await _video_args(plain)
        started = (await plain.call_tool("start_generation", args | {"wait_seconds": 0})).structured_content
    async with served(sandbox, ledger) as client:
        created = await send(client, "tools/call", {"name": "get_run", "arguments": {"run_id": started["run_id"]}})
        assert created["resultType"] == "task"
        refused = await send(client, "tools/call", {"name": "start_generation",
                                                    "arguments": args | {"model": "no-such-model"}})
        task = await send(client, "tasks/get", {"taskId": refused["taskId"]})
    assert refused["status"] == "completed" and task["result"]["isError"]
