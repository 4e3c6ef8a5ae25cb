"""The stateless fast path answers exactly what the SDK's own transport answers, only cheaper.

Every request below goes to one bare SDK server twice — through the SDK's manager and through
`StatelessFastPath` — and the HTTP status and JSON-RPC messages must match. The hosted app is then
driven by the official client at every protocol revision, with progress notifications. A last
test pins the SDK internals the fast path uses, so an `mcp` upgrade that moves them fails here.
"""

from __future__ import annotations

import inspect
import json
import time

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from flora_mcp.transports.fastpath import StatelessFastPath
from tests.helpers import DEMO_KEY, hosted, id_args, mcp_http

# The chatty tool logs on purpose: log notifications must still reach 2025-era clients.
pytestmark = pytest.mark.filterwarnings("ignore:The logging capability is deprecated")

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _server() -> MCPServer:
    server = MCPServer("equivalence")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool()
    async def chatty(steps: int, ctx: Context) -> str:
        """Report progress and log along the way."""
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
            await ctx.info(f"did step {i + 1}")
        return "done"

    @server.tool()
    def broken() -> str:
        """Fail with an unexpected exception."""
        raise RuntimeError("kaput")

    return server


def _messages(response: httpx2.Response) -> list[dict]:
    """The JSON-RPC messages in a response, whether it came as JSON or as SSE."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    try:
        return [response.json()]
    except ValueError:
        return [{"text": response.text}] if response.text else []


def _call(method: str, params: dict | None = None, id_: int = 7) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": method, **({"params": params} if params is not None else {})}


CASES = {
    "tools/list": (_call("tools/list", {}), {}),
    "call echo": (_call("tools/call", {"name": "echo", "arguments": {"text": "hi"}}), {}),
    "call with progress and logs": (_call("tools/call", {"name": "chatty", "arguments": {"steps": 3},
                                                          "_meta": {"progressToken": "p1"}}), {}),
    "call raising": (_call("tools/call", {"name": "broken", "arguments": {}}), {}),
    "unknown tool": (_call("tools/call", {"name": "nope", "arguments": {}}), {}),
    "bad arguments": (_call("tools/call", {"name": "echo", "arguments": {"text": 5}}), {}),
    "bad params": (_call("tools/call", {"arguments": {}}), {}),
    "unknown method": (_call("no/such/method", {}), {}),
    "ping with 2025-06-18": (_call("ping"), {"MCP-Protocol-Version": "2025-06-18"}),
    "initialize": (_call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                        "clientInfo": {"name": "t", "version": "0"}}), {}),
    "string id": (_call("tools/list", {}, id_="abc"), {}),  # type: ignore[arg-type]
    "notification": ({"jsonrpc": "2.0", "method": "notifications/initialized"}, {}),
    "batch": ([_call("tools/list", {})], {}),
    "parse error": (b"{not json", {}),
    "not json-rpc": ({"hello": "world"}, {}),
    "json-only accept": (_call("tools/list", {}), {"Accept": "application/json"}),
    "no accept": (_call("tools/list", {}), {"Accept": ""}),
    "text/plain body": (_call("tools/list", {}), {"Content-Type": "text/plain"}),
    "foreign origin": (_call("tools/list", {}), {"Origin": "http://evil.example"}),
    "foreign host": (_call("tools/list", {}), {"Host": "evil.example"}),
    "foreign host, json-only accept": (_call("tools/list", {}), {"Host": "evil.example", "Accept": "application/json"}),
    "unknown revision": (_call("tools/list", {}), {"MCP-Protocol-Version": "1999-01-01"}),
    "oversized body": (b'{"x": "' + b"a" * 5000 + b'"}', {}),
}


async def _both(body, headers: dict) -> tuple[httpx2.Response, httpx2.Response]:
    server = _server()
    server.streamable_http_app(stateless_http=True, max_request_body_size=4096)
    manager = server.session_manager
    fast = StatelessFastPath(manager)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with manager.run():
        answers = []
        for app in (manager.handle_request, fast):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
                answers.append(await http.post("/mcp", content=content, headers=ACCEPT | headers))
    return answers[0], answers[1]


@pytest.mark.parametrize("case", CASES)
async def test_fast_path_answers_what_the_sdk_answers(case):
    sdk, fast = await _both(*CASES[case])
    assert fast.status_code == sdk.status_code
    assert _messages(fast) == _messages(sdk)


async def test_fast_path_answers_json_until_a_notification_needs_sse():
    sdk, fast = await _both(*CASES["call echo"])
    assert sdk.headers["content-type"].startswith("text/event-stream")
    assert fast.headers["content-type"] == "application/json"
    sdk, fast = await _both(*CASES["call with progress and logs"])
    assert fast.headers["content-type"].startswith("text/event-stream")
    methods = [m.get("method", "result") for m in _messages(fast)]
    assert methods.count("notifications/progress") == 3 and methods[-1] == "result"


async def test_a_silent_long_call_keeps_its_connection_alive_with_pings(monkeypatch):
    from flora_mcp.transports import fastpath

    monkeypatch.setattr(fastpath, "KEEPALIVE_SECONDS", 0.05)
    server = MCPServer("slow")

    @server.tool()
    async def nap() -> str:
        """Sleep a little, silently."""
        await anyio.sleep(0.3)
        return "rested"

    server.streamable_http_app(stateless_http=True)
    async with server.session_manager.run():
        transport = httpx2.ASGITransport(app=StatelessFastPath(server.session_manager))
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            r = await http.post("/mcp", json=_call("tools/call", {"name": "nap", "arguments": {}}), headers=ACCEPT)
    assert r.headers["content-type"].startswith("text/event-stream")
    assert ": ping" in r.text
    assert _messages(r)[-1]["result"]["content"][0]["text"] == "rested"


@pytest.fixture(scope="module")
def flora_hosted():
    with hosted("--sandbox", FLORA_RATE_LIMIT="0") as (base, server):
        yield base, server


@pytest.mark.slow
@pytest.mark.parametrize("revision", ["2025-06-18", "2025-11-25", "2026-07-28"])
async def test_official_client_gets_progress_over_the_hosted_app(revision, flora_hosted, monkeypatch):
    from mcp.client import session as client_session

    base, _ = flora_hosted
    client = mcp_http(base, DEMO_KEY)
    if revision == "2026-07-28":
        client.mode = revision
    else:
        monkeypatch.setattr(client_session, "LATEST_HANDSHAKE_VERSION", revision)
        client.mode = "legacy"
    client.__post_init__()
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with client:
        assert client.protocol_version == revision
        result = await client.call_tool("start_generation", {
            "type": "image", "prompt": "a progress fox", "model": "t2i-flux-2-pro", "wait_seconds": 20}
            | await id_args(client), progress_callback=on_progress)
    assert not result.is_error and result.structured_content["status"] == "completed"
    assert progress, f"no progress notification reached the client at {revision}"


@pytest.mark.slow
def test_hosted_app_logs_one_access_line_and_no_sdk_line_per_request(flora_hosted):
    base, server = flora_hosted
    body = _call("tools/call", {"name": "list_models", "arguments": {"type": "image"}})
    auth = ACCEPT | {"Authorization": f"Bearer {DEMO_KEY}", "MCP-Protocol-Version": "2025-11-25"}
    before = server.stderr().count("\n")
    for _ in range(5):
        r = httpx2.post(f"{base}/mcp", json=body, headers=auth)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    for _ in range(50):  # the access line is written just after the response; give the last one a moment
        new = server.stderr().splitlines()[before:]
        if sum("flora_mcp.access" in line for line in new) >= 5:
            break
        time.sleep(0.05)
    assert sum("flora_mcp.access" in line for line in new) == 5
    assert not [line for line in new if "Terminating session" in line]


def test_sdk_internals_the_fast_path_uses_are_still_there():
    """If this fails after an `mcp` upgrade, re-read the SDK's stateless path before changing the pins."""
    from mcp.server import connection, runner
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.shared import jsonrpc_dispatcher
    from mcp.shared.dispatcher import DispatchContext
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    assert list(inspect.signature(runner.serve_one).parameters) == [
        "server", "dctx", "method", "params", "connection", "lifespan_state"]
    assert list(inspect.signature(connection.Connection.from_envelope).parameters)[:3] == [
        "protocol_version", "client_info", "client_capabilities"]
    assert {"2025-06-18", "2025-11-25"} <= set(HANDSHAKE_PROTOCOL_VERSIONS)
    # The manager state the fast path reads.
    manager_source = inspect.getsource(StreamableHTTPSessionManager)
    for name in ("self._task_group", "self._lifespan_state", "self.stateless", "self.json_response",
                 "self.security_settings", "self.max_request_body_size"):
        assert name in manager_source, name
    # The legacy stateless path it replaces: born-ready connection from the header, no back-channel.
    stateless = inspect.getsource(StreamableHTTPSessionManager._handle_stateless_request)
    assert "Connection.from_envelope(" in stateless and "can_send_request=False" in stateless
    # The legacy dispatcher's exception-to-wire mapping, which `_error_data` repeats.
    handle = inspect.getsource(jsonrpc_dispatcher.JSONRPCDispatcher._handle_request)
    assert "handler_exception_to_error_data(e)" in handle and "ErrorData(code=0, message=str(e))" in handle
    # Every member of the dispatch-context protocol is provided by ours.
    from flora_mcp.transports.fastpath import _ExchangeContext

    members = {n for n in dir(DispatchContext) if not n.startswith("_")}
    assert members <= set(dir(_ExchangeContext)) | set(_ExchangeContext.__dataclass_fields__), members


