"""uvicorn for the open internet: header and keep-alive timeouts, a cap on header size and on connections
at once, and a deadline on each request's headers (uvicorn has none).
"""

from __future__ import annotations

from typing import Any

# uvicorn limits (serve()); a proxy in front should add its own (see README, "Hosting").
HEADER_TIMEOUT = 10.0  # seconds a client has to send a request's headers (uvicorn has no such limit)
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection stays open
MAX_HEADER_BYTES = 16 * 1024  # h11's limit on a request's head
MAX_CONNECTIONS = 1000  # connections and requests at once before uvicorn answers 503


def uvicorn_config(app: Any, host: str, port: int, *, header_timeout: float = HEADER_TIMEOUT) -> Any:
    """uvicorn with limits for the open internet: header and keep-alive timeouts, a cap on header size
    and on connections at once. Forwarded headers are trusted only from FORWARDED_ALLOW_IPS (uvicorn's
    default: 127.0.0.1), so the per-address limit sees real clients behind a local proxy."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          http=_header_deadline_protocol(header_timeout), timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, limit_concurrency=MAX_CONNECTIONS)


def _header_deadline_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol plus a deadline for each request's headers.

    uvicorn times out idle keep-alive connections but not a request whose headers never finish, so
    a client sending half a header held its connection (and a file descriptor) for good.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:  # headers are in
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


def __getattr__(name: str) -> Any:
    """`HeaderDeadlineH11`: the protocol class for uvicorn's own command line, built on first use
    (`uvicorn … --http flora_mcp.transports.http:HeaderDeadlineH11`), so importing this module stays cheap."""
    if name == "HeaderDeadlineH11":
        return _header_deadline_protocol(HEADER_TIMEOUT)
    raise AttributeError(name)
