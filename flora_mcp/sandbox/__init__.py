"""An embedded FLORA-compatible API: for tests, and for trying flora-mcp without a key or network.

    sandbox = Sandbox()
    client = sandbox.client()          # a FloraClient over an in-process transport
    await client.list_workspaces()

Run it on a port with `flora-mcp sandbox --port 8765`; its base URL is then
http://127.0.0.1:8765/api/v1 and its key is `sk_sandbox_demo`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2

from .app import build_app
from .gate import ConnectionDropped
from .state import SANDBOX_API_KEY, Faults, ManualClock, SandboxState

__all__ = ["SANDBOX_API_KEY", "Faults", "ManualClock", "Sandbox"]

IN_PROCESS_ORIGIN = "http://sandbox.flora.local"


class _InProcessTransport(httpx2.AsyncBaseTransport):
    """ASGITransport, plus: a dropped connection looks like one (RemoteProtocolError)."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx2.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response", request=request) from exc


class Sandbox:
    """State plus the ASGI app that serves it."""

    def __init__(
        self,
        *,
        speed: float = 5.0,
        clock: Callable[[], float] = time.time,
        credits: float | None = None,
        public_base_url: str = IN_PROCESS_ORIGIN,
        idempotency_mode: str = "conflict",
    ) -> None:
        self.state = SandboxState(clock=clock, speed=speed, credits=credits, public_base_url=public_base_url,
                                  idempotency_mode=idempotency_mode)
        self.app = build_app(self.state)

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def base_url(self) -> str:
        return f"{self.state.public_base_url}/api/v1"

    def transport(self) -> httpx2.AsyncBaseTransport:
        return _InProcessTransport(self.app)

    def client(self, api_key: str | None = SANDBOX_API_KEY, **kwargs: Any):
        """A FloraClient wired to this sandbox in-process: the same client code as for FLORA."""
        from ..client import FloraClient

        return FloraClient(api_key, base_url=self.base_url, transport=self.transport(), **kwargs)

    def charged_runs(self, api_key: str = SANDBOX_API_KEY) -> list[str]:
        from .state import fingerprint

        fp = fingerprint(api_key)
        return [run_id for account, run_id, _ in self.state.charges if account == fp]
