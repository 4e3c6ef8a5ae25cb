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

from tests.helpers import free_port, running_sandbox, wait_healthy

FLOOR = [sys.executable, str(ROOT / "benchmarks" / "floor_server.py")]
LOGS = ROOT / "benchmarks" / "results" / "logs"  # servers' stderr, for a look after a run (not committed)
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
    direct, memory, stdio = [], [], []
    # stdio calls interleaved with the direct GET they wrap, so a change in machine load hits both alike.
    server = Stdio(FLORA, clean_env(FLORA_API_KEY=key, FLORA_BASE_URL=flora_url))
    server.handshake()
    with httpx2.Client(headers={"Authorization": f"Bearer {key}"}) as http:
        http.get(f"{flora_url}/runs/{run_id}").raise_for_status()
        server.request("tools/call", {"name": "get_run", "arguments": {"run_id": run_id, "wait_seconds": 0}})
        for _ in range(calls):
            t = time.perf_counter()
            http.get(f"{flora_url}/runs/{run_id}").raise_for_status()
            direct.append(time.perf_counter() - t)
            t = time.perf_counter()
            server.request("tools/call", {"name": "get_run", "arguments": {"run_id": run_id, "wait_seconds": 0}})
            stdio.append(time.perf_counter() - t)
    server.close()
    settings = Settings(api_key=key, base_url=flora_url, wait_seconds=0)
    async with Client(create_server(settings, client=FloraClient(key, base_url=flora_url))) as client:
        await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 0})
        for _ in range(calls):
            t = time.perf_counter()
            result = await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 0})
            memory.append(time.perf_counter() - t)
            assert not result.is_error, result.content[0].text

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
    from flora_mcp.connect import build_client
    from flora_mcp.server import create_server

    counts, seconds = [], []
    async with Client(create_server(Settings(sandbox=True, api_key=None), connect=build_client)) as client:
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
def http_server(cmd: list[str], port: int, env: dict[str, str], log_name: str, cores: set[int] | None = None):
    """A server subprocess, healthy, optionally pinned to `cores`; yields its pid."""
    # stderr to a file, never an undrained pipe: a full pipe would stall the server mid-benchmark.
    log = open(LOGS / f"{log_name}-stderr.log", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)
        if cores:
            for pid in _tree(proc.pid):
                os.sched_setaffinity(pid, cores)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _tree(pid: int) -> list[int]:
    """`pid` and its child processes (uvicorn's workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(c for child in children for c in _tree(int(child)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far, from /proc/<pid>/stat."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


HOSTED_LOG_CONFIG = {  # for `uvicorn --workers`: flora-mcp's own log format and level, as `flora-mcp` sets them
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"uvicorn.access": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}},
}


STACKS = {"uvloop": ("uvloop", "httptools"), "asyncio": ("asyncio", "h11")}


def _hosted_servers(stack: str, flora_workers: int = 1) -> dict[str, tuple[list[str], dict, dict]]:
    """name -> (command, env, target arguments) for each server in the hosted comparison.

    flora-mcp runs as the README documents for hosting (`uvicorn … --factory`), with flora-mcp's own
    log format and level (one access line per request)."""
    loop, http = STACKS[stack]
    log_config = LOGS / "hosted-logging.json"
    log_config.write_text(json.dumps(HOSTED_LOG_CONFIG))
    flora_cmd = [sys.executable, "-m", "uvicorn", "flora_mcp.transports.http:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", "{port}", "--workers", str(flora_workers), "--loop", loop,
                 "--http", http, "--log-config", str(log_config), "--no-access-log"]
    flora_env = clean_env(FLORA_SANDBOX="1", FLORA_RATE_LIMIT="0")
    flora = (flora_cmd, flora_env, {"tool": "list_models", "args": {"type": "image"}, "key": "sk_sandbox_demo"})
    echo = {"tool": "echo", "args": {"text": "hi"}}
    return {
        "flora": flora,
        "starlette": (FLOOR + ["starlette", "{port}", stack], clean_env(), echo | {"handshake": False}),
        "sdk": (FLOOR + ["http", "{port}", stack], clean_env(), echo),
        "sdk_fast": (FLOOR + ["http-fast", "{port}", stack], clean_env(), echo),
    }


@contextmanager
def hosted_fleet(names: list[str], cores: set[int] | None, stack: str = "uvloop", flora_workers: int = 1):
    from contextlib import ExitStack

    from benchmarks.loadgen import Target

    servers = _hosted_servers(stack, flora_workers)
    with ExitStack() as servers_up:
        fleet = {}
        for name in names:
            cmd, env, target = servers[name]
            port = free_port()
            pid = servers_up.enter_context(
                http_server([c.format(port=port) for c in cmd], port, env, f"hosted-{name}-{stack}", cores))
            fleet[name] = (pid, Target(port=port, **target))
        yield fleet


def _cores() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, load generator cores): apart when this process may use two or more cores."""
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        return None, None
    return {mine[0]}, set(mine[1:])


