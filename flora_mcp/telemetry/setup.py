"""Turning telemetry on from the standard OTEL_* variables and FLORA_METRICS (the `otel` extra).

OTLP is on when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT, or its _TRACES_/_METRICS_ form) or
OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER name an exporter (otlp, console); OTEL_SDK_DISABLED=true
turns it off. The SDK reads everything else itself: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL…
Export runs in the SDK's background threads (batched spans, periodic metrics): a collector that is
down costs a log line there, never a user's call.

A provider the operator already installed (e.g. under `opentelemetry-instrument`) is joined, not replaced.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from typing import TYPE_CHECKING, Any

from .._version import __version__
from .facts import exporters_asked as _exporters

if TYPE_CHECKING:
    from ..config import Settings
    from .otel import Telemetry

logger = logging.getLogger("flora_mcp.telemetry")

# At exit, what is left is flushed for this long; a collector that does not answer then gets no more time.
# (The SDK's own exit waits out every retry: ~20 s with a collector down, for a stdio server a client restarts.)
EXIT_SECONDS = 3.0
INSTALL = "pip install 'flora-mcp[otel]'"


def from_environment(settings: Settings) -> Telemetry:
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(f"OTEL_* or FLORA_METRICS asks for telemetry, but the OpenTelemetry SDK is not "
                           f"installed: {INSTALL}") from exc
    from .otel import Telemetry, TraceIdFilter

    attributes = {"service.version": __version__, "service.instance.id": uuid.uuid4().hex}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "flora-mcp"
    resource = Resource.create(attributes)

    providers: list[Any] = []  # what this process made, to flush and stop at exit
    exporters: list[Any] = []
    tracer_provider: Any = trace.get_tracer_provider()
    span_exporters = _exporters("TRACES")
    if span_exporters and isinstance(tracer_provider, trace.ProxyTracerProvider):  # nobody set one: ours
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        for name in span_exporters:
            exporter = _span_exporter(name)
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
            exporters.append(exporter)
        trace.set_tracer_provider(tracer_provider)  # the MCP SDK's request spans go here too
        providers.append(tracer_provider)

    readers, prometheus = [], None
    for name in _exporters("METRICS"):
        exporters.append(_metric_exporter(name))
        readers.append(PeriodicExportingMetricReader(exporters[-1]))
    if settings.metrics:
        reader, registry = _prometheus_reader()
        readers.append(reader)
        prometheus = (registry, settings.metrics)
    meter_provider: Any = metrics.get_meter_provider()
    if readers:
        own = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
        providers.append(own)
        if isinstance(meter_provider, metrics._internal._ProxyMeterProvider):
            metrics.set_meter_provider(own)
        meter_provider = own  # a Prometheus scrape needs our readers even beside an operator's provider

    if providers:
        atexit.register(_shutdown, providers, exporters)
    telemetry = Telemetry(tracer_provider, meter_provider, prometheus=prometheus)
    for handler in logging.getLogger().handlers:
        handler.addFilter(TraceIdFilter(telemetry))
    if prometheus is not None and prometheus[1] != "app":
        _serve_prometheus(*prometheus)
    logger.info("telemetry on: traces %s, metrics %s", ",".join(span_exporters) or "off",
                ",".join(_exporters("METRICS") + (["prometheus " + settings.metrics] if settings.metrics else []))
                or "off")
    return telemetry


def _shutdown(providers: list[Any], exporters: list[Any], seconds: float = EXIT_SECONDS) -> None:
    """Flush and stop the providers, bounded: past `seconds`, stop the exporters' retries and go."""
    done = threading.Event()

    def flush() -> None:
        for provider in providers:
            try:
                provider.shutdown()
            except Exception:
                logger.warning("telemetry: shutting down %s failed", type(provider).__name__, exc_info=True)
        done.set()

    threading.Thread(target=flush, name="flora-mcp-telemetry-exit", daemon=True).start()
    if done.wait(seconds):
        return
    logger.warning("telemetry: the collector did not take the last spans/metrics in %.0f s; exiting without them",
                   seconds)
    for exporter in exporters:
        try:
            exporter.shutdown()  # ends a retry loop waiting on a collector that is down
        except Exception:
            logger.debug("telemetry: stopping %s failed", type(exporter).__name__, exc_info=True)


def _protocol(signal: str) -> str:
    return (os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf").strip().lower()


def _span_exporter(name: str) -> Any:
    if name == "console":
        import sys

        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stdout is the MCP protocol's on stdio
    if name != "otlp":
        raise RuntimeError(f"OTEL_TRACES_EXPORTER={name} is not supported here; use otlp, console or none")
    if _protocol("TRACES") == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError("OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc; or set "
                               "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf") from exc
        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter()


def _metric_exporter(name: str) -> Any:
    if name == "console":
        import sys

        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    if name == "prometheus":
        raise RuntimeError("OTEL_METRICS_EXPORTER=prometheus: use FLORA_METRICS=app or FLORA_METRICS=[host:]port")
    if name != "otlp":
        raise RuntimeError(f"OTEL_METRICS_EXPORTER={name} is not supported here; use otlp, console or none")
    if _protocol("METRICS") == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        except ImportError as exc:
            raise RuntimeError("OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc; or set "
                               "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf") from exc
        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

    return HttpMetricExporter()


def _prometheus_reader() -> tuple[Any, Any]:
    """The OpenTelemetry Prometheus reader on a registry of our own (not prometheus_client's global one)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=True)
    return PrometheusMetricReader(registry=registry, scope_info_enabled=False), registry


def listen_address(value: str) -> tuple[str, int]:
    """FLORA_METRICS as (host, port): `9464` is loopback; `0.0.0.0:9464` or `[::]:9464` when the operator says."""
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def _serve_prometheus(registry: Any, where: str) -> None:
    """/metrics on its own port, in prometheus_client's server thread (answers even when the loop is busy).
    With several workers only the first binds the port; the others say so and go on."""
    from prometheus_client import start_http_server

    host, port = listen_address(where)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        logger.warning("FLORA_METRICS: cannot listen on %s:%d (%s); this process's metrics are not served",
                       host, port, exc.strerror or type(exc).__name__)
        return
    logger.info("Prometheus metrics at http://%s:%d/metrics", host, port)
