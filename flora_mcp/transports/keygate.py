"""The key gate in front of the MCP paths: a request passes only with a FLORA key that FLORA accepts
(checked once, remembered for a while, shared across workers through the ledger's store), within its
rate limit; unknown keys from one address are slowed so a flood cannot spend FLORA calls. One
access-log line per request (`Gatekeeper`).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import telemetry
from .._ids import key_hash, not_a_flora_key
from .._recent import Recent
from ..config import Settings
from ..errors import AuthenticationError, FloraError

logger = logging.getLogger("flora_mcp.http")
access_log = logging.getLogger("flora_mcp.access")

MCP_PATHS = ("/mcp", "/sse", "/messages")
_KEY_CHECK_TTL = 300.0  # a key FLORA accepted is trusted this long before it is checked again
_REJECTED_TTL = 30.0  # a key FLORA refused is refused from memory this long (short: a key may be fixed)
_LOCAL_VERDICT_TTL = 30.0  # this process's copy of a shared verdict (a key revoked elsewhere is noticed in time)
_FAILED_CHECKS_PER_ADDRESS = 30  # per minute: keys FLORA refused from one client address before it is slowed
_CHECKS_AT_ONCE = 16  # key checks in flight at once, so a flood of new keys cannot fill the FLORA pool
_SLOW_LANE_WAIT = 10.0  # seconds a new key from a slowed address may wait for its check before a 429
_SLOW_LANE_SPACING = 0.2  # seconds between checks from such an address: its junk costs at most 5 FLORA calls/s
_KNOWN_GOOD_TTL = 30 * 86400.0  # a key FLORA once accepted skips the per-address slowing when re-checked
_OUR_TOKENS = "fmcp_"  # tokens this server issues (OAuth access/refresh tokens, codes): never a FLORA key
_KEY_CACHE_SIZE = 10_000


def key_tag(key: str) -> str:
    """What logs may say about a key: the start of its hash, never the key."""
    return key_hash(key)[:10]


def bearer(headers: Any) -> str | None:
    value = (headers.get("authorization") or "") if headers is not None else ""
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None



class _Check:
    """One FLORA check of one key in flight: everyone who waits for it gets its outcome."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.outcome: bool | JSONResponse = _unavailable("FLORA could not check this key")


class _SlowLane:
    """An address over its share of refused keys: one check at a time, at most one per _SLOW_LANE_SPACING s."""

    def __init__(self) -> None:
        self.lock = anyio.Lock()
        self.last = 0.0

    @asynccontextmanager
    async def turn(self):
        async with self.lock:
            await anyio.sleep(max(0.0, self.last + _SLOW_LANE_SPACING - time.monotonic()))
            self.last = time.monotonic()
            yield