def hosted(quick: bool) -> dict:
    """Server CPU per call and throughput beside the floors (closed loop, interleaved rounds), then
    open-loop Poisson load at fixed offered rates over 100 sessions, on one worker and on two."""
    from benchmarks.loadgen import closed_loop, new_loop, open_loop

    rounds, seconds, sessions = (2, 2.0, 10) if quick else (4, 5.0, 10)
    open_seconds = 3.0 if quick else 10.0
    server_cores, load_cores = _cores()
    mine = os.sched_getaffinity(0)
    loop = new_loop()
    out: dict = {"server_cores": sorted(server_cores or []), "load_cores": sorted(load_cores or []),
                 "closed_loop": {}, "open_loop": {}, "open_loop_two_workers": {}}
    try:
        if load_cores:
            os.sched_setaffinity(0, load_cores)
        names = ["starlette", "sdk", "sdk_fast", "flora"]
        with hosted_fleet(names, server_cores, "asyncio") as slow, hosted_fleet(names, server_cores, "uvloop") as fast:
            fleets = {"asyncio": slow, "uvloop": fast}
            totals = {(stack, name): {"calls": 0, "seconds": 0.0, "cpu": 0.0, "errors": 0, "p50": [], "p99": []}
                      for stack in fleets for name in names}
            for _ in range(rounds):  # interleaved: a change in machine load hits every server alike
                for stack, name in totals:
                    pid, target = fleets[stack][name]
                    mark: dict = {}
                    result = loop.run_until_complete(closed_loop(target, sessions, seconds,
                                                                 on_start=lambda m=mark, p=pid: m.update(cpu=cpu_seconds(p))))
                    t = totals[stack, name]
                    t["cpu"] += cpu_seconds(pid) - mark["cpu"]
                    t["calls"] += result["calls"]
                    t["seconds"] += result["seconds"]
                    t["errors"] += result["errors"]
                    t["p50"].append(result["p50_ms"])
                    t["p99"].append(result["p99_ms"])
            for (stack, name), t in totals.items():
                out["closed_loop"].setdefault(stack, {})[name] = {
                    "sessions": sessions, "calls": t["calls"], "errors": t["errors"],
                    "calls_per_s": t["calls"] / t["seconds"], "cpu_ms_per_call": t["cpu"] / max(t["calls"], 1) * 1000,
                    "p50_ms": statistics.median(t["p50"]), "p99_ms": statistics.median(t["p99"])}
            for rate in (200, 500, 800):
                for name in ("sdk", "flora"):
                    out["open_loop"].setdefault(name, []).append(
                        loop.run_until_complete(open_loop(fast[name][1], 100, rate, open_seconds)))
        os.sched_setaffinity(0, mine)  # two workers take both cores; the load generator shares them
        with hosted_fleet(["flora"], None, "uvloop", flora_workers=2) as fleet:
            for rate in (500, 800):
                out["open_loop_two_workers"].setdefault("flora", []).append(
                    loop.run_until_complete(open_loop(fleet["flora"][1], 100, rate, open_seconds)))
    finally:
        os.sched_setaffinity(0, mine)
        loop.close()
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


async def stdio_section(quick: bool) -> dict:
    runs = 5 if quick else 11
    results: dict = {"cold_start": cold_start(runs), "tools_list": tools_list_size()}
    with running_sandbox(speed=0.001) as flora_url:  # runs stay pending: get_run is one GET, no downloads
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer sk_sandbox_demo"}) as http:
            ws = (await http.get(f"{flora_url}/workspaces")).json()["workspaces"][0]["workspace_id"]
            prj = (await http.get(f"{flora_url}/projects", params={"workspace_id": ws})).json()["projects"][0]
            run_id = (await http.post(f"{flora_url}/generate", json={
                "type": "image", "prompt": "bench", "workspace_id": ws, "project_id": prj["project_id"]})).json()["run_id"]
        results["per_call"] = await per_call(flora_url, run_id, 50 if quick else 200)
    results["calls_per_generation"] = await calls_per_generation(3 if quick else 10)
    return results


