"""The instruments and spans, on whatever OpenTelemetry providers `setup` (or a test) hands over.

Only the OpenTelemetry API is used here; the SDK lives in setup.py. Names and units are listed in
docs/observability.md. No attribute or label ever holds an API key, a prompt, an ID or a URL: routes
are templates, tools are the server's own names, users are not labels at all.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, StatusCode

from .._version import __version__
from .facts import flora_reach

SCOPE = "flora_mcp"
# Seconds. FLORA answers in tens of ms to seconds; the ledger in well under a ms (SQLite) to a few ms (PostgreSQL);
# a tool call may wait up to 50 s for a run.
FLORA_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LEDGER_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 120.0)

# FLORA's API paths with their IDs named: `url.template` (a bounded set, never an ID).
_ROUTES = [(re.compile("^" + re.sub(r"\{[a-z_]+\}", "[^/]+", t) + "$"), t) for t in (
    "/workspaces", "/projects", "/projects/{project_id}", "/projects/{project_id}/canvas",
    "/projects/{project_id}/nodes", "/projects/{project_id}/assets/{asset_id}/attach",
    "/projects/{project_id}/actions", "/projects/{project_id}/actions/{node_id}/run", "/models", "/generate",
    "/runs/action", "/runs/technique", "/runs/{run_id}", "/actions", "/techniques", "/assets/uploads",
    "/assets/{asset_id}/complete", "/assets")]
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")

current_tool: ContextVar[str | None] = ContextVar("flora_mcp_tool", default=None)


def route_template(path: str) -> str:
    path = path.split("?", 1)[0]
    for pattern, template in _ROUTES:
        if pattern.match(path):
            return template
    return "other"


def _code(value: Any) -> str:
    """An error code (or exception class) fit for a label: one short word, else 'other' (FLORA's codes are
    free text)."""
    return value if isinstance(value, str) and _CODE.match(value) else "other"


class Telemetry:
    """Every instrument flora-mcp records, and its spans, on one tracer and meter provider."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None, *, prometheus: Any = None) -> None:
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(SCOPE, __version__)
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, __version__)
        self.meter_provider, self.tracer_provider = meter_provider, tracer_provider
        self.prometheus = prometheus  # (registry, where): the scrape FLORA_METRICS asked for, if any
        self.tool_calls = meter.create_counter(
            "flora_mcp.tool.calls", unit="{call}", description="Tool calls by tool and outcome "
            "(ok, refused, needs_input, error, unknown, cancelled)")
        self.tool_duration = meter.create_histogram(
            "flora_mcp.tool.duration", unit="s", description="Tool call latency, waits included",
            explicit_bucket_boundaries_advisory=TOOL_BUCKETS)
        self.tools_active = meter.create_up_down_counter(
            "flora_mcp.tool.active", unit="{call}", description="Tool calls in progress")
        self.waits_active = meter.create_up_down_counter(
            "flora_mcp.waits.active", unit="{call}", description="Tool calls waiting for runs to finish now")
        self.flora_duration = meter.create_histogram(
            "flora_mcp.flora.request.duration", unit="s", description="FLORA API request attempts by route "
            "template, method and status (count = requests; 429s are status 429)",
            explicit_bucket_boundaries_advisory=FLORA_BUCKETS)
        self.ledger_duration = meter.create_histogram(
            "flora_mcp.ledger.duration", unit="s", description="Ledger operations by kind, store and outcome",
            explicit_bucket_boundaries_advisory=LEDGER_BUCKETS)
        self.paid_starts = meter.create_counter(
            "flora_mcp.paid.starts", unit="{start}", description="Paid starts FLORA accepted (started, accepted "
            "without a run ID) or whose outcome is unknown, as recorded in the ledger")
        self.charged = meter.create_counter(  # "{USD}": UCUM has no currency; Prometheus: flora_mcp_charged_usd_total
            "flora_mcp.charged.usd", unit="{USD}", description="USD FLORA charged for runs, counted once when a run settles")
        self.key_gate = meter.create_counter(
            "flora_mcp.key_gate.verdicts", unit="{request}", description="Hosted key gate verdicts on MCP requests")
        self.sign_ins = meter.create_counter(
            "flora_mcp.sign_ins", unit="{event}", description="OAuth sign-in steps by step and outcome")
        self.http_duration = meter.create_histogram(
            "http.server.request.duration", unit="s", description="Hosted HTTP requests by route and status",
            explicit_bucket_boundaries_advisory=TOOL_BUCKETS)

    # --- FLORA requests --------------------------------------------------------------------------------------
    async def flora_send(self, send: Callable[..., Awaitable[Any]], method: str, path: str, attempt: int, url: str,
                         **kwargs: Any) -> Any:
        template = route_template(path)
        labels: dict[str, Any] = {"http.request.method": method, "url.template": template}
        attributes = labels | {"server.address": urlsplit(url).hostname or ""}
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        started = time.perf_counter()
        with self.tracer.start_as_current_span(f"{method} {template}", kind=SpanKind.CLIENT, attributes=attributes,
                                               record_exception=False, set_status_on_exception=False) as span:
            try:
                response = await send(method, url, **kwargs)
            except Exception as exc:
                error = type(exc).__name__  # never the message: it may name the URL
                if _transport_error(exc):
                    flora_reach.failed()
                span.set_attribute("error.type", error)
                span.set_status(StatusCode.ERROR)
                self.flora_duration.record(time.perf_counter() - started, labels | {"error.type": error})
                raise
            flora_reach.answered()
            status = response.status_code
            labels["http.response.status_code"] = status
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                labels["error.type"] = str(status)
                span.set_attribute("error.type", str(status))
                span.set_status(StatusCode.ERROR)
            self.flora_duration.record(time.perf_counter() - started, labels)
            return response

    # --- tool calls ------------------------------------------------------------------------------------------
    def tool_middleware(self, tool_names: list[str]) -> Callable[..., Awaitable[Any]]:
        known = frozenset(tool_names)

        async def tool_calls(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
            if ctx.method != "tools/call":
                return await call_next(ctx)
            name = ctx.params.get("name") if ctx.params else None
            tool = name if name in known else "unknown_tool"  # a client's made-up name is no new series
            token = current_tool.set(tool)
            self.tools_active.add(1, {"tool": tool})
            started, outcome, code = time.perf_counter(), "cancelled", None
            try:
                result = await call_next(ctx)
                outcome, code = _outcome(result)
                return result
            except Exception as exc:
                outcome, code = "error", type(exc).__name__
                raise
            finally:
                current_tool.reset(token)
                self.tools_active.add(-1, {"tool": tool})
                labels = {"tool": tool, "outcome": outcome}
                self.tool_duration.record(time.perf_counter() - started, labels)
                if code:
                    labels["error.code"] = _code(code)
                self.tool_calls.add(1, labels)
                span = trace.get_current_span()  # the SDK's `tools/call <tool>` span
                span.set_attribute("flora_mcp.tool.outcome", outcome)
                if code:
                    span.set_attribute("flora_mcp.error.code", labels["error.code"])

        return tool_calls

    # --- waits -------------------------------------------------------------------------------------------
    async def wait(self, follow: Callable[..., Awaitable[Any]], call: Any, run_ids: list[str], wait_seconds: float,
                   *args: Any, **kwargs: Any) -> Any:
        labels = {"tool": current_tool.get() or "none"}
        self.waits_active.add(1, labels)
        try:
            with self.tracer.start_as_current_span("flora_mcp.wait", attributes={
                    "flora_mcp.wait.runs": len(run_ids), "flora_mcp.wait.budget_s": float(wait_seconds)}) as span:
                runs = await follow(call, run_ids, wait_seconds, *args, **kwargs)
                finished = sum(1 for r in runs if getattr(r, "finished", True))
                span.set_attribute("flora_mcp.wait.finished", finished)
                return runs
        finally:
            self.waits_active.add(-1, labels)

    # --- hosted edges ------------------------------------------------------------------------------------
    def key_gate_verdict(self, has_key: bool, status: int | None) -> None:
        if status is None:
            verdict = "admitted"
        elif status == 401:
            verdict = "rejected" if has_key else "no_key"
        else:
            verdict = {429: "rate_limited", 503: "unavailable"}.get(status, str(status))
        self.key_gate.add(1, {"verdict": verdict})
        trace.get_current_span().set_attribute("flora_mcp.key_gate.verdict", verdict)

    def sign_in(self, step: str, outcome: str) -> None:
        self.sign_ins.add(1, {"step": step, "outcome": outcome})
        trace.get_current_span().add_event("flora_mcp.sign_in", {"step": step, "outcome": outcome})

    def trace_ids(self) -> dict[str, str]:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return {}
        return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}

    def http_middleware(self) -> type:
        telemetry = self

        class HttpSpans:
            """A SERVER span per hosted HTTP request, joined to the caller's W3C traceparent if it sent one."""

            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                await telemetry.http_request(self.app, scope, receive, send)

        return HttpSpans

    async def http_request(self, app: Any, scope: Any, receive: Any, send: Any) -> None:
        route = _http_route(scope["path"])
        method = scope["method"]
        parent = extract({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                          if k in (b"traceparent", b"tracestate")})
        status = {"code": 0}

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        with self.tracer.start_as_current_span(f"{method} {route}", kind=SpanKind.SERVER, context=parent,
                                               attributes={"http.request.method": method, "http.route": route}) as span:
            try:
                await app(scope, receive, observed_send)
            finally:
                labels = {"http.request.method": method, "http.route": route,
                          "http.response.status_code": status["code"]}
                span.set_attribute("http.response.status_code", status["code"])
                if status["code"] >= 500 or status["code"] == 0:
                    span.set_status(StatusCode.ERROR)
                self.http_duration.record(time.perf_counter() - started, labels)


