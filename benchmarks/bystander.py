"""Does one user starve the rest? A bystander's `list_workspaces` latency on the hosted server while
another user saturates slow uploads and waves of requests with bad keys arrive.

    python benchmarks/bystander.py [--seconds 15] [--flora-latency 0.1]

Three processes on loopback: a sandbox standing in for FLORA (each API request delayed by
--flora-latency, as a real API is not instant), the hosted flora-mcp server talking to it over HTTP
(so its real connection pools are in play), this script (the bystander), and an attacker process that
runs a "slow media host" holding every answer for a minute, keeps 110 `upload_asset` calls pointed at
it, and sends 400 concurrent requests with fresh bad keys every few seconds. The bystander calls
`list_workspaces` back to back, first alone (baseline), then under attack; figures are printed
beside the floor (p99 under 1 s). Numbers are reported, not asserted.

The media host is on loopback, which the hosted server refuses to fetch (issue 12); so the server
process here is started with loopback counted as public. That one change is the only difference
from `flora-mcp --transport http`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, wait_healthy

FLOOR_P99 = 1.0
ATTACK_UPLOADS = 110
BAD_KEY_WAVE = 400
BAD_KEY_EVERY = 3.0
BYSTANDER, ATTACKER = "sk_sandbox_bystander", "sk_sandbox_attacker"
HANG = 0.0

SANDBOX = """
import sys, anyio, uvicorn
from flora_mcp.sandbox import Sandbox
port, latency, hang = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
sandbox = Sandbox(speed=100, public_base_url=f"http://127.0.0.1:{port}")
sandbox.faults.slow_seconds = latency

async def app(scope, receive, send):  # FLORA hangs for the attacker's keys only (--hang)
    if hang and scope["type"] == "http" and b"sk_sandbox_attacker" in dict(scope["headers"]).get(b"authorization", b""):
        await anyio.sleep(hang)
    await sandbox.app(scope, receive, send)

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""
HANG_KEYS = 20  # the attacker's keys whose FLORA calls hang (a team's worth of accounts, or FLORA slow for them)
HANG_CALLS = 16  # concurrent calls per such key

HOSTED = """
import sys
from flora_mcp import urlfetch
real = urlfetch.is_public
urlfetch.is_public = lambda address: address.is_loopback or real(address)  # the media host is on loopback
from flora_mcp.config import load_settings
from flora_mcp.transports.http import serve
serve(load_settings(port=int(sys.argv[1])))
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=base | (env or {}) |
                            {"PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class SlowMediaHost:
    """Accepts every request and answers only after `hold` seconds."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.open = 0
        self.port = 0

    async def handle(self, stream) -> None:
        self.open += 1
        try:
            async with stream:
                with anyio.move_on_after(self.hold):
                    while await stream.receive(4096):
                        pass
                await stream.send(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 8\r\n\r\n"
                                  b"\x89PNG\r\n\x1a\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            pass
        finally:
            self.open -= 1


def mcp_client(base: str, key: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(120),
                              limits=httpx2.Limits(max_connections=500))
    return Client(streamable_http_client(f"{base}/mcp", http_client=http))


async def bystander(base: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    async with mcp_client(base, BYSTANDER) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            with anyio.move_on_after(60):
                result = await client.call_tool("list_workspaces", {})
                if result.is_error:
                    raise RuntimeError(result.content[0].text)
            latencies.append(time.perf_counter() - started)
            await anyio.sleep(0.05)
    return latencies


async def hung_calls(base: str, stop: anyio.Event, stats: dict) -> None:
    """HANG_KEYS keys, each keeping HANG_CALLS calls in flight; FLORA holds each of them for --hang s."""

    async def one_key(k: int) -> None:
        async with mcp_client(base, f"{ATTACKER}_{k}") as client:
            async def loop() -> None:
                while not stop.is_set():
                    await client.call_tool("list_workspaces", {})
                    stats["hung_calls_done"] = stats.get("hung_calls_done", 0) + 1

            async with anyio.create_task_group() as tg:
                for _ in range(HANG_CALLS):
                    tg.start_soon(loop)

    async with anyio.create_task_group() as tg:
        for k in range(HANG_KEYS):
            tg.start_soon(one_key, k)


async def attack(base: str, media: SlowMediaHost, stop: anyio.Event, stats: dict) -> None:
    if HANG:
        await hung_calls(base, stop, stats)
        return
    async with mcp_client(base, ATTACKER) as client:
        ws = (await client.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]

        async def upload(i: int) -> None:
            while not stop.is_set():
                await client.call_tool("upload_asset", {"url": f"http://127.0.0.1:{media.port}/{i}.png",
                                                        "workspace_id": ws})
                stats["uploads_done"] += 1

        async def bad_keys() -> None:
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
            async with httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=BAD_KEY_WAVE)) as http:
                wave = 0
                while not stop.is_set() and BAD_KEY_WAVE:
                    async def one(i: int, wave: int = wave) -> None:
                        try:
                            r = await http.post(f"{base}/mcp", json=body, headers=headers | {
                                "Authorization": f"Bearer sk_live_bad_{wave}_{i}"})
                            stats["bad_key_status"][r.status_code] = stats["bad_key_status"].get(r.status_code, 0) + 1
                        except httpx2.HTTPError as exc:
                            name = type(exc).__name__
                            stats["bad_key_status"][name] = stats["bad_key_status"].get(name, 0) + 1

                    async with anyio.create_task_group() as tg:
                        for i in range(BAD_KEY_WAVE):
                            tg.start_soon(one, i)
                    wave += 1
                    with anyio.move_on_after(BAD_KEY_EVERY):
                        await stop.wait()

        async with anyio.create_task_group() as tg:
            for i in range(ATTACK_UPLOADS):
                tg.start_soon(upload, i)
            tg.start_soon(bad_keys)
            await stop.wait()
            tg.cancel_scope.cancel()


