"""Shared fixtures: a sandbox, a FLORA client on it, and an MCP client session on the server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.client import Client

from flora_mcp._retry import RetryPolicy
from flora_mcp.config import Settings
from flora_mcp.sandbox import SANDBOX_API_KEY, ManualClock, Sandbox
from flora_mcp.server import create_server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock) -> Sandbox:
    """A sandbox on a hand-moved clock: runs advance only when a test says so."""
    return Sandbox(clock=clock)


@pytest.fixture
def fast_sandbox() -> Sandbox:
    """A sandbox on the real clock at 200x: an 8 s image finishes in about 0.05 s."""
    return Sandbox(speed=200)


@pytest.fixture
async def flora(sandbox: Sandbox):
    async with sandbox.client() as client:
        yield client


def settings(**overrides: Any) -> Settings:
    """Settings that ignore the developer's environment (no stray FLORA_* variables)."""
    base: dict[str, Any] = {"api_key": None, "workspace_id": None, "project_id": None, "output_dir": None,
                            "max_cost_per_run": None, "session_budget": None, "toolsets": "all", "read_only": False,
                            "wait_seconds": 10.0, "state_url": "memory:"}
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def make_session(fast_sandbox: Sandbox):
    """Open an in-memory MCP client session on a server wired to `fast_sandbox` (or another)."""

    def factory(sandbox: Sandbox | None = None, api_key: str | None = SANDBOX_API_KEY, **overrides: Any) -> Client:
        sb = sandbox or fast_sandbox
        configured = settings(**overrides)
        client = sb.client(api_key, timeout=configured.timeout, retry=RetryPolicy(max_retries=configured.max_retries))
        server = create_server(configured, client=client)
        return Client(server)

    return factory


async def call(client: Client, tool: str, args: dict[str, Any] | None = None, **kw: Any):
    """Call a tool; return (result, structured content)."""
    result = await client.call_tool(tool, args or {}, **kw)
    return result, result.structured_content or {}


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def first_ids(client: Client) -> tuple[str, str]:
    _, ws = await call(client, "list_workspaces")
    workspace_id = ws["workspaces"][0]["workspace_id"]
    _, pr = await call(client, "list_projects", {"workspace_id": workspace_id})
    return workspace_id, pr["projects"][0]["project_id"]


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


@pytest.fixture(scope="session")
def redis_url():
    """One real redis-server for the session; tests keep apart by using their own users and keys."""
    from tests.servers import running_redis

    with running_redis() as url:
        yield url
