"""`OAuthGate`: on MCP paths, an OAuth token is swapped for the user's FLORA key inside the process, so the
key gate, rate limits and the per-user ledger downstream treat both sign-in kinds alike.
`Authorization: Bearer sk_…` (a FLORA key) passes through untouched.
"""

from __future__ import annotations

import json

from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.auth.provider import (
    ProviderTokenVerifier,
)
from mcp.server.auth.routes import build_resource_metadata_url
from pydantic import AnyHttpUrl
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from .provider import ACCESS_PREFIX, OUR_TOKEN_PREFIX, LedgerProvider


class OAuthGate:
    """ASGI middleware in front of the key gate, on MCP paths only.

    A `fmcp_at_…` token is checked by the SDK's bearer backend (known, unexpired, issued for this
    resource) and replaced by the user's FLORA key for the rest of the request; anything else passes
    as before. Every 401 on an MCP path names the protected-resource metadata (RFC 9728), which is how
    an OAuth client finds where to sign in.
    """

    def __init__(self, app: ASGIApp, provider: LedgerProvider, mcp_paths: tuple[str, ...]) -> None:
        self.app = app
        self.mcp_paths = mcp_paths
        self.backend = BearerAuthBackend(ProviderTokenVerifier(provider),  # type: ignore[arg-type]
                                         resource_server_url=AnyHttpUrl(provider.resource))
        metadata = str(build_resource_metadata_url(AnyHttpUrl(provider.resource)))
        self.challenge = f'Bearer resource_metadata="{metadata}"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.mcp_paths):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if token.startswith(OUR_TOKEN_PREFIX) and not token.startswith(ACCESS_PREFIX):
            # a refresh token or a code where an access token belongs: ours, so it never goes to FLORA
            await self._deny(send, "invalid_token", "This is a refresh token or authorization code, not an access "
                             "token; exchange it at /token and send the access token")
            return
        if token.startswith(ACCESS_PREFIX):
            result = await self.backend.authenticate(HTTPConnection(scope))
            if result is None:
                await self._deny(send, "invalid_token", "This sign-in has expired or was revoked; sign in again")
                return
            credentials, user = result
            key = user.access_token.flora_key.get_secret_value()
            scope = dict(scope, user=user, auth=credentials, headers=[
                (k, v) for k, v in scope["headers"] if k != b"authorization"] + [
                (b"authorization", f"Bearer {key}".encode("latin-1"))])

        async def challenged_send(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                message = dict(message, headers=[(k, v) for k, v in message.get("headers", [])
                                                 if k.lower() != b"www-authenticate"]
                               + [(b"www-authenticate", self._header().encode())])
            await send(message)

        await self.app(scope, receive, challenged_send)

    def _header(self, error: str | None = None) -> str:
        return self.challenge + (f', error="{error}"' if error else "")

    async def _deny(self, send: Send, error: str, description: str) -> None:
        body = json.dumps({"error": error, "error_description": description}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", self._header(error).encode())]})
        await send({"type": "http.response.body", "body": body})

