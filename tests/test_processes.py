"""The ledger across real processes: a new server process per tool call (langchain-mcp-adapters' default),
two servers on one PostgreSQL, and a server killed with SIGKILL mid-call. FLORA is the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx2
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.helpers import id_args, running_sandbox

pytestmark = pytest.mark.slow  # every test here starts flora-mcp, the sandbox or PostgreSQL in processes


@pytest.fixture(scope="module")
def flora_url():
    with running_sandbox(speed=20) as base_url:
        yield base_url


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request, tmp_path):
    """The ledger these processes share: a SQLite file, or a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    return request.getfixturevalue("postgres_url")


def _env(base_url: str, state_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    return env | {"FLORA_BASE_URL": base_url, "FLORA_API_KEY": "sk_sandbox_demo", "FLORA_STATE_URL": state_url,
                  "FLORA_LOG_LEVEL": "WARNING"} | extra


def _charges(base_url: str) -> list[dict]:
    return httpx2.get(base_url.removesuffix("/api/v1") + "/_sandbox").json()["charges"]


async def _one_call(base_url: str, state_url: str, tool: str, args: dict, **extra: str):
    """A fresh server process for one tool call, as langchain-mcp-adapters does by default."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"],
                                   env=_env(base_url, state_url, **extra))
    async with Client(params) as client:
        return await client.call_tool(tool, args)


async def _process_ids(base_url: str, state_url: str) -> dict:
    """id_args, asked of a server process of its own."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=_env(base_url, state_url))
    async with Client(params) as client:
        return await id_args(client)


async def test_a_process_per_call_cannot_walk_through_the_budget(flora_url, state):
    ids = await _process_ids(flora_url, state)
    before = len(_charges(flora_url))
    answers = []
    for n in range(3):  # three $0.075 runs against a $0.10 budget, each in its own process
        answers.append(await _one_call(flora_url, state, "start_generation", {
            "type": "image", "prompt": f"per-call {n}", "model": "t2i-flux-2-pro", "wait_seconds": 10, **ids},
            FLORA_BUDGET_USD="0.10"))
    assert [a.is_error for a in answers] == [False, True, True]
    assert "budget" in answers[1].content[0].text
    charged = _charges(flora_url)[before:]
    assert len(charged) == 1 and sum(c["usd"] for c in charged) <= 0.10
    listed = await _one_call(flora_url, state, "list_runs", {})
    assert listed.structured_content["runs"][0][0] == charged[0]["run_id"]


async def test_two_processes_on_one_postgresql_share_keys_and_budget(flora_url, postgres_url):
    before = len(_charges(flora_url))
    key = f"two-processes-{time.time_ns()}"
    args = {"type": "image", "prompt": f"shared {key}", "model": "t2i-flux-2-pro", "wait_seconds": 0,
            "idempotency_key": key}
    env = {"FLORA_BUDGET_USD": "0.10", "FLORA_API_KEY": f"sk_sandbox_{key[-12:]}"}  # its own account and budget
    first = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=_env(flora_url, postgres_url, **env))
    second = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=_env(flora_url, postgres_url, **env))
    async with Client(first) as a, Client(second) as b:
        args |= await id_args(a)
        one = (await a.call_tool("start_generation", args)).structured_content
        two = (await b.call_tool("start_generation", args)).structured_content
        over = await b.call_tool("start_generation", args | {"idempotency_key": key + "-2", "prompt": "another"})
    assert one["run_id"] == two["run_id"] and len(_charges(flora_url)) == before + 1
    assert over.is_error and "budget" in over.content[0].text


class _Raw:
    """A stdio server driven by hand, so the test can SIGKILL it mid-call."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "flora_mcp"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.send(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "test", "version": "1"}})
        self.read(1)
        self.proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        self.proc.stdin.flush()

    def send(self, id_: int, method: str, params: dict) -> None:
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}).encode()
                              + b"\n")
        self.proc.stdin.flush()

    def read(self, id_: int) -> dict:
        while True:
            message = json.loads(self.proc.stdout.readline())
            if message.get("id") == id_:
                return message["result"]


async def test_kill_9_mid_call_then_restart_finds_and_finishes_the_run(flora_url, state):
    ids = await _process_ids(flora_url, state)
    before = len(_charges(flora_url))
    doomed = _Raw(_env(flora_url, state))
    doomed.send(2, "tools/call", {"name": "start_generation", "arguments": {
        "type": "video", "prompt": "a slow pan over dunes", "model": "t2v-seedance-1-lite", "wait_seconds": 30, **ids}})
    deadline = time.monotonic() + 10
    while len(_charges(flora_url)) == before and time.monotonic() < deadline:
        time.sleep(0.05)  # until FLORA has accepted the start
    time.sleep(0.3)
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait(5)
    run_id = _charges(flora_url)[-1]["run_id"]

    params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=_env(flora_url, state))
    async with Client(params) as client:
        listed = (await client.call_tool("list_runs", {})).structured_content
        assert listed["runs"][0][0] == run_id and listed["runs"][0][3] in ("pending", "running", "completed")
        finished = (await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 30})).structured_content
        assert finished["status"] == "completed"
        again = (await client.call_tool("list_runs", {"status": "completed"})).structured_content
    assert again["runs"][0][0] == run_id and again["totals"]["charged_usd"] > 0


def test_two_hosted_processes_on_one_postgresql_share_key_checks_and_the_rate_limit(flora_url, postgres_url):
    """A key one replica checked costs the other no FLORA call; the per-key rate limit counts requests
    wherever they land."""
    from tests.helpers import free_port, spawn

    key = f"sk_sandbox_limits{time.time_ns() % 10**9}"
    env = _env(flora_url, postgres_url, FLORA_RATE_LIMIT="6", FLORA_API_KEY="")
    ports = [free_port(), free_port()]
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json", "MCP-Protocol-Version": "2025-06-18"}
    control = flora_url.removesuffix("/api/v1") + "/_sandbox"
    with spawn(["--transport", "http", "--port", str(ports[0])], f"http://127.0.0.1:{ports[0]}/healthz", env), \
            spawn(["--transport", "http", "--port", str(ports[1])], f"http://127.0.0.1:{ports[1]}/healthz", env):
        before = httpx2.get(control).json()["requests"]
        window = int(time.time() // 60)
        statuses = [httpx2.post(f"http://127.0.0.1:{ports[n % 2]}/mcp", json=body, headers=headers).status_code
                    for n in range(8)]
        checks = httpx2.get(control).json()["requests"] - before
    if int(time.time() // 60) != window:  # the minute window turned over mid-test: counts restarted
        pytest.skip("rate window rolled over during the test")
    assert statuses[:6] == [200] * 6 and statuses[6:] == [429, 429], statuses
    assert checks == 1  # one FLORA key check for both processes
