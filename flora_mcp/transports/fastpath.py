"""A cheaper path for stateless Streamable HTTP requests from 2025-era clients.

For every stateless POST the SDK's legacy transport builds a transport, a JSON-RPC dispatcher, a
server task and memory streams, then answers through an SSE response with its own writer and ping
tasks: ~3 ms of CPU before our tool runs. This path serves the same request in the request's own
task through the SDK's `serve_one` (the single-exchange driver its 2026-07-28 entry uses), answering
`application/json`, and switches that one response to `text/event-stream` only when the tool sends
a notification first (progress, logs) or stays silent past the keepalive interval.

What it takes: a single JSON-RPC *request* POSTed to a stateless session manager in SSE mode, with
a 2025-era `MCP-Protocol-Version` (or none), Host/Origin/Content-Type that pass the SDK's own
checks and an Accept naming both JSON and SSE. Everything else — notifications, batches, bad
bodies, refused headers, GET/DELETE, 2026-07-28 requests, stateful sessions — is handed to the
SDK's manager untouched (with the body replayed), so those answers are the SDK's own.

It leans on SDK internals (`serve_one`, `Connection.from_envelope`, the manager's run state read through
flora_mcp/sdk_internals.py); tests/test_fastpath.py pins every name it uses, so an SDK upgrade that moves
one fails loudly, and FLORA_FAST_PATH=false leaves every request to the SDK's own transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.runner import serve_one
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecurityMiddleware
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data, progress_token_from_params
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from ..sdk_internals import manager_is_running, manager_lifespan_state

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0  # a silent tool's response turns SSE and pings at this interval (sse-starlette's default)
_PROTOCOL_HEADER = MCP_PROTOCOL_VERSION_HEADER.lower().encode("latin-1")
_JSON_HEADERS = [(b"content-type", b"application/json")]
# The legacy transport's SSE response headers (sse-starlette adds X-Accel-Buffering).
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache, no-transform"),
                (b"connection", b"keep-alive"), (b"x-accel-buffering", b"no")]


def _json(message: JSONRPCResponse | JSONRPCError | JSONRPCNotification) -> bytes:
    # The legacy transport's own serialisation of every message it writes.
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode()


def _sse(message: JSONRPCResponse | JSONRPCError | JSONRPCNotification) -> bytes:
    return b"event: message\r\ndata: " + _json(message) + b"\r\n\r\n"


class _Response:
    """One POST's answer: a JSON body, unless something must be sent before the result is ready."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = anyio.Lock()
        self.streaming = False

    async def event(self, chunk: bytes) -> None:
        """Send an SSE chunk, committing the response to `text/event-stream` first if it is not yet."""
        async with self._lock:
            if not self.streaming:
                self.streaming = True
                await self._send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def finish(self, answer: JSONRPCResponse | JSONRPCError) -> None:
        """The last write; by now nothing else writes (the handler returned, the watcher has stopped)."""
        if self.streaming:
            await self._send({"type": "http.response.body", "body": _sse(answer), "more_body": False})
            return
        body = _json(answer)
        await self._send({"type": "http.response.start", "status": 200,
                          "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


@dataclass
class _ExchangeContext:
    """The `DispatchContext` for one request: notifications go onto this POST's own response.

    Mirrors what the legacy stateless transport gives a handler: no back-channel for server requests
    (a stateless client's reply would have nowhere to land), request-scoped notifications allowed.
    """

    transport: TransportContext
    request_id: RequestId
    message_metadata: ServerMessageMetadata
    response: _Response
    progress_token: Any = None
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = field(default=False, init=False)

    async def send_raw_request(self, method: str, params: Mapping[str, Any] | None,
                               opts: CallOptions | None = None) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        body = dict(params) if params is not None else None
        try:
            await self.response.event(_sse(JSONRPCNotification(jsonrpc="2.0", method=method, params=body)))
        except OSError:  # the client went away; the handler is being cancelled
            logger.debug("dropped %s: response closed", method)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.notify("notifications/progress", params)


def _error_data(exc: Exception) -> ErrorData:
    """The legacy dispatcher's exception-to-wire mapping (JSONRPCDispatcher._handle_request)."""
    error = handler_exception_to_error_data(exc)
    if error is None:
        logger.exception("handler raised")
        error = ErrorData(code=0, message=str(exc))
    return error


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` with the already-read body put back in front, for handing the request on."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


class StatelessFastPath:
    """ASGI app for the Streamable HTTP endpoint: the fast path where it applies, the SDK's manager otherwise."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager
        self.enabled = manager.stateless and not manager.json_response
        self.security = TransportSecurityMiddleware(manager.security_settings)
        self._limited = RequestBodyLimitMiddleware(self._serve, manager.max_request_body_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.enabled and scope["type"] == "http" and scope["method"] == "POST" and self._legacy_era(scope):
            await self._limited(scope, receive, send)
        else:
            await self.manager.handle_request(scope, receive, send)

    @staticmethod
    def _legacy_era(scope: Scope) -> bool:
        version = next((v for k, v in scope["headers"] if k == _PROTOCOL_HEADER), None)
        return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refusal = await self.security.validate_request(request, is_post=True)  # the SDK's first check, and answer
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        has_json, has_sse = check_accept_headers(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (has_json and has_sse) or content_type != "application/json":
            await self.manager.handle_request(scope, receive, send)  # the SDK answers with its own refusal
            return
        body = await request.body()
        try:
            message = jsonrpc_message_adapter.validate_python(pydantic_core.from_json(body), by_name=False)
        except ValueError:  # unparseable or not JSON-RPC (pydantic's ValidationError is a ValueError)
            message = None
        if not isinstance(message, JSONRPCRequest):  # notifications, responses and errors are the SDK's
            await self.manager.handle_request(scope, _replaying(body, receive), send)
            return
        await self._answer(request, message, receive, send)

    async def _answer(self, request: Request, message: JSONRPCRequest, receive: Receive, send: Send) -> None:
        manager = self.manager
        if not manager_is_running(manager):  # same guard as the manager: not inside its run()
            raise RuntimeError("Task group is not initialized. Make sure to use run().")
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER) or DEFAULT_NEGOTIATED_VERSION
        response = _Response(send)
        dctx = _ExchangeContext(
            transport=TransportContext(kind="streamable-http", can_send_request=False),
            request_id=message.id,
            message_metadata=ServerMessageMetadata(request_context=request),
            response=response,
            progress_token=progress_token_from_params(message.params),
        )
        answer: JSONRPCResponse | JSONRPCError | None = None
        # The handler runs in this task, with one watcher task beside it: a plain asyncio task (uvicorn is
        # asyncio-only) under a cancel scope, cheaper than an anyio task group per request.
        with anyio.CancelScope() as handler:
            watcher = asyncio.get_running_loop().create_task(self._watch(receive, response, handler))
            try:
                result = await serve_one(manager.app, dctx, message.method, message.params,
                                         connection=Connection.from_envelope(version, None, None),
                                         lifespan_state=manager_lifespan_state(manager))
                answer = JSONRPCResponse(jsonrpc="2.0", id=message.id, result=result)
            except Exception as exc:  # noqa: BLE001 - every handler failure is an answer, as in the SDK's dispatcher
                answer = JSONRPCError(jsonrpc="2.0", id=message.id, error=_error_data(exc))
            finally:
                watcher.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait([watcher])
        if answer is None:  # the client disconnected and the handler was cancelled
            return
        try:
            await response.finish(answer)
        except OSError:
            logger.debug("answer to %r dropped: the client went away", message.id)

    @staticmethod
    async def _watch(receive: Receive, response: _Response, handler: anyio.CancelScope) -> None:
        """Cancel the handler if the client goes away; keep a silent long call alive with SSE pings."""
        while True:
            with anyio.move_on_after(KEEPALIVE_SECONDS) as waited:
                if (await receive())["type"] == "http.disconnect":
                    handler.cancel()
                    return
            if waited.cancelled_caught:
                await response.event(b": ping\r\n\r\n")


def with_fast_path(routes: list[BaseRoute], manager: StreamableHTTPSessionManager) -> list[BaseRoute]:
    """The SDK's Streamable HTTP routes with its endpoint served through `StatelessFastPath`."""
    fast = StatelessFastPath(manager)
    return [Route(r.path, endpoint=fast) if isinstance(r, Route) and r.path == "/mcp" else r for r in routes]
