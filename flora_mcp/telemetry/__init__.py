"""What a running flora-mcp tells its operator: OpenTelemetry spans and metrics, and readiness facts.

Off by default, and then free: nothing of the OpenTelemetry SDK is imported and each hook below is one
check of a module global. On when the operator sets the standard OTEL_* variables (OTLP export) or
FLORA_METRICS (a Prometheus scrape); see docs/observability.md. Like the OpenTelemetry providers it
feeds, it is process-wide: `configure` turns it on once per process.

The hooks, each called from one line in the module it observes:

    configure(settings)                              server factory and hosted app: read OTEL_*, FLORA_METRICS
    await observed_send(send, method, path, attempt, url, **kw)   client.py: every FLORA request
    instrument_ledger(ledger)                        where the ledger is created: a timing proxy
    instrument_server(server, tool_names)            tool calls, as SDK middleware under its request span
    instrument_app(app)                              hosted app: an HTTP server span around each request
    @traced_wait                                     waiting.follow: waits and polls
    key_gate_verdict(has_key, denial), sign_in(step, outcome), trace_ids()

What FLORA answered lately (`flora_reach`) is kept even when telemetry is off: /readyz reads it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .facts import FloraReach, exporters_asked, flora_reach

if TYPE_CHECKING:
    import httpx2

    from ..config import Settings
    from .otel import Telemetry

__all__ = ["FloraReach", "active", "configure", "flora_reach", "instrument_app", "instrument_ledger", "instrument_server",
           "key_gate_verdict", "observed_send", "sign_in", "trace_ids", "traced_wait"]

_active: Telemetry | None = None  # set by configure() (or use(), in tests); None: every hook is a no-op
_configured = False

_T = TypeVar("_T")


def _wanted(settings: Settings) -> bool:
    return bool(exporters_asked("TRACES") or exporters_asked("METRICS") or settings.metrics)


def active() -> Telemetry | None:
    return _active


def configure(settings: Settings) -> Telemetry | None:
    """Turn telemetry on if the environment or FLORA_METRICS asks for it (once per process)."""
    global _active, _configured
    if _configured:
        return _active
    _configured = True
    if _wanted(settings):
        from .setup import from_environment

        try:
            _active = from_environment(settings)
        except RuntimeError as exc:  # e.g. the otel extra is not installed: serve anyway, say why once
            logging.getLogger("flora_mcp.telemetry").error("telemetry stays off: %s", exc)
    return _active


def use(telemetry: Telemetry | None) -> None:
    """Tests: route every hook to `telemetry` (built on in-memory readers), or back to off with None."""
    global _active, _configured
    _active, _configured = telemetry, telemetry is not None


# --- hooks -------------------------------------------------------------------------------------------------
async def observed_send(send: Callable[..., Awaitable[httpx2.Response]], method: str, path: str, attempt: int,
                        url: str, **kwargs: Any) -> httpx2.Response:
    """One FLORA request attempt: `send(method, url, **kwargs)`, observed. `path` is the API path (its IDs
    become a route template), `attempt` counts from 1."""
    if _active is not None:
        return await _active.flora_send(send, method, path, attempt, url, **kwargs)
    try:
        response = await send(method, url, **kwargs)
    except Exception as exc:
        if _is_transport_error(exc):
            flora_reach.failed()
        raise
    flora_reach.answered()
    return response


def _is_transport_error(exc: Exception) -> bool:
    import httpx2

    return isinstance(exc, httpx2.TransportError)


def instrument_ledger(ledger: _T) -> _T:
    """The ledger, each public async method timed as a span and a histogram (off: the ledger itself)."""
    if _active is None or ledger is None:
        return ledger
    from .ledger import instrumented

    return instrumented(ledger, _active)


def instrument_server(server: Any, tool_names: list[str]) -> None:
    """Tool calls by tool and outcome: our middleware inside the SDK's own request middleware (and span)."""
    if _active is not None:
        from ..sdk_internals import add_request_middleware

        add_request_middleware(server, _active.tool_middleware(tool_names))


def instrument_app(app: Any) -> None:
    """The hosted app: a SERVER span around each HTTP request (outermost), so the access log can name it."""
    if _active is not None:
        app.add_middleware(_active.http_middleware())


def traced_wait(follow: Callable[..., Awaitable[_T]]) -> Callable[..., Awaitable[_T]]:
    """Decorates waiting.follow: a span per wait, and the number of calls waiting now."""

    @functools.wraps(follow)
    async def observed(call: Any, run_ids: list[str], wait_seconds: float, *args: Any, **kwargs: Any) -> _T:
        if _active is None:
            return await follow(call, run_ids, wait_seconds, *args, **kwargs)
        return await _active.wait(follow, call, run_ids, wait_seconds, *args, **kwargs)

    return observed


def key_gate_verdict(has_key: bool, denial: Any) -> None:
    """The hosted key gate's answer to one MCP request: admitted, or why not (from the refusal's status)."""
    if _active is not None:
        _active.key_gate_verdict(has_key, getattr(denial, "status_code", None))


def sign_in(step: str, outcome: str) -> None:
    """An OAuth sign-in step's outcome (consent, token, refresh)."""
    if _active is not None:
        _active.sign_in(step, outcome)


def trace_ids() -> dict[str, str]:
    """{"trace_id", "span_id"} of the span active now, for a log line; {} when there is none."""
    if _active is None:
        return {}
    return _active.trace_ids()
