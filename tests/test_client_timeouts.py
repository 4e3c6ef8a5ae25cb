"""The default wait ends before the calling client cuts the call (issue 23): a client that cuts at 5 s
gets an answer with the run and its next step, never a timeout error."""

from __future__ import annotations

import time
from types import SimpleNamespace

import anyio
import pytest
from mcp.client import Client
from mcp_types import Implementation

from flora_mcp.config import Settings
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from flora_mcp.server.client_timeouts import client_timeout, default_wait


def _ctx(name: str | None):
    params = None if name is None else SimpleNamespace(client_info=SimpleNamespace(name=name))
    return SimpleNamespace(request_context=SimpleNamespace(session=SimpleNamespace(client_params=params)))


def test_the_default_wait_follows_the_clients_known_timeout():
    default = Settings(state_url="memory:")
    assert default_wait(default, _ctx("mcp")) == 4.0  # the Python SDK's name: openai-agents, google-adk cut at 5 s
    assert default_wait(default, _ctx("google-adk")) == 4.0  # names itself; cuts stdio calls at 5 s
    assert default_wait(default, _ctx("claude-ai")) == 25.0
    assert default_wait(default, _ctx("fastmcp")) == 25.0
    assert default_wait(default, _ctx("Some Host")) == 25.0  # unknown: the configured default
    assert default_wait(default, _ctx(None)) == 25.0
    assert client_timeout("claude-code-vscode") == 60.0
    # an operator's FLORA_WAIT_SECONDS always wins
    assert default_wait(Settings(state_url="memory:", wait_seconds=12), _ctx("mcp")) == 12


@pytest.mark.slow
async def test_a_client_that_cuts_at_5_s_gets_the_run_not_a_timeout():
    slow = Sandbox(speed=1)  # a 45 s video really takes 45 s
    async with Client(create_server(Settings(state_url="memory:"), client=slow.client()),
                      client_info=Implementation(name="mcp", version="1")) as client:
        ws = (await client.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        prj = (await client.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]
        began = time.monotonic()
        with anyio.fail_after(5):  # what openai-agents and google-adk do by default
            result = await client.call_tool("start_generation", {
                "type": "video", "prompt": "waves", "model": "t2v-seedance-1-lite", "workspace_id": ws,
                "project_id": prj["project_id"]})
    data = result.structured_content
    assert not result.is_error and time.monotonic() - began < 5
    assert data["status"] in ("pending", "running") and data["run_id"] and "get_run" in data["next"]
