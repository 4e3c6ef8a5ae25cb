"""A run as the agent sees it: one row with status, cost, outputs (with previews) and the next step."""

from __future__ import annotations

from typing import Any

from ..errors import FloraError
from ..models import Run, RunStarted
from .outputs import render_outputs
from .session import ToolCall
from .waiting import follow, seconds_left


def record_start(call: ToolCall, idempotency_key: str, started: RunStarted) -> None:
    """Remember a started run: the same key returns it again; its estimate shapes later hints."""
    call.user.started[idempotency_key] = started.run_id
    if started.estimated_seconds is not None:
        call.user.estimates[started.run_id] = started.estimated_seconds


async def start_and_follow(call: ToolCall, idempotency_key: str, start: Any, wait_seconds: float | None):
    """Start a run once per key (a repeated key returns the run already started), then follow it."""
    run_id = call.user.started.get(idempotency_key)
    if run_id is None:
        started = await start()
        record_start(call, idempotency_key, started)
        run_id = started.run_id
        await call.info(f"started {run_id}")
    estimated = call.user.estimates.get(run_id)
    [run] = await follow(call, [run_id], wait_budget(call, wait_seconds), estimated)
    if isinstance(run, FloraError):
        raise run
    return await describe_run(call, run, run_id, estimated)


async def describe_run(call: ToolCall, run: Run | FloraError, run_id: str,
                    estimated_seconds: int | None = None) -> tuple[dict[str, Any], list]:
    if isinstance(run, FloraError):
        return {"run_id": run_id, "error": {"code": run.code, "message": str(run)}}, []
    row: dict[str, Any] = {"run_id": run.run_id, "status": run.status, "progress": run.progress}
    blocks: list = []
    if run.status == "completed":
        call.user.settle(run.run_id, run.charged_cost)
        # Saving is the server operator's choice (stdio users set FLORA_OUTPUT_DIR); hosted mode leaves it unset.
        rows, blocks = await render_outputs(call.client, run, save_dir=call.settings.output_dir)
        row |= {"charged_cost": run.charged_cost or 0.0, "outputs": rows}
    elif run.status == "failed":
        call.user.settle(run.run_id, run.charged_cost)
        row |= {"charged_cost": run.charged_cost or 0.0, "error_code": run.error_code,
                "error_message": run.error_message,
                "next": "failed runs usually fail again: change the prompt or model before retrying"}
    else:
        wait = seconds_left(run, estimated_seconds or call.user.estimates.get(run.run_id))
        row |= {"charged_cost_min": run.charged_cost or 0.0,
                "next": f"still {run.status}: call get_run with run_id={run.run_id} (and wait_seconds) in ~{wait} s"}
    return row, blocks


def wait_budget(call: ToolCall, wait_seconds: float | None) -> float:
    return call.settings.wait_seconds if wait_seconds is None else wait_seconds
