"""The hosted endpoint: one ASGI app with Streamable HTTP at /mcp, legacy SSE at /sse, /healthz.

It is a thin adapter around `create_server()`: the same tools as stdio, with each user's FLORA key
taken from their own `Authorization: Bearer …` header. Streamable HTTP runs stateless, so replicas
behind any load balancer serve the same users without sticky sessions (SSE still needs them).

    uvicorn flora_mcp.transports.http:create_app --factory --host 0.0.0.0 --port 8000 --workers 4
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .._recent import Recent
from ..client import FloraClient
from ..config import Settings, load_settings
from ..errors import AuthenticationError, FloraError
from ..server import build_client, create_server
from .fastpath import with_fast_path

logger = logging.getLogger("flora_mcp.http")
access_log = logging.getLogger("flora_mcp.access")

MCP_PATHS = ("/mcp", "/sse", "/messages")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_KEY_CHECK_TTL = 300.0  # a key FLORA accepted is trusted this long before it is checked again
_KEY_CACHE_SIZE = 10_000


def fingerprint(key: str) -> str:
    """What logs may say about a key: a short hash, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def bearer(headers: Any) -> str | None:
    value = (headers.get("authorization") or "") if headers is not None else ""
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _security(settings: Settings, host: str) -> TransportSecuritySettings:
    hosts = [h.strip() for h in settings.allowed_hosts.split(",") if h.strip()]
    origins = [o.strip() for o in settings.allowed_origins.split(",") if o.strip()]
    if hosts or origins:
        return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                         allowed_origins=origins)
    if host in _LOOPBACK:
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    logger.warning("bound to %s with no FLORA_ALLOWED_HOSTS: Host/Origin checks are off; set them behind a "
                   "public name", host)
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


class _KeyGate:
    """Admits a request only with a FLORA key that FLORA accepts; limits each key's request rate."""

    def __init__(self, settings: Settings, client_for_key: Any) -> None:
        self.settings = settings
        self.client_for_key = client_for_key
        self.verified: Recent = Recent(_KEY_CACHE_SIZE)  # key fingerprint -> when FLORA last accepted it
        self.windows: Recent = Recent(_KEY_CACHE_SIZE)  # key fingerprint -> request times in the last minute

    def key_for(self, headers: Any) -> str | None:
        key = bearer(headers)
        if key is None and self.settings.single_tenant and self.settings.api_key:
            return self.settings.api_key.get_secret_value()
        return key

    async def check(self, key: str | None) -> JSONResponse | None:
        if key is None:
            return _unauthorized("Send your FLORA API key as 'Authorization: Bearer sk_live_…'")
        fp = fingerprint(key)
        seen = self.verified.get(fp)
        if seen is None or time.monotonic() - seen > _KEY_CHECK_TTL:
            try:
                await self.client_for_key(key).list_workspaces()
            except AuthenticationError:
                return _unauthorized("FLORA rejected this API key; check it in FLORA's settings", "invalid_token")
            except FloraError as exc:
                return JSONResponse({"error": "flora_unavailable", "message": exc.message}, status_code=503)
            self.verified[fp] = time.monotonic()
        return self._rate(fp)

    def _rate(self, fp: str) -> JSONResponse | None:
        limit = self.settings.rate_limit
        if not limit:
            return None
        now = time.monotonic()
        window = [t for t in self.windows.get(fp, ()) if now - t < 60.0]
        if len(window) >= limit:
            self.windows[fp] = window
            wait = max(1, int(60.0 - (now - window[0]) + 0.999))
            return JSONResponse({"error": "rate_limited", "message": f"Too many requests; retry in {wait} s"},
                                status_code=429, headers={"Retry-After": str(wait)})
        window.append(now)
        self.windows[fp] = window
        return None


def _unauthorized(message: str, error: str = "invalid_request") -> JSONResponse:
    return JSONResponse(
        {"error": "unauthorized", "message": message},
        status_code=401,
        # Header values must be latin-1: the human message stays in the body.
        headers={"WWW-Authenticate": f'Bearer realm="flora-mcp", error="{error}"'},
    )


class _Gatekeeper:
    """ASGI middleware: key check and rate limit on MCP paths, and one access-log line per request."""

    def __init__(self, app: ASGIApp, gate: _KeyGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        request = Request(scope)
        path = scope["path"]
        key = self.gate.key_for(request.headers)
        status = {"code": 0}

        async def logged_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            denial = await self.gate.check(key) if path.startswith(MCP_PATHS) else None
            if denial is not None:
                await denial(scope, receive, logged_send)
            else:
                await self.app(scope, receive, logged_send)
        finally:
            access_log.info(json.dumps({
                "method": scope["method"], "path": path, "status": status["code"],
                "ms": round((time.monotonic() - started) * 1000, 1),
                "key": fingerprint(key) if key else None,
            }))


def create_app(settings: Settings | None = None, *, client: FloraClient | None = None,
               host: str | None = None) -> Starlette:
    """The hosted ASGI app (also a uvicorn/gunicorn `--factory` target; settings from FLORA_* env)."""
    settings = settings or load_settings()
    host = host or settings.host
    # No server-wide key on the shared client: every request brings its own (see _KeyGate).
    client = client or build_client(settings, None, per_request_keys=True)
    gate = _KeyGate(settings, client.with_api_key)

    def api_key_for(ctx: Context) -> str | None:
        return gate.key_for(ctx.headers)

    server = create_server(settings, client=client, api_key_for=api_key_for)
    security = _security(settings, host)
    streamable = server.streamable_http_app(stateless_http=settings.stateless, transport_security=security, host=host,
                                            max_request_body_size=settings.max_body_bytes)
    sse = server.sse_app(transport_security=security, host=host, max_request_body_size=settings.max_body_bytes)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @asynccontextmanager
    async def lifespan(app: Starlette):
        async with server.session_manager.run():
            yield
        await client.aclose()

    if settings.stateless:
        # The SDK's transport logs "Terminating session: None" at INFO for every stateless request it
        # serves; the access log already has one line per request.
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    mcp_routes = with_fast_path(streamable.routes, server.session_manager)
    app = Starlette(routes=[Route("/healthz", healthz), *mcp_routes, *sse.routes], lifespan=lifespan)
    app.add_middleware(_Gatekeeper, gate=gate)  # type: ignore[arg-type]
    app.state.flora_server = server
    return app


def serve(settings: Settings, *, transport: str = "http") -> int:
    """Run the hosted app under uvicorn. `transport` only names what the caller asked for: the one
    app always serves both Streamable HTTP and SSE."""
    import uvicorn

    host, port = settings.host, settings.port
    app = create_app(settings, host=host)
    print(f"flora-mcp on http://{host}:{port}: Streamable HTTP at /mcp, SSE at /sse, health at /healthz"
          + (" (sandbox)" if settings.sandbox else ""), file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
