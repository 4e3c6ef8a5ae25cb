"""Fetching a URL a user supplied (hosted `upload_asset`) without reaching the server's own network.

- The URL is parsed by httpx2, the same parser that fetches it: no hand-split host to disagree with.
- The host is resolved once, at connect time, inside the connection pool (our network backend).
  Every address must be public (`ipaddress.is_global`, with IPv4 inside IPv6 unwrapped), and the
  socket connects to an address that was checked, so no second lookup can rebind the name. TLS still
  verifies the name, and the Host header still carries it.
- These fetches have their own connection pool and a per-user cap, so one user's slow URLs cannot
  use up the connections other users' FLORA calls need.
- Bodies stream into a spooled temporary file with a size cap: memory per call stays ~1 MB.
"""

from __future__ import annotations

import ipaddress
import socket
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import IO, Any

import anyio
import httpcore2
import httpx2
from httpcore2._backends.auto import AutoBackend
from httpcore2._backends.base import AsyncNetworkBackend, AsyncNetworkStream

from ._recent import Recent

MAX_URL_LENGTH = 2048
POOL_SIZE = 64  # connections for all users' URL fetches together (FLORA calls have their own pool)
PER_USER = 4  # one user's URL fetches in flight at once; the rest wait their turn
SPOOL_IN_MEMORY = 1 * 2**20  # a download larger than this goes to a temporary file
_ADDRESS_FAMILIES = (socket.AF_INET, socket.AF_INET6)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(Exception):
    """The URL cannot or may not be fetched; the message says why, for the agent."""


class PrivateAddress(UrlRefused):
    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is a private or reserved address; this server does not fetch addresses "
                         "on private networks (pass a public URL)")


def is_public(address: Address) -> bool:
    """True only for globally routable unicast addresses; IPv4 carried inside IPv6 is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def resolve(host: str) -> list[str]:
    """Every address `host` resolves to (blocking: run it in a thread). Tests replace this."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos if info[0] in _ADDRESS_FAMILIES))


class GuardedBackend(AsyncNetworkBackend):
    """httpcore2's network backend with one change: resolve once, check every address, connect to it."""

    def __init__(self) -> None:
        self._inner = AutoBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> AsyncNetworkStream:
        try:
            found = await anyio.to_thread.run_sync(resolve, host)
        except (OSError, UnicodeError):
            raise UrlRefused(f"cannot resolve {host}") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses or not all(is_public(a) for a in addresses):
            raise PrivateAddress(host)
        failure: Exception | None = None
        for address in addresses:  # every one was checked above; try them in the resolver's order
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout,
                                                     local_address=local_address, socket_options=socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        raise failure or UrlRefused(f"cannot connect to {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> AsyncNetworkStream:
        raise UrlRefused("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def user_transport() -> httpx2.AsyncBaseTransport:
    """The transport for user-supplied URLs: its own pool, no proxies from the environment, our backend."""
    transport = httpx2.AsyncHTTPTransport(trust_env=False, limits=httpx2.Limits(
        max_connections=POOL_SIZE, max_keepalive_connections=8))
    # httpx2 has no public hook for name resolution; its pool takes a network backend, so hand it ours.
    transport._pool._network_backend = GuardedBackend()  # type: ignore[attr-defined]
    return transport


def check_url(url: str) -> httpx2.URL:
    """The parsed URL, or UrlRefused saying what is wrong with it."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"is {len(url)} characters; at most {MAX_URL_LENGTH}")
    if any(ch in url for ch in "\x00\r\n\t "):
        raise UrlRefused("contains spaces or control characters; percent-encode them")
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, ValueError, TypeError) as exc:
        raise UrlRefused(f"is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UrlRefused("must be an http(s) URL with a host, like https://example.com/photo.png")
    return parsed


class UserUrls:
    """The pool and per-user slots for user-supplied URLs; one per process, shared by every user."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._http: httpx2.AsyncClient | None = None
        self._slots: Recent = Recent(10_000)  # user tag -> semaphore

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(transport=user_transport(), follow_redirects=False,
                                            timeout=httpx2.Timeout(self.timeout, connect=10.0))
        return self._http

    def _slot(self, user: str) -> anyio.Semaphore:
        slot = self._slots.get(user)
        if slot is None:
            slot = self._slots[user] = anyio.Semaphore(PER_USER)
        return slot

    @asynccontextmanager
    async def open(self, url: str, user: str) -> AsyncIterator[httpx2.Response]:
        parsed = check_url(url)
        async with self._slot(user):
            try:
                async with self._client().stream("GET", parsed) as response:
                    if response.status_code >= 300:
                        raise UrlRefused(f"answered HTTP {response.status_code}"
                                         + (" (a redirect: pass the final URL)" if response.is_redirect else ""))
                    yield response
            except httpx2.TransportError as exc:
                raise UrlRefused(f"could not be fetched ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


async def spool(response: httpx2.Response, limit: int) -> tuple[IO[bytes], int]:
    """The body in a temporary file (in memory while small), rewound; UrlRefused beyond `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UrlRefused(f"is {int(declared)} bytes; at most {limit}")
    file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (the caller closes it)
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise UrlRefused(f"is larger than {limit} bytes")
            file.write(chunk)
    except BaseException:
        file.close()
        raise
    file.seek(0)
    return file, size
