"""What stands in front of the sandbox's /api/v1 routes, as FLORA's own gateway would: the bearer key, the
request log, rate limits, idempotent replays, and the faults tests turn on (slow, 5xx, dropped or late
answers); DropConnections carries out the dropped-connection fault around the whole app."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .state import Account, SandboxState
from .wire import error


class ConnectionDropped(Exception):
    """Raised while sending a response the `drop_after_processing` fault swallows."""


def with_account(route: Route) -> Route:
    """The route with its (request, account) handler called as a Starlette endpoint."""
    handler = route.endpoint

    async def endpoint(request: Request) -> Response:
        answer = handler(request, request.state.sandbox_account)
        return await answer if inspect.isawaitable(answer) else answer

    return Route(route.path, endpoint, methods=sorted(route.methods or ()), name=route.name)


class ApiGate:
    """What FLORA does before and after every /api/v1 route: the bearer key, the request log, rate
    limits, idempotent replays, and the faults tests turn on (slow, 5xx, dropped or late answers)."""

    def __init__(self, app: Any, state: SandboxState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state, faults = self.state, self.state.faults
        request = Request(scope, receive)
        body = await request.body()  # read once here (the sandbox's bodies are small); the route reads it again
        if faults.slow_seconds:
            await anyio.sleep(faults.slow_seconds)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            await error(401, "unauthorized", "Missing bearer token")(scope, receive, send)
            return
        account = state.account_for(auth[7:].strip())
        if account is None:
            await error(401, "invalid_api_key", "Invalid API key")(scope, receive, send)
            return
        path, post = request.url.path.removeprefix("/api/v1"), request.method == "POST"
        state.log_request(account.key_fingerprint, request.method, path)
        wait = state.rate_limited(account.key_fingerprint)
        if wait is not None:
            await error(429, "rate_limited", "Too many requests",
                        headers={"Retry-After": str(int(wait + 0.999))})(scope, receive, send)
            return
        if faults.server_errors and faults.applies(path):
            faults.server_errors -= 1
            await error(503, "unknown_error", "Service temporarily unavailable")(scope, receive, send)
            return
        scope.setdefault("state", {})["sandbox_account"] = account
        replay = self._replayed(request, account, body) if post else None
        if replay is not None:
            answer = [{"type": "http.response.start", "status": replay.status_code, "headers": replay.raw_headers},
                      {"type": "http.response.body", "body": replay.body}]
        else:
            answer = await self._route(scope, body, send)
            status, content = answer[0]["status"], b"".join(m.get("body", b"") for m in answer[1:])
            if post and 200 <= status < 300:
                self._store_answer(request, account, body, status, content)
        if post and faults.drop_after_processing and faults.applies(path):
            faults.drop_after_processing -= 1
            scope["state"]["sandbox_drop"] = True
        if post and faults.slow_answers and faults.applies(path):
            faults.slow_answers -= 1  # processed now, answered late: past a client's timeout
            await anyio.sleep(faults.slow_answer_seconds)
        for message in answer:
            await send(message)

    async def _route(self, scope: dict, body: bytes, send: Any) -> list[dict]:
        """Run the route on the body already read; keep its answer to send after the faults."""
        answer: list[dict] = []
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def keep(message: dict) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        return answer

    def _replayed(self, request: Request, account: Account, body: bytes) -> Response | None:
        """FLORA's docs' behaviour (state.idempotency_mode == "replay"): a spent key with the same body
        replays the first answer; with another body, 422 idempotency_conflict."""
        key = request.headers.get("idempotency-key")
        if self.state.idempotency_mode != "replay" or not key:
            return None
        seen = self.state.answers.get((account.key_fingerprint, key))
        if seen is None:
            return None
        body_hash, status, content = seen
        if body_hash != hashlib.sha256(body).hexdigest():
            return error(422, "idempotency_conflict", "Idempotency key reused with a different request body")
        return Response(content, status_code=status, media_type="application/json",
                        headers={"idempotent-replayed": "true"})

    def _store_answer(self, request: Request, account: Account, body: bytes, status: int, content: bytes) -> None:
        key = request.headers.get("idempotency-key")
        if self.state.idempotency_mode == "replay" and key:
            self.state.answers[(account.key_fingerprint, key)] = (hashlib.sha256(body).hexdigest(), status, content)


class DropConnections:
    """Sends the status line, then drops the connection before the body (fault injection)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded_send(message: dict) -> None:
            if message["type"] == "http.response.body" and scope.get("state", {}).get("sandbox_drop"):
                raise ConnectionDropped("sandbox fault: connection dropped after processing")
            await send(message)

        await self.app(scope, receive, guarded_send)