class KeyGate:
    """Admits a request only with a FLORA key that FLORA accepts; limits each key's request rate.

    Unknown keys cost a FLORA call, so they are what an unauthenticated flood aims at. A refused key
    is remembered for a short while; concurrent checks of one key share a single call; few checks run
    at once. What is limited per client address is what costs: keys FLORA *refused*. An address over
    its share is not shut out (Claude's egress and an office NAT are shared by many users), it is
    slowed: its new keys are checked one at a time, so its junk costs at most one FLORA call at a time
    while a valid key from the same address still gets in. A key FLORA accepted before is re-checked
    without any of that.

    Verdicts and counts live in the ledger's store, so they hold across workers and replicas: a key one
    replica checked (or refused) costs the others no FLORA call, and the rate limit counts every request
    wherever it lands. A small in-process copy of each verdict spares the store a read per request.
    """

    def __init__(self, settings: Settings, client_for_key: Any, store: Any) -> None:
        self.settings = settings
        self.client_for_key = client_for_key
        self.store = store  # the ledger's shared values: get/put/count
        self.verdicts: Recent = Recent(_KEY_CACHE_SIZE)  # key hash -> (accepted?, when FLORA said so)
        self.pending: dict[str, _Check] = {}  # key hash -> the check in flight
        self.slowed_until: Recent = Recent(_KEY_CACHE_SIZE)  # client address over its share -> until when
        self.slow_lanes: Recent = Recent(_KEY_CACHE_SIZE)  # such an address -> its one check at a time
        self._in_flight: anyio.Semaphore | None = None

    def key_for(self, headers: Any) -> str | None:
        key = bearer(headers)
        if key is None and self.settings.single_tenant and self.settings.api_key:
            return self.settings.api_key.get_secret_value()
        return key

    async def check(self, key: str | None, address: str | None = None) -> JSONResponse | None:
        if key is None:
            return _unauthorized("Send your FLORA API key as 'Authorization: Bearer sk_live_…'")
        if key.startswith(_OUR_TOKENS):  # ours, unknown or expired (a live access token was swapped already)
            return _unauthorized("This sign-in token is expired, revoked or not an access token; sign in again",
                                 "invalid_token")
        if (problem := not_a_flora_key(_as_sent(key))) is not None:  # never sent on (it cannot be encoded)
            return _unauthorized(problem[:1].upper() + problem[1:], "invalid_token")
        hashed = key_hash(key)  # the full hash: the shared store's name for the key
        accepted = await self._verdict(hashed)
        if accepted is None:
            outcome = await self._verify(key, hashed, address or "unknown")
            if isinstance(outcome, JSONResponse):
                return outcome
            accepted = outcome
        if not accepted:
            return _unauthorized("FLORA rejected this API key; check it in FLORA's settings", "invalid_token")
        return await self._rate(hashed)

    async def _verify(self, key: str, hashed: str, address: str) -> bool | JSONResponse:
        """Ask FLORA once, however many requests with this key arrive while it answers."""
        running = self.pending.get(hashed)
        if running is None:  # no await between looking and claiming: exactly one check per key
            running = self.pending[hashed] = _Check()
            try:
                running.outcome = await self._ask_flora(key, hashed, address)
            finally:
                self.pending.pop(hashed, None)
                running.done.set()
        else:
            await running.done.wait()
        return running.outcome

    async def _ask_flora(self, key: str, hashed: str, address: str) -> bool | JSONResponse:
        known = await self.store.get(f"key-known:{hashed}") is not None
        if known or not self._slowed(address):
            return await self._checked(key, hashed, address, known)
        lane = self.slow_lanes.get(address)
        if lane is None:
            lane = self.slow_lanes[address] = _SlowLane()
        with anyio.move_on_after(_SLOW_LANE_WAIT):
            async with lane.turn():
                return await self._checked(key, hashed, address)
        return _too_many("Too many rejected API keys from this address; retry in a minute", 60)

    async def _checked(self, key: str, hashed: str, address: str, known: bool = False) -> bool | JSONResponse:
        if self._in_flight is None:
            self._in_flight = anyio.Semaphore(_CHECKS_AT_ONCE)
        try:
            if known:  # a signed-in user's re-check never queues behind a flood of new keys
                await self.client_for_key(key).list_workspaces()
            else:
                async with self._in_flight:
                    await self.client_for_key(key).list_workspaces()
        except AuthenticationError:
            await self._record_verdict(hashed, False)
            if await self.store.count(f"failed-checks:{address}", 60.0) >= _FAILED_CHECKS_PER_ADDRESS:
                self.slowed_until[address] = time.monotonic() + 60.0
            return False
        except FloraError as exc:
            return _unavailable(exc.message)
        await self._record_verdict(hashed, True)
        await self.store.put(f"key-known:{hashed}", "1", _KNOWN_GOOD_TTL)
        return True

    def _slowed(self, address: str) -> bool:
        until = self.slowed_until.get(address)
        return until is not None and time.monotonic() < until

    # --- storage: the ledger's shared values, with a local copy of verdicts ------------------------------
    async def _verdict(self, hashed: str) -> bool | None:
        """True or False while FLORA's last word on this key is fresh; None when it must be asked."""
        entry = self.verdicts.get(hashed)
        if entry is not None:
            accepted, until = entry
            if time.monotonic() < until:
                return accepted
        shared = await self.store.get(f"key:{hashed}")
        if shared is None:
            return None
        accepted = shared == "accepted"
        self.verdicts[hashed] = (accepted, time.monotonic() + _LOCAL_VERDICT_TTL)
        return accepted

    async def _record_verdict(self, hashed: str, accepted: bool) -> None:
        ttl = _KEY_CHECK_TTL if accepted else _REJECTED_TTL
        self.verdicts[hashed] = (accepted, time.monotonic() + min(ttl, _LOCAL_VERDICT_TTL))
        await self.store.put(f"key:{hashed}", "accepted" if accepted else "rejected", ttl)

    async def _rate(self, hashed: str) -> JSONResponse | None:
        wait = await self._window(f"rate:{hashed}", self.settings.rate_limit)
        return None if wait is None else _too_many(f"Too many requests; retry in {wait} s", wait)

    async def _window(self, name: str, limit: int) -> int | None:
        """Count one event in this minute's window (shared by every process); seconds to its end if over."""
        if not limit:
            return None
        if await self.store.count(name, 60.0) <= limit:
            return None
        return max(1, int(60.0 - time.time() % 60.0 + 0.999))


def _too_many(message: str, wait: int) -> JSONResponse:
    return JSONResponse({"error": "rate_limited", "message": message}, status_code=429,
                        headers={"Retry-After": str(wait)})


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse({"error": "flora_unavailable", "message": message}, status_code=503)


def user_for(key: str) -> AuthenticatedUser:
    """The ASGI `scope["user"]` for a checked key. The SDK binds an SSE session to the user that opened
    it and refuses messages from any other, so a leaked session_id is useless with another key.
    Only the key's tag is kept."""
    tag = key_tag(key)
    return AuthenticatedUser(AccessToken(token=tag, client_id=tag, scopes=[]))


def _as_sent(value: str) -> str:
    """A header value as the client typed it: Starlette reads header bytes as latin-1, so UTF-8 text
    (an ellipsis pasted into a key) is read back as UTF-8 where it can be."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _unauthorized(message: str, error: str = "invalid_request") -> JSONResponse:
    return JSONResponse(
        {"error": "unauthorized", "message": message},
        status_code=401,
        # Header values must be latin-1: the human message stays in the body.
        headers={"WWW-Authenticate": f'Bearer realm="flora-mcp", error="{error}"'},
    )


class Gatekeeper:
    """ASGI middleware: key check and rate limit on MCP paths, and one access-log line per request."""

    def __init__(self, app: ASGIApp, gate: KeyGate) -> None:
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
            denial = None
            if path.startswith(MCP_PATHS):
                address = scope["client"][0] if scope.get("client") else None
                denial = await self.gate.check(key, address)
                telemetry.key_gate_verdict(key is not None, denial)
                if denial is None and key is not None:
                    scope["user"] = user_for(key)
            if denial is not None:
                await denial(scope, receive, logged_send)
            else:
                await self.app(scope, receive, logged_send)
        finally:
            access_log.info(json.dumps({
                "method": scope["method"], "path": path, "status": status["code"],
                "ms": round((time.monotonic() - started) * 1000, 1),
                "key": key_tag(key) if key else None, **telemetry.trace_ids(),
            }))


