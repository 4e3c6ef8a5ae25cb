"""Shared fixtures: a sandbox, a FLORA client on it, and an MCP client session on the server."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from mcp.client import Client

from flora_mcp.retry import RetryPolicy
from flora_mcp.sandbox import SANDBOX_API_KEY, ManualClock, Sandbox
from flora_mcp.server import create_server
from tests.helpers import settings


@pytest.fixture(autouse=True)
def _fast_tests_start_no_process(request, monkeypatch):
    """The default run is the fast set: a test that starts a process must say so with @pytest.mark.slow."""
    if request.node.get_closest_marker("slow") is None:
        def refuse(*args: Any, **kwargs: Any):
            raise AssertionError(f"{request.node.name} starts a process: mark it @pytest.mark.slow")

        monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock) -> Sandbox:
    """A sandbox on a hand-moved clock: runs advance only when a test says so."""
    return Sandbox(clock=clock)


@pytest.fixture
def fast_sandbox() -> Sandbox:
    """A sandbox on the real clock at 200x: an 8 s image finishes in about 0.05 s."""
    return Sandbox(speed=200)


@pytest.fixture
async def flora(sandbox: Sandbox):
    async with sandbox.client() as client:
        yield client


@pytest.fixture
def make_session(fast_sandbox: Sandbox):
    """Open an in-memory MCP client session on a server wired to `fast_sandbox` (or another)."""

    def factory(sandbox: Sandbox | None = None, api_key: str | None = SANDBOX_API_KEY, **overrides: Any) -> Client:
        sb = sandbox or fast_sandbox
        configured = settings(**overrides)
        client = sb.client(api_key, timeout=configured.timeout, retry=RetryPolicy(max_retries=configured.max_retries))
        server = create_server(configured, client=client)
        return Client(server)

    return factory


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (skipped where its binaries are missing; an error on CI,
    which installs them: .ci/postgres)."""
    from tests.helpers import postgres_binaries, running_postgres

    if postgres_binaries() is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise RuntimeError("CI: no PostgreSQL binaries; .ci/postgres should have installed them")
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl, postgres): apt-get install postgresql")
    with running_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server):
    """A database of its own on the session's PostgreSQL server."""
    from tests.helpers import new_database

    return new_database(postgres_server)
