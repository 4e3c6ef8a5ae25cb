"""The hosted endpoint on loopback: both transports with the official SDK client, keys per user,
401/403/413/429 paths, and two replicas serving one client."""

from __future__ import annotations

import json

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client

from tests.helpers import DEMO_KEY, generate, hosted, mcp_http, running_sandbox

pytestmark = pytest.mark.slow  # every test here starts flora-mcp in a process


async def test_streamable_http_and_sse_complete_a_generation():
    with hosted("--sandbox") as (base, _):
        async with mcp_http(base, DEMO_KEY) as client:
            assert (await generate(client))["status"] == "completed"
        async with Client(sse_client(f"{base}/sse", headers={"Authorization": f"Bearer {DEMO_KEY}"})) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "start_generation" in tools
            assert (await generate(client))["status"] == "completed"


def test_missing_bad_key_origin_body_and_rate_limits():
    with hosted("--sandbox", FLORA_RATE_LIMIT="5") as (base, proc):
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        r = httpx2.post(f"{base}/mcp", json=body, headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in r.json()["message"]
        r = httpx2.post(f"{base}/mcp", json=body, headers=headers | {"Authorization": "Bearer sk_live_wrong"})
        assert r.status_code == 401 and "rejected" in r.json()["message"]
        r = httpx2.get(f"{base}/sse", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
        auth = headers | {"Authorization": f"Bearer {DEMO_KEY}"}
        r = httpx2.post(f"{base}/mcp", json=body, headers=auth | {"Origin": "http://evil.example"})
        assert r.status_code == 403
        r = httpx2.post(f"{base}/mcp", content=b"{" + b" " * 2_000_000 + b"}", headers=auth)
        assert r.status_code == 413
        codes = [httpx2.post(f"{base}/mcp", json=body, headers=auth).status_code for _ in range(4)]
        assert codes[-1] == 429
        r = httpx2.post(f"{base}/mcp", json=body, headers=auth)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert httpx2.get(f"{base}/healthz").status_code == 200  # health is never gated
    log = proc.stderr()
    lines = [json.loads(line[line.index("{"):]) for line in log.splitlines() if "flora_mcp.access" in line]
    assert any(entry["status"] == 401 for entry in lines) and any(entry["status"] == 429 for entry in lines)
    assert DEMO_KEY not in log and "sk_live_wrong" not in log


async def test_each_users_key_stays_theirs_under_concurrency():
    """24 users at once on one server: each sees only their own workspaces and runs."""
    users = [f"sk_sandbox_user_{i:02d}" for i in range(24)]
    seen: dict[str, dict] = {}
    with hosted("--sandbox", FLORA_RATE_LIMIT="0") as (base, proc):
        async def one(key: str) -> None:
            async with mcp_http(base, key) as client:
                ws = (await client.call_tool("list_workspaces", {})).structured_content["workspaces"]
                run = await generate(client)
                seen[key] = {"workspaces": {w["workspace_id"] for w in ws}, "run": run["run_id"],
                             "status": run["status"]}

        async with anyio.create_task_group() as tg:
            for key in users:
                tg.start_soon(one, key)
        # A user cannot read another user's run.
        async with mcp_http(base, users[0]) as client:
            other = await client.call_tool("get_run", {"run_id": seen[users[1]]["run"], "wait_seconds": 0})
            assert other.is_error and "not found" in other.content[0].text.lower()
    all_workspaces = [w for s in seen.values() for w in s["workspaces"]]
    assert len(seen) == 24 and len(all_workspaces) == len(set(all_workspaces)) == 24
    assert all(s["status"] == "completed" for s in seen.values())
    log = proc.stderr()
    assert not any(key in log for key in users)


class _Alternate(httpx2.AsyncBaseTransport):
    """Sends each request to the next replica in turn (a load balancer with no stickiness)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.count = 0
        self.inner = httpx2.AsyncHTTPTransport()
        self.used: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[self.count % len(self.ports)]
        self.count += 1
        self.used.append(port)
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)


async def test_two_replicas_serve_one_client():
    """Stateless Streamable HTTP: requests alternate between two server processes sharing one FLORA."""
    with running_sandbox(speed=100) as flora_url:
        env = {"FLORA_BASE_URL": flora_url, "FLORA_RATE_LIMIT": "0"}
        with hosted(**env) as (a, _), hosted(**env) as (b, _):
            ports = [int(a.rsplit(":", 1)[1]), int(b.rsplit(":", 1)[1])]
            transport = _Alternate(ports)
            async with mcp_http(a, DEMO_KEY, transport=transport) as client:
                started = await generate(client, wait_seconds=0)
                result = await client.call_tool("get_run", {"run_id": started["run_id"], "wait_seconds": 20})
            assert result.structured_content["status"] == "completed"
            assert set(transport.used) == set(ports) and transport.count >= 5
