"""What tests share, in one module: settings and tool-call helpers for in-memory sessions, and real
servers on loopback (the sandbox, flora-mcp itself over stdio or HTTP, PostgreSQL) in subprocesses."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
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


POSTGRES_BIN_DIRS = ("/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True),
                     "/usr/local/pgsql/bin")


def postgres_binaries() -> str | None:
    """The directory holding initdb, pg_ctl and postgres (PATH first, then where Debian puts them)."""
    found = shutil.which("initdb")
    dirs = ([os.path.dirname(found)] if found else []) + list(POSTGRES_BIN_DIRS)
    for directory in dirs:
        if all(os.access(os.path.join(directory, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


class PostgresServer:
    """A real PostgreSQL server in a temp dir on a free loopback port (trust auth; fsync off unless
    `durable`: a test server). PostgreSQL refuses to run as root: as root, it runs as the `postgres` user
    (created if missing). `stop()` and `start()` restart it on the same port and data."""

    def __init__(self, durable: bool = False) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl, postgres): apt-get install postgresql")
        self.binaries, self.durable, self.as_user = binaries, durable, []
        if os.geteuid() == 0:
            if subprocess.run(["id", "-u", "postgres"], capture_output=True, check=False).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.base = tempfile.mkdtemp(prefix="flora-pg-")
        self.data = os.path.join(self.base, "data")
        if self.as_user:
            shutil.chown(self.base, "postgres")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, os.path.join(self.binaries, tool), *args], check=True, capture_output=True,
                       timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.base, "log"), "-w", "-t", "60", "-o", options,
                  "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")


@contextmanager
def running_postgres(durable: bool = False) -> Iterator[str]:
    """A PostgresServer for the duration; yields its URL."""
    server = PostgresServer(durable)
    try:
        server.start()
        try:
            yield server.url
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                server.stop()
    finally:
        shutil.rmtree(server.base, ignore_errors=True)


def new_database(url: str) -> str:
    """A fresh database on the server at `url`: a test keeps apart from the others."""
    import uuid

    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


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
