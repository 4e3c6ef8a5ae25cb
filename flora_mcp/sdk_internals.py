"""Every place flora-mcp reaches past the MCP SDK's public API, in one module.

The SDK (`mcp` 2.3) has no public hook for these; each function names the private attribute it uses and
why. tests/test_sdk_reliance.py checks each one by name, so an SDK release that moves one fails there with
a message, not deep in a tool call. pyproject.toml pins `mcp>=2.3,<2.4` because of this file: widen the
range only when that test passes on the new minor release.

The hosted fast path (transports/fastpath.py) is built on SDK internals too (`serve_one`,
`Connection.from_envelope`, the session manager's run state read here); FLORA_FAST_PATH=false turns it
off and leaves every request to the SDK's own transport.
"""

from __future__ import annotations

from typing import Any

# --- the low-level server under MCPServer ----------------------------------------------------------------

def add_request_handler(server: Any, method: str, params_type: type, handler: Any) -> None:
    """Serve a request method MCPServer has no hook for (logging/setLevel). The low-level server's request
    table is the SDK's own extension point, and declares the matching capability once the handler exists."""
    server._lowlevel_server.add_request_handler(method, params_type, handler)


def drop_request_handlers(server: Any, *methods: str) -> None:
    """Stop serving methods MCPServer always serves (prompts/list and prompts/get declare a prompts
    capability we do not have)."""
    handlers = server._lowlevel_server._request_handlers
    for method in methods:
        handlers.pop(method, None)


def add_request_middleware(server: Any, middleware: Any) -> None:
    """Our middleware inside the SDK's own request middleware (and its span): telemetry's tool metrics."""
    server._lowlevel_server.middleware.append(middleware)


def add_resource_template(server: Any, template: Any) -> None:
    """Register a ResourceTemplate object. MCPServer registers templates from functions only; ours is a
    subclass that gives each resource its own MIME type."""
    server._resource_manager._templates[template.uri_template] = template


# --- sessions --------------------------------------------------------------------------------------------

def connection_of(session: Any) -> Any:
    """The connection a per-request ServerSession belongs to: where logging/setLevel applies.

    mcp 2.3 builds a ServerSession per request and keeps the connection private; fall back to
    the session itself if that ever changes (levels then apply per request, never across users).
    """
    return getattr(session, "_connection", session)


# --- the Streamable HTTP session manager (the fast path) -------------------------------------------------

def manager_is_running(manager: Any) -> bool:
    """Whether the session manager is inside its run() (the manager's own guard before serving)."""
    return manager._task_group is not None


def manager_lifespan_state(manager: Any) -> Any:
    """The lifespan state the manager hands each request it serves (serve_one needs the same)."""
    return manager._lifespan_state
