"""What an operator sees: spans and metrics read from the OpenTelemetry SDK's in-memory exporter and
reader, a Prometheus scrape parsed by prometheus_client, readiness, and telemetry-off costing nothing.

The SDK's request span comes from the global tracer provider (the MCP SDK uses the OpenTelemetry API),
so one provider is installed for this module; its spans reach the in-memory exporter only while a test
here runs.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flora_mcp import telemetry
from flora_mcp.ledger import open_ledger
from flora_mcp.retry import RetryPolicy
from flora_mcp.sandbox import SANDBOX_API_KEY, Sandbox
from flora_mcp.server import create_server
from flora_mcp.telemetry.otel import Telemetry, route_template
from flora_mcp.telemetry.setup import _prometheus_reader
from tests.helpers import settings

PROMPT = "a lighthouse painted in secret ultramarine"


class _Switch(SpanProcessor):
    """Forwards ended spans to the exporter only while a test of this module runs."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter, self.on = exporter, False

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            self.exporter.export([span])


_EXPORTER = InMemorySpanExporter()
_SWITCH = _Switch(_EXPORTER)


def _global_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    if _SWITCH not in provider._active_span_processor._span_processors:
        provider.add_span_processor(_SWITCH)
    return provider


class Seen:
    """The spans and metric points one test produced."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        prometheus, self.registry = _prometheus_reader()
        self.provider = MeterProvider(metric_readers=[self.reader, prometheus])
        self.telemetry = Telemetry(_global_provider(), self.provider, prometheus=(self.registry, "app"))

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in _EXPORTER.get_finished_spans() if name is None or s.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend(m.data.data_points)
        return out

    def total(self, metric: str, **labels: Any) -> float:
        """Sum (counters) or count (histograms) of the points whose attributes include `labels`."""
        total = 0.0
        for p in self.points(metric):
            if all(p.attributes.get(k) == v for k, v in labels.items()):
                total += getattr(p, "value", None) if hasattr(p, "value") else p.count
        return total

    def everything_said(self) -> str:
        """Every span name, attribute and event, and every metric label, as one text to search."""
        parts = []
        for s in self.spans():
            parts += [s.name, json.dumps(dict(s.attributes or {}), default=str)]
            parts += [json.dumps(dict(e.attributes or {}), default=str) for e in s.events]
        return "\n".join(parts) + "\n" + self.labels()

    def labels(self) -> str:
        parts = []
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    parts += [json.dumps(dict(p.attributes), default=str) for p in m.data.data_points]
        return "\n".join(parts)


@pytest.fixture
def seen():
    _EXPORTER.clear()
    s = Seen()
    telemetry.use(s.telemetry)
    _SWITCH.on = True
    try:
        yield s
    finally:
        _SWITCH.on = False
        telemetry.use(None)
        telemetry.flora_reach.__init__()
        s.provider.shutdown()


def _session(sandbox: Sandbox, ledger: Any = None, **overrides: Any) -> Client:
    configured = settings(**overrides)
    client = sandbox.client(SANDBOX_API_KEY, retry=RetryPolicy(max_retries=configured.max_retries))
    return Client(create_server(configured, client=client, ledger=ledger))


async def _generate(c: Client, **extra: Any):
    ws = (await c.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
    prj = (await c.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]["project_id"]
    return await c.call_tool("start_generation", {"type": "image", "prompt": PROMPT, "workspace_id": ws,
                                                  "project_id": prj, "model": "t2i-flux-2-schnell"} | extra)


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


# --- a full generation -------------------------------------------------------------------------------------
async def test_a_generation_is_one_trace_of_our_work_under_the_sdk_request_span(seen):
    async with _session(Sandbox(speed=200)) as c:
        result = await _generate(c)
    assert not result.is_error and result.structured_content["status"] == "completed"

    by_id = {s.context.span_id: s for s in seen.spans()}
    [tool_span] = seen.spans("tools/call start_generation")  # the MCP SDK's own SERVER span
    assert tool_span.attributes["flora_mcp.tool.outcome"] == "ok"
    [post] = seen.spans("POST /generate")
    assert post.kind == trace.SpanKind.CLIENT and post.attributes["http.response.status_code"] == 201
    assert post.attributes["url.template"] == "/generate"
    assert "tools/call start_generation" in _ancestors(post, by_id)
    polls = seen.spans("GET /runs/{run_id}")
    [wait] = seen.spans("flora_mcp.wait")
    assert polls and all("flora_mcp.wait" in _ancestors(p, by_id) for p in polls)
    assert wait.attributes["flora_mcp.wait.finished"] == 1
    [begin] = seen.spans("ledger begin")
    assert begin.attributes["flora_mcp.ledger.decisions"] == ("start",)
    assert begin.attributes["flora_mcp.ledger.store"] == "sqlite"
    assert "tools/call start_generation" in _ancestors(begin, by_id)
    assert seen.spans("ledger started") and seen.spans("ledger observe")
    assert {s.context.trace_id for s in (post, begin, wait, *polls)} == {tool_span.context.trace_id}

    assert seen.total("flora_mcp.tool.calls", tool="start_generation", outcome="ok") == 1
    assert seen.total("flora_mcp.tool.calls", tool="list_workspaces", outcome="ok") == 1
    assert seen.total("flora_mcp.flora.request.duration", **{"url.template": "/generate",
                                                            "http.response.status_code": 201}) == 1
    assert seen.total("flora_mcp.paid.starts", tool="start_generation", outcome="started") == 1
    charged = result.structured_content.get("charged_usd") or result.structured_content.get("cost_usd")
    assert seen.total("flora_mcp.charged.usd") > 0 and (charged is None or seen.total("flora_mcp.charged.usd") == charged)
    assert seen.total("flora_mcp.ledger.duration", operation="begin", outcome="ok") == 1
    assert seen.total("flora_mcp.tool.active", tool="start_generation") == 0  # back to none in flight
    assert seen.total("flora_mcp.waits.active") == 0


# --- refused, rate limited, ledger down ----------------------------------------------------------------------
async def test_a_refused_call_is_counted_as_refused_and_reaches_nothing(seen):
    async with _session(Sandbox(speed=200)) as c:
        result = await _generate(c, model="no-such-model-anywhere")
    assert result.is_error
    assert seen.total("flora_mcp.tool.calls", tool="start_generation", outcome="refused",
                      **{"error.code": "invalid_argument"}) == 1
    assert not seen.spans("POST /generate") and seen.total("flora_mcp.paid.starts") == 0
    [span] = seen.spans("tools/call start_generation")
    assert span.attributes["flora_mcp.tool.outcome"] == "refused"


async def test_a_429_from_flora_shows_as_status_429_and_an_error_outcome(seen):
    sandbox = Sandbox(speed=200)
    sandbox.faults.rate_limit = 1  # one request a minute: the second is a 429 with Retry-After ~60 s
    async with _session(sandbox, max_retries=1) as c:
        assert not (await c.call_tool("list_workspaces", {})).is_error
        limited = await c.call_tool("list_workspaces", {})
    assert limited.is_error and limited.structured_content["error"]["code"] == "rate_limited"
    assert seen.total("flora_mcp.flora.request.duration", **{"url.template": "/workspaces",
                                                            "http.response.status_code": 429}) == 1
    assert seen.total("flora_mcp.tool.calls", tool="list_workspaces", outcome="error",
                      **{"error.code": "rate_limited"}) == 1
    [span] = [s for s in seen.spans("GET /workspaces") if s.attributes["http.response.status_code"] == 429]
    assert span.status.status_code == trace.StatusCode.ERROR and span.attributes["error.type"] == "429"


async def test_a_ledger_that_fails_is_an_error_span_and_an_error_point(seen):
    ledger = open_ledger("memory:")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk I/O error")

    ledger.runs.decide = broken
    async with _session(Sandbox(speed=200), ledger=ledger) as c:
        result = await _generate(c)
    assert result.is_error
    [begin] = seen.spans("ledger begin")
    assert begin.status.status_code == trace.StatusCode.ERROR and begin.attributes["error.type"] == "OSError"
    assert seen.total("flora_mcp.ledger.duration", operation="begin", store="sqlite", outcome="error") == 1
    assert seen.total("flora_mcp.tool.calls", tool="start_generation", outcome="error") == 1
    assert not seen.spans("POST /generate")  # nothing was started without its write-ahead record


# --- privacy ---------------------------------------------------------------------------------------------
async def test_no_key_prompt_or_id_in_any_span_attribute_or_metric_label(seen):
    async with _session(Sandbox(speed=200)) as c:
        done = await _generate(c)
        await c.call_tool("get_run", {"run_id": done.structured_content["run_id"]})
        await c.call_tool("made_up_tool_" + "x" * 40, {})
    said = seen.everything_said()
    assert said and "POST /generate" in said
    for secret in (SANDBOX_API_KEY, SANDBOX_API_KEY[:12], PROMPT, "ultramarine", done.structured_content["run_id"]):
        assert secret not in said, secret
    # The SDK names its span after the tool asked for; our labels stay a closed set.
    assert "made_up_tool_" not in seen.labels()
    assert seen.total("flora_mcp.tool.calls", tool="unknown_tool") == 1  # a client's invented name is no new label


def test_route_templates_never_carry_ids():
    assert route_template("/runs/run_8f2k") == "/runs/{run_id}"
    assert route_template("/runs/action") == "/runs/action"
    assert route_template("/projects/prj_1/actions/node_7/run") == "/projects/{project_id}/actions/{node_id}/run"
    assert route_template("/somewhere/else/ws_1") == "other"


# --- the hosted app: /metrics, /readyz, the access log -------------------------------------------------------
async def _hosted(**overrides: Any):
    from flora_mcp.transports.http import create_app

    return create_app(settings(sandbox=True, sandbox_speed=200, rate_limit=0, **overrides))


def _plain(app: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8000")


async def test_metrics_scrape_parses_and_the_access_log_names_the_trace(seen, caplog):
    from mcp.client.streamable_http import streamable_http_client
    from prometheus_client.parser import text_string_to_metric_families

    app = await _hosted(metrics="app")
    caplog.set_level(logging.INFO, logger="flora_mcp.access")
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        http = httpx2.AsyncClient(transport=transport, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})
        async with Client(streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http), mode="legacy") as c:
            assert not (await c.call_tool("list_workspaces", {})).is_error
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as plain:
            assert (await plain.post("/mcp", json={}, headers={"Accept": "application/json, text/event-stream"}
                                     )).status_code == 401
            scrape = await plain.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    calls = families["flora_mcp_tool_calls"]
    assert any(s.labels == {"tool": "list_workspaces", "outcome": "ok"} and s.value == 1 for s in calls.samples)
    verdicts = {s.labels["verdict"]: s.value for s in families["flora_mcp_key_gate_verdicts"].samples
                if s.name.endswith("_total")}
    assert verdicts["admitted"] >= 1 and verdicts["no_key"] == 1
    assert "flora_mcp_flora_request_duration_seconds" in families
    assert SANDBOX_API_KEY not in scrape.text

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "flora_mcp.access"]
    mcp_lines = [line for line in lines if line["path"] == "/mcp"]
    assert mcp_lines and all(len(line["trace_id"]) == 32 and len(line["span_id"]) == 16 for line in mcp_lines)
    http_spans = {format(s.context.trace_id, "032x") for s in seen.spans("POST /mcp")}
    assert {line["trace_id"] for line in mcp_lines} <= http_spans


async def test_metrics_are_not_served_on_the_app_unless_asked(seen):
    app = await _hosted()
    async with app.router.lifespan_context(app), _plain(app) as h:
        assert (await h.get("/metrics")).status_code == 404


async def test_readyz_says_whether_the_ledger_answers_and_flora_was_reachable():
    app = await _hosted()
    async with app.router.lifespan_context(app), _plain(app) as h:
        ready = await h.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert ready.json()["ledger"]["ok"] is True

        for _ in range(telemetry.FloraReach.UNREACHABLE_AFTER):  # the last FLORA requests could not connect
            telemetry.flora_reach.failed()
        down = await h.get("/readyz")
        assert down.status_code == 503 and down.json()["flora"]["reachable"] is False
        telemetry.flora_reach.answered()
        assert (await h.get("/readyz")).status_code == 200
        assert (await h.get("/healthz")).status_code == 200


async def test_readyz_is_503_when_the_ledger_store_does_not_answer():
    from flora_mcp.transports.ops import Readiness

    ledger = open_ledger("memory:")

    async def broken(name: str) -> None:
        raise ConnectionError("redis is gone")

    ledger.shared.get = broken
    response = await Readiness(ledger).handle(None)  # type: ignore[arg-type]
    body = json.loads(response.body)
    assert response.status_code == 503 and body["ledger"] == {"ok": False, "ms": body["ledger"]["ms"],
                                                              "error": "ConnectionError"}


# A script's opening lines: a sandbox server in the child process, and one tool call through the SDK client.
_SANDBOX_SERVER = ("from flora_mcp.server import create_server\n"
                   "from flora_mcp.config import load_settings\n"
                   "from mcp.client import Client\n"
                   "from flora_mcp.connect import build_client\n"
                   "server = create_server(load_settings(sandbox=True, state_url='memory:'), connect=build_client)\n")
_ONE_CALL = ("async def main():\n"
             "    async with Client(server) as c:\n"
             "        assert not (await c.call_tool('list_workspaces', {})).is_error\n"
             "anyio.run(main)\n")


# --- off costs nothing; a dead collector costs users nothing -----------------------------------------------------
@pytest.mark.slow
def test_with_telemetry_off_the_sdk_is_never_imported_and_hooks_are_identity():
    code = (
        "import sys, anyio\n"
        + _SANDBOX_SERVER + _ONE_CALL +
        "from flora_mcp import telemetry\n"
        "assert telemetry.active() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'prometheus_client', "
        "'opentelemetry.exporter', 'opentelemetry.metrics'))))\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_otlp_to_a_closed_port_never_reaches_the_user():
    """OTLP on, nothing listening: the call succeeds, the stdio protocol stays clean, and exit is prompt."""
    from tests.helpers import free_port

    port = free_port()
    code = (
        "import sys, time, anyio\n"
        + _SANDBOX_SERVER +
        "from flora_mcp import telemetry\n"
        "assert telemetry.active() is not None\n"
        "async def main():\n"
        "    async with Client(server) as c:\n"
        "        for _ in range(3):\n"
        "            assert not (await c.call_tool('list_workspaces', {})).is_error\n"
        "anyio.run(main)\n"
        "print('ok')\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    # The SDK alone would wait out every export retry at exit (~20 s); ours gives up after EXIT_SECONDS.
    assert "exiting without them" in out.stderr


def test_the_dashboard_and_the_alerts_name_only_metrics_that_exist(seen):
    """Every series docs/grafana-flora-mcp.json and docs/observability.md query is one the scrape has."""
    import re
    from pathlib import Path

    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    t = seen.telemetry
    for counter in (t.tool_calls, t.paid_starts, t.charged, t.key_gate, t.sign_ins, t.tools_active, t.waits_active):
        counter.add(1, {"tool": "x"})
    for histogram in (t.tool_duration, t.flora_duration, t.ledger_duration, t.http_duration):
        histogram.record(0.1, {"tool": "x"})
    exposed = set()
    for family in text_string_to_metric_families(generate_latest(seen.registry).decode()):
        exposed |= {family.name, *(s.name for s in family.samples)}
    docs = Path(__file__).resolve().parent.parent / "docs"
    queried = set(re.findall(r"\b(?:flora_mcp|http_server)_[a-z_]+", (docs / "grafana-flora-mcp.json").read_text()
                             + (docs / "observability.md").read_text()))
    queried = {q for q in queried if not q.startswith("flora_mcp_error")}  # flora_mcp.error.code is a span attribute
    assert queried and queried <= exposed, queried - exposed


@pytest.mark.slow
def test_telemetry_that_cannot_start_is_logged_and_the_server_serves_anyway():
    code = (
        "import anyio\n"
        + _SANDBOX_SERVER + _ONE_CALL +
        "print('ok')\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "OTEL_TRACES_EXPORTER": "zipkin"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert "telemetry stays off: OTEL_TRACES_EXPORTER=zipkin is not supported here" in out.stderr


# --- OAuth sign-in, FLORA_METRICS on its own port, the setting's errors --------------------------------------
async def test_sign_ins_are_counted_and_their_steps_are_spans_without_tokens(seen, tmp_path):
    from flora_mcp.transports.http import create_app
    from tests.test_oauth import consent_page, oauth_settings, pkce, running, sign_in, submit

    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id, tokens = await sign_in(http)
        refreshed = await http.post("/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                    "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        page = await consent_page(http, client_id, pkce()[1])
        assert (await submit(http, page, "sk_live_not_a_key_flora_knows")).status_code == 400

    assert seen.total("flora_mcp.sign_ins", step="consent", outcome="approved") == 1
    assert seen.total("flora_mcp.sign_ins", step="consent", outcome="key_rejected") == 1
    assert seen.total("flora_mcp.sign_ins", step="token", outcome="issued") == 1
    assert seen.total("flora_mcp.sign_ins", step="refresh", outcome="issued") == 1
    routes = {s.attributes.get("http.route") for s in seen.spans() if s.kind == trace.SpanKind.SERVER}
    assert {"/register", "/authorize", "/consent", "/token"} <= routes
    assert seen.spans("ledger shared.put")  # the OAuth records the store keeps, timed like any ledger write
    said = seen.everything_said()
    for secret in (tokens["access_token"], tokens["refresh_token"], refreshed.json()["access_token"], SANDBOX_API_KEY,
                   "sk_live_not_a_key_flora_knows", client_id):
        assert secret not in said


@pytest.mark.slow
def test_metrics_on_their_own_port_and_not_on_the_app():
    from tests.helpers import free_port, hosted

    port = free_port()
    with hosted("--sandbox", FLORA_METRICS=str(port), FLORA_RATE_LIMIT="0",
                OTEL_TRACES_EXPORTER="none") as (base, server):
        headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}", "Accept": "application/json, text/event-stream"}
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_workspaces",
                                                                                "arguments": {}}}
        assert httpx2.post(f"{base}/mcp", json=call, headers=headers, timeout=30).status_code == 200
        assert httpx2.get(f"{base}/metrics", timeout=5).status_code == 404  # MCP clients cannot reach it
        scrape = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    assert any(s.labels.get("tool") == "list_workspaces" and s.labels.get("outcome") == "ok"
               for s in families["flora_mcp_tool_calls"].samples)
    assert "Prometheus metrics at http://127.0.0.1:" in server.text


@pytest.mark.parametrize("value", ["yes", "99999", "host:port", "1.2.3.4:0"])
def test_a_bad_flora_metrics_names_the_variable_and_the_choices(value, monkeypatch):
    from flora_mcp.config import SettingsError, load_settings

    monkeypatch.setenv("FLORA_METRICS", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "FLORA_METRICS" in str(caught.value) and "0.0.0.0:9464" in str(caught.value)


@pytest.mark.parametrize("value", ["app", "9464", "0.0.0.0:9464", "[::1]:9464"])
def test_good_flora_metrics_values_are_kept(value, monkeypatch):
    from flora_mcp.config import load_settings
    from flora_mcp.telemetry.setup import listen_address

    monkeypatch.setenv("FLORA_METRICS", value)
    assert load_settings().metrics == value
    if value != "app":
        assert listen_address(value)[1] == 9464
