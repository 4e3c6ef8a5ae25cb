"""The real thing over stdio: `flora-mcp --sandbox` in a subprocess, as Claude Desktop would run it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.helpers import clean_env, id_args

pytestmark = pytest.mark.slow  # every test here runs flora-mcp in a subprocess over stdio


async def test_sdk_client_over_stdio_completes_a_generation():
    params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp", "--sandbox"], env=clean_env())
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"list_workspaces", "start_generation", "get_run"} <= names
        result = await client.call_tool("start_generation", {
            "type": "image", "prompt": "a lighthouse at dusk", "model": "t2i-flux-2-schnell", "wait_seconds": 20}
            | await id_args(client))
        assert not result.is_error and result.structured_content["status"] == "completed"
        assert any(c.type == "image" for c in result.content)


class _RawSession:
    """JSON-RPC by hand over the pipes, keeping every byte the server wrote to stdout."""

    def __init__(self, *args: str, **env: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "flora_mcp", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(**env))
        self.stdout_lines: list[bytes] = []
        self._next_id = 0

    def send(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict | None = None) -> dict:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params or {}})
        while True:
            line = self.proc.stdout.readline()
            assert line, f"server closed stdout; stderr: {self.proc.stderr.read().decode()[-2000:]}"
            self.stdout_lines.append(line)
            message = json.loads(line)
            if message.get("id") == self._next_id:
                assert "error" not in message, message
                return message["result"]

    def close(self) -> str:
        rest, err = self.proc.communicate(timeout=10)  # closes stdin: the server's cue to exit
        self.stdout_lines += rest.splitlines(keepends=True)
        return err.decode()


@pytest.mark.parametrize("protocol", ["2025-06-18", "2025-11-25"])
def test_stdout_carries_only_json_rpc_through_a_whole_generation(protocol):
    session = _RawSession("--sandbox", FLORA_LOG_LEVEL="DEBUG")
    init = session.request("initialize", {"protocolVersion": protocol, "capabilities": {},
                                          "clientInfo": {"name": "raw-test", "version": "0"}})
    assert init["protocolVersion"] == protocol and init["serverInfo"]["name"] == "flora-mcp"
    session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    tools = session.request("tools/list")["tools"]
    assert len(tools) >= 6
    ws = session.request("tools/call", {"name": "list_workspaces", "arguments": {}})["structuredContent"]
    workspace_id = ws["workspaces"][0]["workspace_id"]
    projects = session.request("tools/call", {"name": "list_projects", "arguments": {"workspace_id": workspace_id}})
    project_id = projects["structuredContent"]["projects"][0]["project_id"]
    result = session.request("tools/call", {"name": "start_generation", "_meta": {"progressToken": "p1"},
                                            "arguments": {"type": "audio", "prompt": "hello", "workspace_id": workspace_id,
                                                          "project_id": project_id, "wait_seconds": 20}})
    assert result["structuredContent"]["status"] == "completed"
    stderr = session.close()
    assert session.stdout_lines
    for line in session.stdout_lines:
        message = json.loads(line)  # every line is one JSON-RPC message, nothing else
        assert message["jsonrpc"] == "2.0"
    progress = [json.loads(line) for line in session.stdout_lines if b"notifications/progress" in line]
    assert progress and progress[-1]["params"]["progress"] == 100
    assert "DEBUG" in stderr or "INFO" in stderr  # logs went to stderr


def test_server_without_key_starts_lists_tools_and_explains():
    session = _RawSession()
    session.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                   "clientInfo": {"name": "raw-test", "version": "0"}})
    session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert session.request("tools/list")["tools"]
    result = session.request("tools/call", {"name": "list_workspaces", "arguments": {}})
    assert result["isError"] and "FLORA_API_KEY" in result["content"][0]["text"]
    session.close()


def test_secret_key_never_printed(tmp_path):
    secret = "sk_live_do_not_print_me_123"
    session = _RawSession(FLORA_API_KEY=secret, FLORA_BASE_URL="http://127.0.0.1:9/api/v1", FLORA_LOG_LEVEL="DEBUG",
                          FLORA_MAX_RETRIES="1")
    session.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                   "clientInfo": {"name": "raw-test", "version": "0"}})
    session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    result = session.request("tools/call", {"name": "list_workspaces", "arguments": {}})
    assert result["isError"] and "could not be reached" in result["content"][0]["text"]
    stderr = session.close()
    everything = b"".join(session.stdout_lines).decode() + stderr
    assert secret not in everything