_HTTP_ROUTES = ("/mcp", "/sse", "/messages/", "/healthz", "/readyz", "/metrics", "/authorize", "/token", "/register",
                "/revoke", "/consent", "/signout")


def _http_route(path: str) -> str:
    if path in _HTTP_ROUTES:
        return path
    if path.startswith("/messages"):
        return "/messages/"
    if path.startswith("/.well-known/"):
        return "/.well-known/*"
    return "other"


def _outcome(result: Any) -> tuple[str, str | None]:
    """(outcome, error code) of a tools/call result: refused = nothing started because of the arguments, the
    budget or a cost guard; unknown = a paid start whose outcome FLORA has not confirmed."""
    if isinstance(result, dict):
        is_error, structured = result.get("isError"), result.get("structuredContent")
        if result.get("resultType") == "input_required" or "inputRequests" in result:
            return "needs_input", None
    else:
        if type(result).__name__ == "InputRequiredResult":
            return "needs_input", None
        is_error, structured = getattr(result, "is_error", False), getattr(result, "structured_content", None)
    structured = structured if isinstance(structured, dict) else {}
    if is_error:
        error = structured.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        return ("refused" if code == "invalid_argument" else "error"), code or "tool_error"
    rows = [structured, *(r for r in structured.get("runs") or () if isinstance(r, dict))]
    if any(r.get("status") == "unknown" for r in rows):
        return "unknown", None
    return "ok", None


def _transport_error(exc: Exception) -> bool:
    import httpx2

    return isinstance(exc, httpx2.TransportError)


class TraceIdFilter(logging.Filter):
    """Appends ' trace_id=… span_id=…' to log lines written inside a span (not to the JSON access log,
    which carries them as fields)."""

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__()
        self.telemetry = telemetry

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "flora_mcp.access" or getattr(record, "trace_id", None):
            return True
        ids = self.telemetry.trace_ids()
        if ids:
            record.trace_id, record.span_id = ids["trace_id"], ids["span_id"]
            record.msg = f"{record.getMessage()} trace_id={ids['trace_id']} span_id={ids['span_id']}"
            record.args = None
        return True
