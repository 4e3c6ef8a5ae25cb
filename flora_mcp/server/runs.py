"""A run as the agent sees it: one row with status, cost, outputs (with previews) and the next step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._ids import new_idempotency_key
from ..errors import AcceptedRunLostError, FloraError
from ._registry import ToolResult
from .outputs import present_outputs
from .session import ToolCall
from .waiting import follow, seconds_left

if TYPE_CHECKING:
    from ..models import Run, RunStarted


async def start_once(call: ToolCall, idempotency_key: str, start: Callable[[str], Awaitable[RunStarted]]) -> str:
    """Start a run and remember it: the same key returns it again; its estimate shapes later hints.

    Raises AcceptedRunLostError when FLORA accepted the start but its answer was lost.
    """
    started = await start(idempotency_key)
    call.user.started[idempotency_key] = started.run_id
    if started.estimated_seconds is not None:
        call.user.estimates[started.run_id] = started.estimated_seconds
    if started.model is not None:
        call.user.models_used[started.run_id] = started.model.model_id
    await call.info(f"started {started.run_id}")
    return started.run_id


async def run_once(call: ToolCall, start: Callable[[str], Awaitable[RunStarted]], wait_seconds: float | None,
                   idempotency_key: str | None = None) -> ToolResult:
    """Start a paid run at most once per idempotency key, then follow it within the wait budget.

    A key seen before returns the run it started (an agent retrying a timed-out call pays once);
    a start whose answer was lost but which FLORA accepted is reported as accepted, not failed.
    """
    key = idempotency_key or new_idempotency_key()
    run_id = call.user.started.get(key)
    if run_id is None:
        try:
            run_id = await start_once(call, key, start)
        except AcceptedRunLostError as exc:
            return ToolResult({"status": "accepted", "run_id": None, "idempotency_key": key, "next": str(exc)})
    [run] = await follow(call, [run_id], wait_budget(call, wait_seconds), call.user.estimates.get(run_id))
    if isinstance(run, FloraError):
        raise run
    row, blocks = await describe_run(call, run, run_id)
    return ToolResult(row, content=blocks)


async def describe_run(call: ToolCall, run: Run | FloraError, run_id: str) -> tuple[dict[str, Any], list]:
    if isinstance(run, FloraError):
        return {"run_id": run_id, "error": {"code": run.code, "message": str(run)}}, []
    row: dict[str, Any] = {"run_id": run.run_id, "status": run.status, "progress": run.progress}
    if run.run_id in call.user.models_used:  # the model FLORA chose when none was named
        row["model"] = call.user.models_used[run.run_id]
    blocks: list = []
    if run.status == "completed":
        call.user.settle(run.run_id, run.charged_cost)
        rows, blocks, previews_note = await present_outputs(call, run)
        row |= {"charged_cost": run.charged_cost or 0.0, "outputs": rows}
        if previews_note:
            row["previews"] = previews_note
    elif run.status == "failed":
        call.user.settle(run.run_id, run.charged_cost)
        row |= {"charged_cost": run.charged_cost or 0.0, "error_code": run.error_code,
                "error_message": run.error_message,
                "next": "failed runs usually fail again: change the prompt or model before retrying"}
    else:
        wait = seconds_left(run, call.user.estimates.get(run.run_id))
        row |= {"charged_cost_min": run.charged_cost or 0.0,
                "next": f"still {run.status}: call get_run with run_id={run.run_id} (and wait_seconds) in ~{wait} s"}
    return row, blocks


def wait_budget(call: ToolCall, wait_seconds: float | None) -> float:
    return call.settings.wait_seconds if wait_seconds is None else wait_seconds
