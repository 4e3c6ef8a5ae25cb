"""The hosted endpoint: one ASGI app with Streamable HTTP at /mcp, legacy SSE at /sse, /healthz.

It is a thin adapter around `create_server()`: the same tools as stdio, with each user's FLORA key
taken from their own `Authorization: Bearer …` header. Streamable HTTP runs stateless, so replicas
behind any load balancer serve the same users without sticky sessions (SSE still needs them).

    uvicorn flora_mcp.transports.http:create_app --factory --host 0.0.0.0 --port 8000 --workers 4
"""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import telemetry
from ..client import FloraClient
from ..config import Settings, load_settings, state_url
from ..connect import build_client
from ..ledger import open_ledger
from ..server import create_server
from .fastpath import with_fast_path
from .hardening import uvicorn_config
from .keygate import MCP_PATHS, Gatekeeper, KeyGate
from .ops import operator_routes
from .webhooks import webhook_routes

logger = logging.getLogger("flora_mcp.http")

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def create_app(settings: Settings | None = None, *, client: FloraClient | None = None,
               host: str | None = None) -> Starlette:
    """The hosted ASGI app (also a uvicorn/gunicorn `--factory` target; settings from FLORA_* env)."""
    settings = settings or load_settings()
    host = host or settings.host
    # No server-wide key on the shared client: every request brings its own (see KeyGate).
    client = client or build_client(settings, None, per_request_keys=True)
    # One ledger for the tools, the key gate's verdicts and rate windows, and OAuth's records: shared by
    # every worker and replica that names the same FLORA_STATE_URL.
    telemetry.configure(settings)  # before the ledger is made: it is wrapped when telemetry is on
    ledger = telemetry.instrument_ledger(open_ledger(state_url(settings)))
    gate = KeyGate(settings, client.with_api_key, ledger.shared)

    def api_key_for(ctx: Context) -> str | None:
        return gate.key_for(ctx.headers)

    # OAuth sign-in (FLORA_OAUTH): its records live in the ledger's store, shared with the tools.
    auth_routes, provider = [], None
    if settings.oauth:
        from .oauth import oauth_routes

        auth_routes, provider = oauth_routes(settings, ledger.shared, client.with_api_key)
    server = create_server(settings, client=client, api_key_for=api_key_for, ledger=ledger)
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
        await ledger.aclose()

    if settings.stateless:
        # The SDK's transport logs "Terminating session: None" at INFO for every stateless request it
        # serves; the access log already has one line per request.
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    # FLORA_FAST_PATH=false: every request through the SDK's own transport (see sdk_internals.py).
    mcp_routes = with_fast_path(streamable.routes, server.session_manager) if settings.fast_path \
        else streamable.routes
    app = Starlette(routes=[Route("/healthz", healthz), *operator_routes(settings, ledger), *mcp_routes,
                            *sse.routes, *auth_routes, *webhook_routes(settings, ledger)], lifespan=lifespan)
    app.add_middleware(Gatekeeper, gate=gate)  # type: ignore[arg-type]
    if provider is not None:  # outermost: swaps an OAuth token for the user's FLORA key before the key gate
        from .oauth import OAuthGate

        app.add_middleware(OAuthGate, provider=provider, mcp_paths=MCP_PATHS)  # type: ignore[arg-type]
    telemetry.instrument_app(app)  # outermost: one span per HTTP request, named in the access log
    return app


def serve(settings: Settings, *, transport: str = "http") -> int:
    """Run the hosted app under uvicorn. `transport` only names what the caller asked for: the one
    app always serves both Streamable HTTP and SSE."""
    import uvicorn

    host, port = settings.host, settings.port
    try:
        app = create_app(settings, host=host)
    except ValueError as exc:  # e.g. OAuth without FLORA_TOKEN_SECRET: refuse to start, say what to set
        print(f"flora-mcp: {exc}", file=sys.stderr)
        return 2
    print(f"flora-mcp on http://{host}:{port}: Streamable HTTP at /mcp, SSE at /sse, health at /healthz"
          + (" (sandbox)" if settings.sandbox else ""), file=sys.stderr)
    uvicorn.Server(uvicorn_config(app, host, port)).run()
    return 0



def __getattr__(name: str) -> Any:
    """`HeaderDeadlineH11` for uvicorn's own command line (`--http flora_mcp.transports.http:HeaderDeadlineH11`):
    built on first use in hardening.py, so importing this module stays cheap."""
    from . import hardening

    return getattr(hardening, name)
