"""What telemetry costs: stdio cold start and hosted CPU/latency per call, side by side (issue 27).

    cd /tmp && python /path/to/benchmarks/telemetry_bench.py [--base DIR] [--rounds 3] [--seconds 3] [--runs 8]

(from outside the repository: `python -m`'s working directory comes first on sys.path, before --base;
`git archive <commit> flora_mcp | tar -x -C DIR` makes a base, `python -m compileall DIR` keeps start-up fair)

Variants, interleaved round by round so a change in machine load hits all alike:
  base         the code before telemetry (a checkout given by --base, put first on PYTHONPATH), if given
  off          this tree, no OTEL_* and no FLORA_METRICS: telemetry off
  otlp_closed  this tree, OTEL_EXPORTER_OTLP_ENDPOINT at a loopback port where nothing listens
  otlp_open    this tree, OTLP to a stand-in collector in this process that answers 200 to every export
  prometheus   this tree, FLORA_METRICS=app (OpenTelemetry SDK on, Prometheus reader, no OTLP)

Hosted: `uvicorn flora_mcp.transports.http:create_app --factory` on the sandbox (one worker, uvloop),
closed loop of 10 sessions; server pinned to one core, load generator to the other where possible.
Two tools: list_models (what bench.py reports; served from the catalogue cache) and get_run (a FLORA
request and a ledger read on every call). Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2

from benchmarks.bench import FLORA, LOGS, STACKS, Stdio, _cores, clean_env, cpu_seconds, http_server
from benchmarks.loadgen import Target, closed_loop, new_loop
from tests.helpers import DEMO_KEY, free_port

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def stand_in_collector() -> int:
    """An OTLP/HTTP endpoint that accepts every export (200, empty body), on a thread; its port."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def variants(base: Path | None) -> dict[str, dict[str, str]]:
    closed = str(free_port())  # bound by nobody: every export attempt is refused
    out = {}
    if base is not None:
        out["base"] = {"PYTHONPATH": str(base)}
    out["off"] = {}
    out["otlp_closed"] = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed}"}
    out["otlp_open"] = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{stand_in_collector()}"}
    out["prometheus"] = {"FLORA_METRICS": "app"}
    return out


def _env(extra: dict[str, str], **more: str) -> dict[str, str]:
    env = {k: v for k, v in clean_env(**more).items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    return env | extra


def cold_start(names: dict[str, dict[str, str]], runs: int) -> dict:
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(runs):
        for name, extra in names.items():
            server = Stdio(FLORA + ["--sandbox"], _env(extra))
            _, t_list = server.handshake()
            samples[name].append(t_list * 1000)
            server.close()
    return {name: {"tools_list_ms_median": statistics.median(s), "min": min(s), "max": max(s)}
            for name, s in samples.items()}


def startup(names: dict[str, dict[str, str]], runs: int) -> dict:
    """Import the server and build it (what a stdio start does before it reads stdin), in a fresh
    interpreter: less noisy than the handshake on a shared machine. Min and median of `runs`."""
    code = ("import time; t = time.perf_counter()\n"
            "from flora_mcp.config import load_settings\n"
            "from flora_mcp.server import create_server\n"
            "create_server(load_settings(sandbox=True))\n"
            "print((time.perf_counter() - t) * 1000)")
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(runs):
        for name, extra in names.items():
            out = subprocess.run([sys.executable, "-c", code], env=_env(extra), capture_output=True, text=True,
                                 check=True, timeout=60)
            samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return {name: {"min_ms": min(s), "median_ms": statistics.median(s)} for name, s in samples.items()}


def _run_id(port: int) -> str:
    """Start one sandbox generation through the hosted server; its run ID (get_run's argument)."""
    url = f"http://127.0.0.1:{port}/mcp"
    headers = ACCEPT | {"Authorization": f"Bearer {DEMO_KEY}"}

    def call(name: str, args: dict) -> dict:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}}
        text = httpx2.post(url, json=body, headers=headers, timeout=60).text
        messages = [json.loads(x.removeprefix("data: ")) for x in text.splitlines() if x.startswith(("{", "data: {"))]
        return next(m for m in messages if "result" in m)["result"]["structuredContent"]  # after any progress

    ws = call("list_workspaces", {})["workspaces"][0]["workspace_id"]
    prj = call("list_projects", {"workspace_id": ws})["projects"][0]["project_id"]
    run = call("start_generation", {"type": "image", "prompt": "bench", "workspace_id": ws, "project_id": prj,
                                    "model": "t2i-flux-2-schnell", "wait_seconds": 10})
    return run["run_id"]


