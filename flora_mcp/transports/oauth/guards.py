"""What wraps the SDK's OAuth routes: per-address caps on the records anyone may ask for, errors shown on
our own page instead of a client's redirect, and client secrets hashed on the way in.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .pages import message_page
from .provider import secret_hash

REGISTRATIONS_PER_HOUR = 1000  # per client address (Claude registers from its own servers); with the two
# caps (this and the consent page's), one address holds at most ~4 MB of unused clients at any time
AUTHORIZE_PER_MINUTE = 60  # per client address


def errors_on_our_page(inner: ASGIApp, issuer: str) -> ASGIApp:
    """/authorize sends the browser only to our consent page. The SDK redirects a bad request (scope,
    resource, response_type, PKCE method) back to the client's registered URL with the error; since
    anyone may register a client, that made /authorize an open redirector (RFC 9700 §4.11.2). Such an
    error is shown here instead, on our own page, and the user goes back to their app."""
    ours = issuer.rstrip("/") + "/"

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        held: dict[str, Any] = {}

        async def checked_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                location = dict(message.get("headers", [])).get(b"location", b"").decode("latin-1")
                if 300 <= message["status"] < 400 and not location.startswith(ours):
                    held["error"] = dict(parse_qsl(urlsplit(location).query))
                    return
            elif held:
                if not message.get("more_body"):
                    error = held["error"]
                    response = message_page("This sign-in request cannot be completed",
                                            f"{error.get('error', 'invalid_request')}: "
                                            f"{error.get('error_description', 'the request was refused')}. Go back "
                                            "to your app and connect again; if this repeats, tell its developer.", 400)
                    await response(scope, receive, send)
                return
            await send(message)

        await inner(scope, receive, checked_send)

    return guarded


def secrets_hashed(inner: ASGIApp) -> ASGIApp:
    """Clients' secrets are stored only as hashes (see register_client), so the SDK's check at /token and
    /revoke compares hashes: the presented secret (form field or Basic header) is hashed on the way in."""

    async def hashing(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await inner(scope, receive, send)
            return
        headers = []
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:6].lower() == b"basic ":
                value = _hashed_basic(value[6:])
            headers.append((name, value))
        body, more = b"", True
        while more:  # the SDK's body limit sits inside; these forms are small
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > 64 * 1024:
                break
        if b"client_secret=" in body:
            body = urlencode([(k, secret_hash(v) if k == "client_secret" and v else v)
                              for k, v in parse_qsl(body.decode("latin-1"), keep_blank_values=True)]).encode()
        headers = [(k, v) for k, v in headers if k != b"content-length"] + [(b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await inner(dict(scope, headers=headers), replay, send)

    return hashing


def _hashed_basic(encoded: bytes) -> bytes:
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return b"Basic " + encoded  # the SDK answers a malformed header itself
    pair = f"{client_id}:{quote(secret_hash(unquote(secret)), safe='')}" if secret else f"{client_id}:"
    return b"Basic " + base64.b64encode(pair.encode())


def capped(routes: list[Route], store: Any) -> list[Route]:
    """/register and /authorize write records anyone can ask for: cap them per client address so the
    store cannot be flooded. Registrations come from clients' servers (Claude's, for every Claude user),
    so their cap is generous; /authorize comes from one person's browser."""
    caps = {"/register": ("POST", REGISTRATIONS_PER_HOUR, 3600), "/authorize": (None, AUTHORIZE_PER_MINUTE, 60)}
    for route in routes:
        if route.path in caps:
            route.app = _cap(route.app, store, route.path, *caps[route.path])
    return routes


def _cap(inner: ASGIApp, store: Any, path: str, method: str | None, limit: int, window: int) -> ASGIApp:
    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if (method is None or scope.get("method") == method) and scope.get("method") != "OPTIONS" and \
                await store.count(f"oauth:rate:{path}:{address}", window) > limit:
            body = json.dumps({"error": "temporarily_unavailable",
                               "error_description": f"too many requests to {path} from this address"}).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", str(window).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await inner(scope, receive, send)

    return limited
