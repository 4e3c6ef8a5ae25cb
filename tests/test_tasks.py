"""MCP Tasks (io.modelcontextprotocol/tasks, 2026-07-28): a paid start answered with a task handle."""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client import Client, advertise
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter

from flora_mcp.ledger import open_ledger
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from tests.helpers import first_ids, hosted, running_sandbox, settings

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


@pytest.mark.slow  # over 3 s: a sandbox run followed to its end as a task
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


@pytest.mark.slow  # over 3 s: a sandbox run followed to its end as a task
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


@pytest.mark.slow
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


# --- a raw 2026-07-28 client over HTTP, and a task that outlives its process ---------------------------
def _raw(base: str, method: str, params: dict[str, Any], name: str) -> dict[str, Any]:
    """One 2026-07-28 request as bytes on the wire: headers, _meta capabilities, no SDK."""
    meta = {"io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}},
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "Authorization": "Bearer sk_sandbox_demo", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": method, "Mcp-Name": name}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params | {"_meta": meta}}
    answer = httpx2.post(f"{base}/mcp", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.slow
def test_a_raw_client_task_is_answered_by_a_second_process_after_the_first_is_killed(tmp_path):
    state = {"FLORA_STATE_URL": f"sqlite:///{tmp_path}/ledger.sqlite3", "FLORA_RATE_LIMIT": "0"}
    with running_sandbox(speed=10) as flora:  # the 45 s video takes ~4.5 s
        env = state | {"FLORA_BASE_URL": flora}
        with hosted(**env) as (second, _):
            with hosted(**env) as (first, first_server):
                ws = _raw(first, "tools/call", {"name": "list_workspaces", "arguments": {}}, "list_workspaces")
                ws_id = ws["result"]["structuredContent"]["workspaces"][0]["workspace_id"]
                projects = _raw(first, "tools/call", {"name": "list_projects", "arguments": {"workspace_id": ws_id}},
                                "list_projects")["result"]["structuredContent"]["projects"]
                created = _raw(first, "tools/call", {"name": "start_generation", "arguments": {
                    "type": "video", "prompt": "a raw fox", "model": "t2v-seedance-1-lite", "workspace_id": ws_id,
                    "project_id": projects[0]["project_id"]}}, "start_generation")["result"]
                assert created["resultType"] == "task" and created["status"] == "working"
                first_server.proc.kill()  # the process that made the task is gone
            deadline = time.monotonic() + 30
            while True:
                task = _raw(second, "tasks/get", {"taskId": created["taskId"]}, created["taskId"])["result"]
                if task["status"] != "working" or time.monotonic() > deadline:
                    break
                time.sleep(task["pollIntervalMs"] / 1000)
    assert task["status"] == "completed", task
    assert task["result"]["structuredContent"]["status"] == "completed"
    assert task["result"]["structuredContent"]["outputs"]