def stdio_table(r: dict) -> list[str]:
    cs, tl, pc, cg = r["cold_start"], r["tools_list"], r["per_call"], r["calls_per_generation"]
    return [
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
        f"| `get_run` over stdio, p50 / p99 (interleaved with the direct GET) | {pc['mcp_stdio']['p50_ms']:.2f} / "
        f"{pc['mcp_stdio']['p99_ms']:.2f} ms | {pc['direct_httpx2']['p50_ms']:.2f} ms | "
        f"+{pc['overhead_stdio_p50_ms']:.2f} ms p50 (target ≤ 3) |",
        f"| agent calls per finished image (sandbox) | {cg['mean_calls']:.2f} (max {cg['max_calls']}) | 1 | target 1 |",
        f"| idle RSS, stdio server | {cs['flora']['idle_rss_mb']:.0f} MB | {cs['floor']['idle_rss_mb']:.0f} MB | target ≤ 80 MB |",
    ]


def _open(row: dict) -> str:
    return (f"{row['served_per_s']:.0f}/s served, p50 {row['p50_ms']:.1f} / p99 {row['p99_ms']:.1f} ms"
            + (f", {row['unfinished']} unfinished" if row["unfinished"] else "")
            + (f", {row['errors']} errors" if row["errors"] else ""))


def hosted_table(h: dict) -> list[str]:
    pinned = (f"server on core {h['server_cores']}, load generator on {h['load_cores']}" if h["server_cores"]
              else "server and load generator share the cores")
    lines = []
    for stack, label in (("uvloop", "uvloop + httptools"), ("asyncio", "asyncio + h11")):
        cl = h["closed_loop"][stack]
        star, sdk, fast, flora = cl["starlette"], cl["sdk"], cl["sdk_fast"], cl["flora"]
        lines += [
            f"| hosted, server CPU per call, {label} ({flora['sessions']} sessions, closed loop; {pinned}) | "
            f"{flora['cpu_ms_per_call']:.2f} ms (`list_models`) | Starlette JSON {star['cpu_ms_per_call']:.2f} ms; "
            f"bare SDK {sdk['cpu_ms_per_call']:.2f} ms; bare SDK + fast path {fast['cpu_ms_per_call']:.2f} ms | "
            f"{flora['cpu_ms_per_call'] / star['cpu_ms_per_call']:.1f}x Starlette (target ≤ 4x), "
            f"{flora['cpu_ms_per_call'] / sdk['cpu_ms_per_call']:.2f}x bare SDK |",
            f"| hosted, calls/s on one worker, {label}, p50 / p99 | {flora['calls_per_s']:.0f}/s, {flora['p50_ms']:.1f} / "
            f"{flora['p99_ms']:.1f} ms | Starlette {star['calls_per_s']:.0f}/s; bare SDK {sdk['calls_per_s']:.0f}/s; "
            f"bare SDK + fast path {fast['calls_per_s']:.0f}/s | {flora['errors']} errors |",
        ]
    for f_row, s_row in zip(h["open_loop"]["flora"], h["open_loop"]["sdk"]):
        target = " (target ≥ 480/s, p99 < 50 ms)" if round(f_row["offered_per_s"], -2) == 500 else ""
        lines.append(f"| hosted, {f_row['offered_per_s']:.0f}/s offered (Poisson) to 100 sessions, one worker | "
                     f"{_open(f_row)} | bare SDK: {_open(s_row)} |{target} |")
    for row in h["open_loop_two_workers"].get("flora", []):
        target = " (target p99 < 50 ms)" if round(row["offered_per_s"], -2) == 800 else ""
        lines.append(f"| hosted, {row['offered_per_s']:.0f}/s offered to 100 sessions, two workers | {_open(row)} | "
                     f"(load generator shares the cores) |{target} |")
    return lines


def table(r: dict) -> str:
    lines = [f"machine: {r['machine']}", "", "| figure | flora-mcp | floor | ratio / target |", "| --- | --- | --- | --- |"]
    if "cold_start" in r:
        lines += stdio_table(r)
    if "hosted" in r:
        lines += hosted_table(r["hosted"])
    return "\n".join(lines)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)  # keep the report readable: no per-request log lines
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shorter windows (~1 min)")
    parser.add_argument("--only", choices=["stdio", "hosted"], help="run one section")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / ".gitignore").write_text("*\n")
    data: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    if args.only != "hosted":
        data |= anyio.run(stdio_section, args.quick)
    if args.only != "stdio":
        data["hosted"] = hosted(args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(table(data))
    print(f"\nJSON: {args.out}")
