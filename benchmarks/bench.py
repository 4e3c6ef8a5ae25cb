"""flora-mcp benchmarks: one command, a table on stdout, JSON in benchmarks/results/latest.json.

    python benchmarks/bench.py [--quick]

Every figure is measured on the real code paths (the installed `flora-mcp`, the official SDK client,
the sandbox over loopback) and printed beside its floor: the bare MCP SDK, or a direct HTTP call.
Nothing here is a test: numbers are reported, never asserted. Everything stays on loopback and is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, running_sandbox, wait_healthy

FLOOR = [sys.executable, str(ROOT / "benchmarks" / "floor_server.py")]
FLORA = [sys.executable, "-m", "flora_mcp"]
INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")} | extra


class Stdio:
    """A server subprocess spoken to in raw JSON-RPC lines, timing each answer."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.next_id = 0
        self.last_raw = b""

    def request(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                                          "params": params or {}}).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited during {method}")
            message = json.loads(line)
            if message.get("id") == self.next_id:
                self.last_raw = line
                return message["result"]

    def notify(self, method: str) -> None:
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.proc.stdin.flush()

    def handshake(self) -> tuple[float, float]:
        self.request("initialize", INIT)
        t_init = time.perf_counter() - self.started
        self.notify("notifications/initialized")
        self.request("tools/list")
        return t_init, time.perf_counter() - self.started

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def cold_start(runs: int) -> dict:
    """Median time to the initialize and tools/list answers; floor and flora-mcp runs interleaved, so
    a change in machine load during the measurement hits both alike."""
    servers = {"floor": FLOOR, "flora": FLORA + ["--sandbox"]}
    samples: dict[str, dict[str, list[float]]] = {name: {"init": [], "list": [], "rss": []} for name in servers}
    for i in range(runs):
        for name, cmd in servers.items():
            server = Stdio(cmd, clean_env())
            t_init, t_list = server.handshake()
            samples[name]["init"].append(t_init)
            samples[name]["list"].append(t_list)
            if i < 3:
                time.sleep(0.5)
                samples[name]["rss"].append(server.rss_mb())
            server.close()
    return {name: {"initialize_ms": statistics.median(s["init"]) * 1000,
                   "tools_list_ms": statistics.median(s["list"]) * 1000,
                   "idle_rss_mb": statistics.median(s["rss"])} for name, s in samples.items()}


def tools_list_size() -> dict:
    sizes = {}
    for name, cmd in (("floor", FLOOR), ("flora", FLORA + ["--sandbox"])):
        server = Stdio(cmd, clean_env())
        server.request("initialize", INIT)
        server.notify("notifications/initialized")
        tools = server.request("tools/list")["tools"]
        raw = len(server.last_raw)
        per_tool = [len(json.dumps(t, separators=(",", ":"))) for t in tools]
        sizes[name] = {"bytes": raw, "tools": len(tools), "avg_per_tool": statistics.mean(per_tool),
                       "max_per_tool": max(per_tool)}
        server.close()
    return sizes


async def per_call(flora_url: str, run_id: str, calls: int) -> dict:
    from mcp.client import Client

    from flora_mcp.client import FloraClient
    from flora_mcp.config import Settings
    from flora_mcp.server import create_server

    key = "sk_sandbox_demo"
    direct, memory = [], []
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(calls):
            t = time.perf_counter()
            (await http.get(f"{flora_url}/runs/{run_id}")).raise_for_status()
            direct.append(time.perf_counter() - t)
    settings = Settings(api_key=key, base_url=flora_url, wait_seconds=0)
    async with Client(create_server(settings, client=FloraClient(key, base_url=flora_url))) as client:
        await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 0})
        for _ in range(calls):
            t = time.perf_counter()
            result = await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 0})
            memory.append(time.perf_counter() - t)
            assert not result.is_error, result.content[0].text
    server = Stdio(FLORA, clean_env(FLORA_API_KEY=key, FLORA_BASE_URL=flora_url))
    server.handshake()
    stdio = []
    for _ in range(calls):
        t = time.perf_counter()
        server.request("tools/call", {"name": "get_run", "arguments": {"run_id": run_id, "wait_seconds": 0}})
        stdio.append(time.perf_counter() - t)
    server.close()

    from mcp.server import MCPServer

    bare = MCPServer("floor")
    bare.add_tool(lambda text: text, name="echo")
    sdk = []
    async with Client(bare) as client:
        for _ in range(calls):
            t = time.perf_counter()
            await client.call_tool("echo", {"text": "x"})
            sdk.append(time.perf_counter() - t)

    def row(samples: list[float]) -> dict:
        return {"p50_ms": pct(samples, 50) * 1000, "p99_ms": pct(samples, 99) * 1000}

    d, m, s = row(direct), row(memory), row(stdio)
    return {"direct_httpx2": d, "mcp_in_memory": m, "mcp_stdio": s, "bare_sdk_echo_in_memory": row(sdk),
            "overhead_in_memory_p50_ms": m["p50_ms"] - d["p50_ms"], "overhead_stdio_p50_ms": s["p50_ms"] - d["p50_ms"]}


