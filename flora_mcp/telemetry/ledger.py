"""A timing proxy around the ledger, put on from outside where the ledger is created.

Every public async method of the ledger (and of its shared values, as `shared.<method>`) becomes a span
and a point in `flora_mcp.ledger.duration`, named by the method: begin, dry_run, started, observe… It
wraps whatever methods the ledger has, so it keeps working when the ledger's insides change. What the
ledger records also feeds the money metrics: paid starts (started, accepted, unknown) and the USD
charged when a run first settles (the ledger returns that row exactly once, across processes).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from opentelemetry.trace import StatusCode

from .otel import Telemetry, current_tool

# Ledger methods that record a paid start, and the outcome each records.
_PAID = {"started": "started", "accepted_without_id": "accepted", "outcome_unknown": "unknown"}
_REFUSALS = ("OverBudget",)  # a decision the ledger raises, not a failure of its store


def instrumented(ledger: Any, telemetry: Telemetry) -> Any:
    if isinstance(ledger, InstrumentedLedger):
        return ledger
    return InstrumentedLedger(ledger, telemetry)


def _store_kind(store: Any) -> str:
    name = type(store).__name__.lower().removesuffix("store")
    return name or "unknown"


class _Timed:
    """Each public coroutine method of `inner`, timed; everything else passed through."""

    def __init__(self, inner: Any, telemetry: Telemetry, store: str, prefix: str) -> None:
        self._inner, self._telemetry, self._store, self._prefix = inner, telemetry, store, prefix

    def __repr__(self) -> str:
        return repr(self._inner)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(value):
            return value
        timed = self._timed(self._prefix + name, value)
        self.__dict__[name] = timed  # the bound method of a long-lived object: wrap once
        return timed

    def _timed(self, kind: str, method: Any) -> Any:
        telemetry, store = self._telemetry, self._store

        async def timed(*args: Any, **kwargs: Any) -> Any:
            attributes = {"flora_mcp.ledger.operation": kind, "flora_mcp.ledger.store": store}
            started = time.perf_counter()
            outcome = "ok"
            with telemetry.tracer.start_as_current_span(f"ledger {kind}", attributes=attributes,
                                                        record_exception=False, set_status_on_exception=False) as span:
                try:
                    result = await method(*args, **kwargs)
                except Exception as exc:
                    refused = type(exc).__name__ in _REFUSALS
                    outcome = "refused" if refused else "error"
                    span.set_attribute("error.type", type(exc).__name__)
                    if not refused:
                        span.set_status(StatusCode.ERROR)
                    raise
                else:
                    _decisions(span, result)
                    _money(telemetry, kind, result)
                    return result
                finally:
                    span.set_attribute("flora_mcp.ledger.outcome", outcome)
                    telemetry.ledger_duration.record(time.perf_counter() - started, {
                        "operation": kind, "store": store, "outcome": outcome})

        return timed


class InstrumentedLedger(_Timed):
    def __init__(self, ledger: Any, telemetry: Telemetry) -> None:
        shared = getattr(ledger, "shared", None)
        kind = _store_kind(shared) if shared is not None else "unknown"
        super().__init__(ledger, telemetry, kind, "")
        if shared is not None:  # the key gate's and OAuth's values, timed as `shared.<method>`
            self.shared = _Timed(shared, telemetry, kind, "shared.")


def _decisions(span: Any, result: Any) -> None:
    """`begin`/`dry_run` answer with decisions (start, follow, wait…): name them on the span."""
    if isinstance(result, list) and result and all(hasattr(d, "kind") for d in result):
        span.set_attribute("flora_mcp.ledger.decisions", [str(d.kind) for d in result])


def _money(telemetry: Telemetry, kind: str, result: Any) -> None:
    tool = current_tool.get() or "none"
    if kind in _PAID:
        telemetry.paid_starts.add(1, {"tool": tool, "outcome": _PAID[kind]})
    elif kind == "observe" and isinstance(result, dict):  # a run settled, first time anywhere
        charged = result.get("charged_usd")
        if isinstance(charged, int | float) and charged > 0:
            telemetry.charged.add(float(charged), {"status": str(result.get("status", "unknown"))})
