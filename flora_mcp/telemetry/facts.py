"""Facts kept even when telemetry is off, read by the hooks, the OpenTelemetry setup and /readyz: what
FLORA answered lately, and which exporters the environment asks for. The bottom of the package."""

from __future__ import annotations

import os
import time


class FloraReach:
    """When FLORA last answered (any HTTP status) and how many connection failures came since: readiness."""

    UNREACHABLE_AFTER = 3  # connection failures in a row, with no answer between, before FLORA counts as down
    RECENT_SECONDS = 60.0  # failures older than this say nothing about now

    def __init__(self) -> None:
        self.last_answer: float | None = None  # time.monotonic() of FLORA's last answer
        self.last_failure: float | None = None
        self.failures = 0  # connection failures since the last answer

    def answered(self) -> None:
        self.last_answer, self.failures = time.monotonic(), 0

    def failed(self) -> None:
        self.last_failure, self.failures = time.monotonic(), self.failures + 1

    def reachable(self) -> bool | None:
        """False when the last requests could not connect (recently); None when nothing was asked lately."""
        now = time.monotonic()
        if self.failures >= self.UNREACHABLE_AFTER and self.last_failure and now - self.last_failure < self.RECENT_SECONDS:
            return False
        if self.last_answer is None or now - self.last_answer > self.RECENT_SECONDS * 5:
            return None
        return True


flora_reach = FloraReach()


_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_{}_ENDPOINT")


def exporters_asked(signal: str) -> list[str]:
    """The exporters asked for one signal (TRACES, METRICS): from OTEL_<signal>_EXPORTER, else OTLP when
    an OTLP endpoint is set."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    choice = os.environ.get(f"OTEL_{signal}_EXPORTER", "").strip().lower()
    if not choice:
        endpoint = any(os.environ.get(name.format(signal), "").strip() for name in _ENDPOINTS)
        choice = "otlp" if endpoint else "none"
    return [c.strip() for c in choice.split(",") if c.strip() and c.strip() != "none"]