def hosted(names: dict[str, dict[str, str]], rounds: int, seconds: float) -> dict:
    from contextlib import ExitStack

    server_cores, load_cores = _cores()
    mine = os.sched_getaffinity(0)
    loop_name, http_name = STACKS["uvloop"]
    log_config = LOGS / "hosted-logging.json"
    LOGS.mkdir(parents=True, exist_ok=True)
    from benchmarks.bench import HOSTED_LOG_CONFIG

    log_config.write_text(json.dumps(HOSTED_LOG_CONFIG))
    loop = new_loop()
    totals: dict = {}
    try:
        if load_cores:
            os.sched_setaffinity(0, load_cores)
        with ExitStack() as up:
            targets = {}
            for name, extra in names.items():
                port = free_port()
                cmd = [sys.executable, "-m", "uvicorn", "flora_mcp.transports.http:create_app", "--factory",
                       "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", loop_name,
                       "--http", http_name, "--log-config", str(log_config), "--no-access-log"]
                env = _env(extra, FLORA_SANDBOX="1", FLORA_RATE_LIMIT="0", FLORA_SANDBOX_SPEED="200",
                           FLORA_STATE_URL="memory:")
                pid = up.enter_context(http_server(cmd, port, env, f"telemetry-{name}", server_cores))
                run_id = _run_id(port)
                targets[name] = (pid, {
                    "list_models": Target(port=port, tool="list_models", args={"type": "image"}, key=DEMO_KEY),
                    "get_run": Target(port=port, tool="get_run", args={"run_id": run_id, "wait_seconds": 0},
                                      key=DEMO_KEY)})
            for _ in range(rounds):
                for tool, sessions in (("list_models", 10), ("get_run", 10), ("get_run", 1)):
                    for name, (pid, tools) in targets.items():
                        mark: dict = {}
                        result = loop.run_until_complete(closed_loop(
                            tools[tool], sessions, seconds, on_start=lambda m=mark, p=pid: m.update(cpu=cpu_seconds(p))))
                        t = totals.setdefault((f"{tool} x{sessions}", name), {"cpu": 0.0, "calls": 0, "errors": 0,
                                                                              "p50": [], "p99": [], "seconds": 0.0})
                        t["cpu"] += cpu_seconds(pid) - mark["cpu"]
                        t["calls"] += result["calls"]
                        t["errors"] += result["errors"]
                        t["seconds"] += result["seconds"]
                        t["p50"].append(result["p50_ms"])
                        t["p99"].append(result["p99_ms"])
    finally:
        os.sched_setaffinity(0, mine)
        loop.close()
    return {f"{tool}/{name}": {"calls": t["calls"], "errors": t["errors"],
                               "cpu_ms_per_call": t["cpu"] / max(t["calls"], 1) * 1000,
                               "p50_ms": statistics.median(t["p50"]), "p99_ms": statistics.median(t["p99"])}
            for (tool, name), t in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="a checkout of the code before telemetry, for the 'base' variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=8, help="cold starts per variant")
    parser.add_argument("--only", choices=["stdio", "hosted"])
    args = parser.parse_args()
    names = variants(args.base)
    out: dict = {"machine_cores": len(os.sched_getaffinity(0)), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.only in (None, "stdio"):
        out["stdio_cold_start"] = cold_start(names, args.runs)
        for name, row in out["stdio_cold_start"].items():
            print(f"cold start {name:12s} tools/list answered at {row['tools_list_ms_median']:7.1f} ms median "
                  f"(min {row['min']:.1f}, max {row['max']:.1f}, {args.runs} runs)", flush=True)
        out["import_and_create_server"] = startup(names, args.runs * 2)
        for name, row in out["import_and_create_server"].items():
            print(f"import+create_server {name:12s} min {row['min_ms']:6.1f} ms  median {row['median_ms']:6.1f} ms "
                  f"({args.runs * 2} runs)", flush=True)
    if args.only in (None, "hosted"):
        out["hosted"] = hosted(names, args.rounds, args.seconds)
        for key, row in out["hosted"].items():
            print(f"hosted {key:30s} cpu {row['cpu_ms_per_call']:6.3f} ms/call  p50 {row['p50_ms']:6.2f} ms  "
                  f"p99 {row['p99_ms']:6.2f} ms  calls {row['calls']:6d}  errors {row['errors']}", flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