async def calls_per_generation(runs: int) -> dict:
    """How many tool calls an agent makes to get one finished image, at the sandbox's default speed."""
    from mcp.client import Client

    from flora_mcp.config import Settings
    from flora_mcp.server import create_server

    counts, seconds = [], []
    async with Client(create_server(Settings(sandbox=True, api_key=None))) as client:
        ws = (await client.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        prj = (await client.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]
        for i in range(runs):
            t = time.perf_counter()
            calls = 1
            data = (await client.call_tool("start_generation", {
                "type": "image", "prompt": f"bench {i}", "workspace_id": ws, "project_id": prj["project_id"],
                "model": "t2i-flux-2-pro"})).structured_content
            while data.get("status") in ("pending", "running"):
                calls += 1
                data = (await client.call_tool("get_run", {"run_id": data["run_id"]})).structured_content
            counts.append(calls)
            seconds.append(time.perf_counter() - t)
    return {"mean_calls": statistics.mean(counts), "max_calls": max(counts), "median_seconds": statistics.median(seconds)}


@contextmanager
def http_server(cmd: list[str], port: int, env: dict[str, str]):
    # stderr to a file, never an undrained pipe: a full pipe would stall the server mid-benchmark.
    log = open(ROOT / "benchmarks" / "results" / "server-stderr.log", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz" if "flora_mcp" in cmd else f"http://127.0.0.1:{port}/mcp",
                     proc, timeout=30) if "flora_mcp" in cmd else _wait_port(port, proc)
        yield
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError("floor server did not start")


async def hosted_load(url: str, tool: str, args: dict, key: str | None, sessions: int, calls: int) -> dict:
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    latencies: list[float] = []
    errors = 0

    async def session() -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        http = httpx2.AsyncClient(headers=headers, timeout=60)
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            for _ in range(calls):
                t = time.perf_counter()
                result = await client.call_tool(tool, args)
                latencies.append(time.perf_counter() - t)
                errors += bool(result.is_error)

    started = time.perf_counter()
    with anyio.fail_after(180):
        async with anyio.create_task_group() as tg:
            for _ in range(sessions):
                tg.start_soon(session)
    elapsed = time.perf_counter() - started
    return {"sessions": sessions, "calls": len(latencies), "errors": errors, "calls_per_s": len(latencies) / elapsed,
            "p50_ms": pct(latencies, 50) * 1000, "p99_ms": pct(latencies, 99) * 1000}


async def hosted(levels: list[int], calls: int) -> dict:
    out: dict[str, list] = {"flora": [], "floor": []}
    port = free_port()
    env = clean_env(FLORA_SANDBOX_SPEED="5", FLORA_RATE_LIMIT="0")
    with http_server(FLORA + ["--sandbox", "--transport", "http", "--port", str(port)], port, env):
        for n in levels:
            out["flora"].append(await hosted_load(f"http://127.0.0.1:{port}/mcp", "list_models", {"type": "image"},
                                                  "sk_sandbox_demo", n, calls))
    port = free_port()
    with http_server(FLOOR + ["http", str(port)], port, clean_env()):
        for n in levels:
            out["floor"].append(await hosted_load(f"http://127.0.0.1:{port}/mcp", "echo", {"text": "hi"}, None, n, calls))
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


async def main(quick: bool) -> dict:
    runs = 5 if quick else 11
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    results["cold_start"] = cold_start(runs)
    results["tools_list"] = tools_list_size()
    with running_sandbox(speed=0.001) as flora_url:  # runs stay pending: get_run is one GET, no downloads
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer sk_sandbox_demo"}) as http:
            ws = (await http.get(f"{flora_url}/workspaces")).json()["workspaces"][0]["workspace_id"]
            prj = (await http.get(f"{flora_url}/projects", params={"workspace_id": ws})).json()["projects"][0]
            run_id = (await http.post(f"{flora_url}/generate", json={
                "type": "image", "prompt": "bench", "workspace_id": ws, "project_id": prj["project_id"]})).json()["run_id"]
        results["per_call"] = await per_call(flora_url, run_id, 50 if quick else 200)
    results["calls_per_generation"] = await calls_per_generation(3 if quick else 10)
    results["hosted"] = await hosted([1, 10] if quick else [1, 10, 100], 5 if quick else 10)
    return results


def table(r: dict) -> str:
    cs, tl, pc, cg = r["cold_start"], r["tools_list"], r["per_call"], r["calls_per_generation"]
    lines = [
        f"machine: {r['machine']}",
        "",
        "| figure | flora-mcp | floor | ratio / target |",
        "| --- | --- | --- | --- |",
        f"| stdio cold start to `initialize` (median) | {cs['flora']['initialize_ms']:.0f} ms | "
        f"{cs['floor']['initialize_ms']:.0f} ms (bare SDK, 1 tool) | {cs['flora']['initialize_ms'] / cs['floor']['initialize_ms']:.2f}x (target ≤ 1.10x) |",
        f"| stdio cold start to `tools/list` (median) | {cs['flora']['tools_list_ms']:.0f} ms | "
        f"{cs['floor']['tools_list_ms']:.0f} ms | {cs['flora']['tools_list_ms'] / cs['floor']['tools_list_ms']:.2f}x |",
        f"| `tools/list` size | {tl['flora']['bytes']} B, {tl['flora']['tools']} tools | {tl['floor']['bytes']} B, 1 tool | |",
        f"| bytes per tool (avg / max) | {tl['flora']['avg_per_tool']:.0f} / {tl['flora']['max_per_tool']} B | "
        f"{tl['floor']['avg_per_tool']:.0f} B (peers: 1-2.6 KB) | target ≤ 350 B avg |",
        f"| `get_run` in memory, p50 / p99 | {pc['mcp_in_memory']['p50_ms']:.2f} / {pc['mcp_in_memory']['p99_ms']:.2f} ms | "
        f"{pc['direct_httpx2']['p50_ms']:.2f} / {pc['direct_httpx2']['p99_ms']:.2f} ms (direct httpx2 GET) | "
        f"+{pc['overhead_in_memory_p50_ms']:.2f} ms p50 (target ≤ 1.5; the bare SDK's own in-memory echo call: "
        f"{pc['bare_sdk_echo_in_memory']['p50_ms']:.2f} ms) |",
        f"| `get_run` over stdio, p50 / p99 | {pc['mcp_stdio']['p50_ms']:.2f} / {pc['mcp_stdio']['p99_ms']:.2f} ms | "
        f"{pc['direct_httpx2']['p50_ms']:.2f} ms | +{pc['overhead_stdio_p50_ms']:.2f} ms p50 (target ≤ 3) |",
        f"| agent calls per finished image (sandbox) | {cg['mean_calls']:.2f} (max {cg['max_calls']}) | 1 | target 1 |",
        f"| idle RSS, stdio server | {cs['flora']['idle_rss_mb']:.0f} MB | {cs['floor']['idle_rss_mb']:.0f} MB | target ≤ 80 MB |",
    ]
    for f_row, b_row in zip(r["hosted"]["flora"], r["hosted"]["floor"]):
        lines.append(
            f"| hosted HTTP, {f_row['sessions']} sessions: calls/s, p50 / p99 | {f_row['calls_per_s']:.0f}/s, "
            f"{f_row['p50_ms']:.1f} / {f_row['p99_ms']:.1f} ms | {b_row['calls_per_s']:.0f}/s, {b_row['p50_ms']:.1f} / "
            f"{b_row['p99_ms']:.1f} ms (bare SDK echo) | {f_row['errors']} errors |")
    return "\n".join(lines)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)  # keep the report readable: no per-request log lines
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (for CI reports)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args()
    data = anyio.run(main, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(table(data))
    print(f"\nJSON: {args.out}")
