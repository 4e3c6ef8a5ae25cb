"""The official SDK client on each transport and each protocol revision it speaks."""

from __future__ import annotations

import sys

import pytest
from mcp.client import Client
from mcp.client import session as client_session
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters

from tests.helpers import DEMO_KEY, clean_env, generate, hosted, mcp_http

pytestmark = pytest.mark.slow  # flora-mcp in a process, on every transport

REVISIONS = ["2025-06-18", "2025-11-25", "2026-07-28"]


@pytest.fixture(scope="module")
def http_server():
    with hosted("--sandbox", FLORA_RATE_LIMIT="0") as (base, _):
        yield base


def _client(transport: str, base: str, revision: str, monkeypatch) -> Client:
    if revision == "2026-07-28":
        mode = revision
    else:
        # The SDK's handshake offers its latest handshake revision; offer an older one to test that too.
        monkeypatch.setattr(client_session, "LATEST_HANDSHAKE_VERSION", revision)
        mode = "legacy"
    if transport == "stdio":
        params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp", "--sandbox"],
                                       env=clean_env())
        return Client(params, mode=mode)
    if transport == "sse":
        return Client(sse_client(f"{base}/sse", headers={"Authorization": f"Bearer {DEMO_KEY}"}), mode=mode)
    client = mcp_http(base, DEMO_KEY)
    client.mode = mode
    client.__post_init__()
    return client


@pytest.mark.parametrize("revision", REVISIONS)
@pytest.mark.parametrize("transport", ["stdio", "sse", "http"])
async def test_generation_on_every_transport_and_revision(transport, revision, http_server, monkeypatch):
    async with _client(transport, http_server, revision, monkeypatch) as client:
        assert client.protocol_version == revision
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"list_models", "start_generation", "get_run"} <= tools
        run = await generate(client, wait_seconds=20)
        assert run["status"] == "completed" and run["outputs"][0]["type"] == "imageUrl"
