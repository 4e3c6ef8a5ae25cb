"""A light HTTP/1.1 load generator for the hosted benchmarks: the server must be the bottleneck, not us.

One keep-alive connection per session, requests prebuilt as bytes, responses parsed by httptools on
uvloop (when installed). Session setup (`initialize`, `notifications/initialized`) happens before the
timed window. Two modes:

- closed loop: every session sends its next call as soon as the last one is answered (max throughput);
- open loop: Poisson arrivals at a fixed offered rate spread over the sessions, latency measured from
  each call's scheduled arrival, so a server that falls behind shows it in p99 (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import httptools

PROTOCOL = "2025-11-25"
INIT = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "loadgen", "version": "0"}}


def _post(host: str, path: str, body: dict, key: str | None) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Accept: application/json, text/event-stream",
            "Content-Type: application/json", f"MCP-Protocol-Version: {PROTOCOL}", f"Content-Length: {len(payload)}"]
    if key:
        head.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `call` sends prebuilt bytes and waits for the whole response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body = bytearray()
        self.done: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result((self.parser.get_status_code(), bytes(self.body)))

    def connection_lost(self, exc) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection closed"))

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.body.clear()
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.done


def _ok(status: int, body: bytes) -> bool:
    return status == 200 and b'"result"' in body and b'"isError":true' not in body


@dataclass
class Target:
    """A server endpoint and the one tool call every request makes."""

    port: int
    tool: str
    args: dict
    key: str | None = None
    path: str = "/mcp"
    handshake: bool = True  # False for the bare Starlette floor, which speaks no MCP
    call: bytes = field(init=False)

    def __post_init__(self) -> None:
        host = f"127.0.0.1:{self.port}"
        self.call = _post(host, self.path, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                            "params": {"name": self.tool, "arguments": self.args}}, self.key)
        self.init = _post(host, self.path, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}, self.key)
        self.initialized = _post(host, self.path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, self.key)


async def _open_sessions(target: Target, n: int) -> list[_Connection]:
    loop = asyncio.get_running_loop()
    sessions = []
    for _ in range(n):
        _, conn = await loop.create_connection(_Connection, "127.0.0.1", target.port)
        if target.handshake:
            status, body = await conn.call(target.init)
            assert status == 200, (status, body[:200])
            status, _ = await conn.call(target.initialized)
            assert status in (200, 202), status
        status, body = await conn.call(target.call)  # warm the path once, outside the window
        assert _ok(status, body), (status, body[:300])
        sessions.append(conn)
    return sessions


def _close(sessions: list[_Connection]) -> None:
    for conn in sessions:
        conn.transport.close()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def closed_loop(target: Target, sessions: int, seconds: float, on_start=None) -> dict:
    """Every session calls back to back for `seconds`; returns calls, errors and latencies."""
    conns = await _open_sessions(target, sessions)
    latencies: list[float] = []
    errors = 0
    if on_start:
        on_start()
    started = time.perf_counter()
    deadline = started + seconds

    async def run(conn: _Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            status, body = await conn.call(target.call)
            latencies.append(time.perf_counter() - t)
            errors += not _ok(status, body)

    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.perf_counter() - started
    _close(conns)
    return {"sessions": sessions, "calls": len(latencies), "errors": errors, "seconds": elapsed,
            "calls_per_s": len(latencies) / elapsed, "p50_ms": pct(latencies, 50) * 1000,
            "p99_ms": pct(latencies, 99) * 1000}


async def open_loop(target: Target, sessions: int, rate: float, seconds: float, drain: float = 10.0,
                    on_start=None, seed: int = 1) -> dict:
    """Poisson arrivals at `rate` calls/s over `sessions` connections for `seconds`.

    Each arrival goes to a random session and waits behind that session's earlier calls (HTTP/1.1,
    one call in flight per connection); its latency counts from the scheduled arrival time.
    """
    conns = await _open_sessions(target, sessions)
    rng = random.Random(seed)
    arrivals: list[tuple[float, int]] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            break
        arrivals.append((t, rng.randrange(sessions)))
    queues: list[list[float]] = [[] for _ in range(sessions)]
    for at, s in arrivals:
        queues[s].append(at)
    latencies: list[float] = []
    errors = 0
    if on_start:
        on_start()
    started = time.perf_counter()
    last_done = started

    async def run(conn: _Connection, schedule: list[float]) -> None:
        nonlocal errors, last_done
        for at in schedule:
            delay = started + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, body = await conn.call(target.call)
            now = time.perf_counter()
            latencies.append(now - (started + at))
            errors += not _ok(status, body)
            last_done = max(last_done, now)

    tasks = [asyncio.ensure_future(run(c, q)) for c, q in zip(conns, queues)]
    _, pending = await asyncio.wait(tasks, timeout=seconds + drain)
    for task in pending:
        task.cancel()
    _close(conns)
    served_window = max(last_done - started, seconds)
    return {"sessions": sessions, "offered_per_s": len(arrivals) / seconds, "calls": len(latencies),
            "unfinished": len(arrivals) - len(latencies), "errors": errors,
            "served_per_s": len(latencies) / served_window, "p50_ms": pct(latencies, 50) * 1000,
            "p99_ms": pct(latencies, 99) * 1000}


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()