async def run_attacker(base: str, seconds: float) -> None:
    """The attacker's process: the slow media host and the attack, for `seconds`."""
    media = SlowMediaHost(hold=60)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    media.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    stats: dict = {"uploads_done": 0, "bad_key_status": {}}
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, media.handle)
        tg.start_soon(attack, base, media, stop, stats)
        await anyio.sleep(seconds)
        stats["media_connections_open"] = media.open
        stop.set()
        tg.cancel_scope.cancel()
    print(json.dumps(stats), flush=True)


async def main(seconds: float, latency: float) -> dict:
    flora_port, mcp_port = free_port(), free_port()
    flora = start(SANDBOX, str(flora_port), str(latency), str(HANG))
    hosted = start(HOSTED, str(mcp_port), env={"FLORA_BASE_URL": f"http://127.0.0.1:{flora_port}/api/v1",
                                              "FLORA_RATE_LIMIT": "0", "FLORA_LOG_LEVEL": "WARNING"})
    base = f"http://127.0.0.1:{mcp_port}"
    try:
        wait_healthy(f"http://127.0.0.1:{flora_port}/healthz", flora)
        wait_healthy(f"{base}/healthz", hosted)
        baseline = await bystander(base, min(5.0, seconds))
        # The attacker runs in its own process: its 400-connection waves must not slow the
        # bystander's own event loop, only (if anything) the server's.
        command = [sys.executable, __file__, "--role", "attacker", "--base", base, "--seconds", str(seconds + 3),
                   "--uploads", str(ATTACK_UPLOADS), "--bad-keys", str(BAD_KEY_WAVE), "--hang", str(HANG)]
        attacker = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 (before timing)
        await anyio.sleep(2)  # let the attack build up
        attacked = await bystander(base, seconds)
        out, _ = attacker.communicate(timeout=120)
        stats = json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in (hosted, flora):
            proc.terminate()
            proc.wait(10)
    return {
        "flora_latency_s": latency,
        "baseline": {"calls": len(baseline), "p50_s": pct(baseline, 50), "p99_s": pct(baseline, 99),
                     "max_s": max(baseline)},
        "under_attack": {"calls": len(attacked), "p50_s": pct(attacked, 50), "p99_s": pct(attacked, 99),
                         "max_s": max(attacked)},
        "attack": {"hang_s": HANG, "hung_calls_done": stats.get("hung_calls_done", 0),
                   "uploads_in_flight": ATTACK_UPLOADS, "media_connections_open": stats["media_connections_open"],
                   "bad_key_waves_of": BAD_KEY_WAVE, "bad_key_answers": stats["bad_key_status"]},
        "floor_p99_s": FLOOR_P99,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--flora-latency", type=float, default=0.1)
    parser.add_argument("--uploads", type=int, default=ATTACK_UPLOADS, help="slow uploads kept in flight")
    parser.add_argument("--bad-keys", type=int, default=BAD_KEY_WAVE, help="concurrent bad-key requests per wave")
    parser.add_argument("--hang", type=float, default=0.0,
                        help="instead: FLORA holds each call of 20 attacker keys (16 calls in flight each) this long")
    parser.add_argument("--role", choices=["bystander", "attacker"], default="bystander", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ATTACK_UPLOADS, BAD_KEY_WAVE, HANG = args.uploads, args.bad_keys, args.hang
    if args.role == "attacker":
        anyio.run(run_attacker, args.base, args.seconds)
        sys.exit(0)
    result = anyio.run(main, args.seconds, args.flora_latency)
    b, a = result["baseline"], result["under_attack"]
    print(f"bystander list_workspaces, alone:        p50 {b['p50_s']:.3f} s  p99 {b['p99_s']:.3f} s  "
          f"max {b['max_s']:.3f} s  ({b['calls']} calls)")
    print(f"bystander list_workspaces, under attack: p50 {a['p50_s']:.3f} s  p99 {a['p99_s']:.3f} s  "
          f"max {a['max_s']:.3f} s  ({a['calls']} calls)   floor: p99 < {FLOOR_P99:.1f} s  "
          f"{'OK' if a['p99_s'] < FLOOR_P99 else 'MISSED'}")
    print(f"attack: {ATTACK_UPLOADS} slow uploads kept in flight (media host saw "
          f"{result['attack']['media_connections_open']} connections), bad-key waves of {BAD_KEY_WAVE}: "
          f"answers {result['attack']['bad_key_answers']}")
    print(json.dumps(result))
