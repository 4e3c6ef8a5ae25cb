"""What the hosted app answers operators (not MCP clients): readiness, and the Prometheus scrape if asked.

    GET /readyz   200 {"ready": true, ...} when the ledger's store answers a read and FLORA was not
                  unreachable lately; 503 with the same fields when not (load balancers, Kubernetes).
    GET /metrics  Prometheus text, only with FLORA_METRICS=app (otherwise on its own port, or nowhere).

/healthz (in http.py) stays a liveness check: the process answers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import telemetry
from ..config import Settings

logger = logging.getLogger("flora_mcp.http")

LEDGER_TIMEOUT = 2.0  # seconds the store has to answer a read before the replica counts as not ready
CACHE_SECONDS = 1.0  # a burst of probes costs the store one read a second


def operator_routes(settings: Settings, ledger: Any) -> list[Route]:
    routes = [Route("/readyz", Readiness(ledger).handle)]
    active = telemetry.active()
    if settings.metrics == "app" and active is not None and active.prometheus is not None:
        routes.append(Route("/metrics", _scrape(active.prometheus[0])))
    return routes


class Readiness:
    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self._last: tuple[float, bool, float | None, str | None] | None = None  # (when, ok, ms, error)

    async def handle(self, request: Request) -> JSONResponse:
        ok, ms, error = await self._ledger_answers()
        reachable = telemetry.flora_reach.reachable()
        ready = ok and reachable is not False
        ledger: dict[str, Any] = {"ok": ok, "ms": ms} | ({"error": error} if error else {})
        body = {"ready": ready, "ledger": ledger, "flora": {"reachable": reachable,
                                                            "last_answer_s": _age(telemetry.flora_reach.last_answer)}}
        return JSONResponse(body, status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})

    async def _ledger_answers(self) -> tuple[bool, float | None, str | None]:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < CACHE_SECONDS:
            return self._last[1:]
        started, error = time.perf_counter(), None
        try:
            with anyio.fail_after(LEDGER_TIMEOUT):
                await self.ledger.shared.get("readyz")  # a cheap read of one absent name
        except TimeoutError:
            error = f"no answer in {LEDGER_TIMEOUT:.0f} s"
        except Exception as exc:  # noqa: BLE001 - any store failure means: not ready
            error = type(exc).__name__
        ms = round((time.perf_counter() - started) * 1000, 2)
        if error:
            logger.warning("readiness: the ledger's store did not answer (%s)", error)
        self._last = (now, error is None, ms, error)
        return error is None, ms, error


def _age(when: float | None) -> float | None:
    return None if when is None else round(time.monotonic() - when, 1)


def _scrape(registry: Any) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