async def test_the_sdk_client_works_against_a_bare_fast_path_server():
    """Initialize, list and call through the fast path alone (no flora-mcp layers)."""
    server = _server()
    server.streamable_http_app(stateless_http=True)
    async with server.session_manager.run():
        transport = httpx2.ASGITransport(app=StatelessFastPath(server.session_manager))
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(transport=transport)
        async with Client(streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http), mode="legacy") as c:
            assert (await c.call_tool("echo", {"text": "x"})).content[0].text == "x"


@pytest.mark.slow
async def test_one_worker_per_core_serves_the_stateless_path():
    """The documented multi-worker command: `uvicorn … --factory --workers N`, N = cores."""
    import os
    import subprocess
    import sys

    from tests.helpers import free_port, generate, running_sandbox, wait_healthy

    with running_sandbox(speed=100) as flora_url:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
        env |= {"FLORA_BASE_URL": flora_url, "FLORA_RATE_LIMIT": "0", "FLORA_WAIT_SECONDS": "20"}
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "flora_mcp.transports.http:create_app", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            base = f"http://127.0.0.1:{port}"
            async with mcp_http(base, DEMO_KEY) as client:
                assert (await generate(client, wait_seconds=20))["status"] == "completed"
            # Each connection lands on whichever worker accepts it; all of them answer on the fast path.
            headers = ACCEPT | {"Authorization": f"Bearer {DEMO_KEY}", "MCP-Protocol-Version": "2025-11-25"}
            body = _call("tools/call", {"name": "list_models", "arguments": {"type": "image"}})
            for _ in range(6):
                r = httpx2.post(f"{base}/mcp", json=body, headers=headers)
                assert r.status_code == 200 and r.headers["content-type"] == "application/json"
                assert not r.json()["result"].get("isError")
        finally:
            proc.terminate()
            proc.wait(10)


async def test_a_client_that_goes_away_cancels_the_tool():
    server = MCPServer("cancel")
    outcome: list[str] = []

    @server.tool()
    async def long_call() -> str:
        """Wait a long time."""
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise
        return "finished"

    server.streamable_http_app(stateless_http=True)
    body = json.dumps(_call("tools/call", {"name": "long_call", "arguments": {}})).encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in (ACCEPT | {"Host": "127.0.0.1:8000"}).items()]
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": headers, "query_string": b"",
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1)}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await anyio.sleep(0.2)  # the client hangs up while the tool is still running
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    async with server.session_manager.run():
        with anyio.fail_after(5):
            await StatelessFastPath(server.session_manager)(scope, receive, send)
    assert outcome == ["cancelled"] and sent == []
