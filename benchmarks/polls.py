"""One status poll per run: how many times FLORA is asked about runs that many callers wait on.

    python benchmarks/polls.py [--users 10] [--calls 10] [--seconds 20] [--processes 2] [--webhooks]

A sandbox standing in for FLORA (real time: its 2-minute video does not finish in the window), and
`--processes` hosted flora-mcp servers sharing one SQLite ledger, all on loopback over HTTP. Each
user (its own sandbox key) starts one video, then `--calls` get_run calls per user wait on it at
once (wait_seconds = --seconds), spread over the server processes. The sandbox's request log counts
the status reads (GET /runs/{id}) made during the wait; the floor is one per run per poll interval
(plus one per run for the first answer). Numbers are printed, not asserted.

--webhooks: the servers pass FLORA a callback_url (each its own loopback port; the sandbox delivers
there) and the sandbox runs 12x faster, so the videos finish ~10 s into the wait: the floor is then
0 reads before a run's webhook and 1 after it.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flora_mcp.polling import interval_for
from tests.helpers import free_port, wait_healthy

MODEL, ESTIMATED_SECONDS = "t2v-veo-3", 120  # the sandbox's 2-minute video
BEFORE = "800 in 20 s (one process, 2 users; issue 25's measurement of one poll stream per waiting call)"


def _spawn(args: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "flora_mcp", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def _client(base: str, key: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=90))
    return Client(streamable_http_client(f"{base}/mcp", http_client=http))


async def _start_video(base: str, key: str) -> str:
    async with _client(base, key) as client:
        ws = (await client.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        projects = (await client.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"]
        started = await client.call_tool("start_generation", {
            "type": "video", "prompt": "a slow fox", "model": MODEL, "workspace_id": ws,
            "project_id": projects[0]["project_id"], "wait_seconds": 0})
        assert not started.is_error, started.content
        return started.structured_content["run_id"]


async def _wait_on(base: str, key: str, run_id: str, calls: int, seconds: float, statuses: list[str]) -> None:
    async with _client(base, key) as client:

        async def one() -> None:
            result = await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": seconds})
            statuses.append("error" if result.is_error else result.structured_content["status"])

        async with anyio.create_task_group() as tg:
            for _ in range(calls):
                tg.start_soon(one)


async def main(users: int, calls: int, seconds: float, processes: int, webhooks: bool) -> None:
    sandbox_port, ports = free_port(), [free_port() for _ in range(processes)]
    state = tempfile.mkdtemp(prefix="flora-polls-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    flora = f"http://127.0.0.1:{sandbox_port}"
    speed = "12" if webhooks else "1"
    procs = [_spawn(["sandbox", "--port", str(sandbox_port), "--speed", speed], sandbox_port, env)]
    try:
        server_env = env | {"FLORA_BASE_URL": f"{flora}/api/v1", "FLORA_STATE_URL": f"sqlite:///{state}/ledger.sqlite3",
                            "FLORA_RATE_LIMIT": "0", "FLORA_LOG_LEVEL": "WARNING"}
        for port in ports:
            hooks = {"FLORA_WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{port}",
                     "FLORA_WEBHOOK_SECRET": "whsec_sandbox_demo"} if webhooks else {}
            procs.append(_spawn(["--transport", "http", "--port", str(port)], port, server_env | hooks))
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        keys = [f"sk_sandbox_polls{u}" for u in range(users)]
        run_ids = [await _start_video(bases[u % processes], key) for u, key in enumerate(keys)]
        reads_before = httpx2.get(f"{flora}/_sandbox").json()["status_reads"]
        statuses: list[str] = []
        began = time.monotonic()
        async with anyio.create_task_group() as tg:
            for u, (key, run_id) in enumerate(zip(keys, run_ids)):
                for p, base in enumerate(bases):  # each user's calls spread over the processes
                    share = calls // processes + (1 if p < calls % processes else 0)
                    tg.start_soon(_wait_on, base, key, run_id, share, seconds, statuses)
        elapsed = time.monotonic() - began
        control = httpx2.get(f"{flora}/_sandbox").json()
        reads = control["status_reads"] - reads_before
        delivered = [w for w in control["webhooks"] if w.get("status") == 200]
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(10)
    interval = interval_for(ESTIMATED_SECONDS, 1)
    if webhooks:
        print(f"waiting get_run calls: {len(statuses)} ({users} users x {calls}) on {users} runs, "
              f"{processes} server processes, webhooks on, {elapsed:.1f} s")
        print(f"statuses returned: { {s: statuses.count(s) for s in sorted(set(statuses))} }")
        print(f"webhooks delivered: {len(delivered)}   FLORA status requests: {reads}   floor: <= {users} "
              f"(0 before a run's webhook, 1 after)   {'OK' if reads <= users else 'OVER'}")
        return
    floor = users * (math.ceil(elapsed / interval) + 1)
    print(f"waiting get_run calls: {len(statuses)} ({users} users x {calls}) on {users} runs, "
          f"{processes} server processes, {elapsed:.1f} s")
    print(f"statuses returned: { {s: statuses.count(s) for s in sorted(set(statuses))} }")
    print(f"FLORA status requests: {reads}   floor: <= {floor} "
          f"(1 per run per {interval:g} s poll interval, +1 per run)   {'OK' if reads <= floor else 'OVER'}")
    print(f"per run per interval: {reads / users / max(elapsed / interval, 1):.2f}")
    print(f"before: {BEFORE}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--webhooks", action="store_true", help="servers pass callback_url; runs finish in the window")
    a = parser.parse_args()
    anyio.run(main, a.users, a.calls, a.seconds, a.processes, a.webhooks)
