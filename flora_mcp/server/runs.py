"""A run as the agent sees it: one row with status, cost in USD, outputs (with previews) and the next step.

Every status read is also told to the ledger (once per change), so spending settles to FLORA's
real charge and later estimates learn from it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import FloraConnectionError, FloraError, RateLimitError, ServerError
from ..ledger import LedgerUnavailable
from .canvas_links import where_to_see
from .outputs import present_outputs
from .toolcall import ToolCall
from .waiting import seconds_left

if TYPE_CHECKING:
    from ..models import Run

logger = logging.getLogger("flora_mcp.server")


async def describe_run(call: ToolCall, run: Run) -> tuple[dict[str, Any], list]:
    await observe_status(call, run)
    row: dict[str, Any] = {"run_id": run.run_id, "status": run.status, "progress": run.progress}
    if run.run_id in call.user_state.models_used:  # the model FLORA chose when none was named
        row["model"] = call.user_state.models_used[run.run_id]
    blocks: list = []
    if run.status == "completed":
        rows, blocks, previews_note = await present_outputs(call, run)
        row |= {"charged_usd": run.charged_cost or 0.0, "outputs": rows} | await where_to_see(call, run.run_id)
        if previews_note:
            row["previews"] = previews_note
    elif run.status == "failed":
        row |= {"charged_usd": run.charged_cost or 0.0, "error_code": run.error_code,
                "error_message": run.error_message,
                "next": "failed runs usually fail again: change the prompt or model before retrying"}
    else:
        wait = seconds_left(run, call.user_state.estimates.get(run.run_id))
        row |= {"charged_usd_so_far": run.charged_cost or 0.0,
                "next": f"still {run.status}: call get_run with run_id={run.run_id} (and wait_seconds) in ~{wait} s"}
    return row, blocks


async def observe_status(call: ToolCall, run: Run) -> None:
    """Tell the ledger a run's status and charge, once per change seen by this process."""
    seen = (run.status, run.charged_cost)
    if call.user_state.seen.get(run.run_id) == seen:
        return
    try:
        await call.ledger.observe(call.user_id, run.run_id, run.status, run.charged_cost)
    except Exception as exc:  # noqa: BLE001 - the run's answer never fails for the ledger's sake; told again next read
        logger.error("ledger: could not record %s of run %s (%s)", run.status, run.run_id,
                     exc if isinstance(exc, LedgerUnavailable) else type(exc).__name__)
        return
    call.user_state.seen[run.run_id] = seen


def is_transient(error: FloraError) -> bool:
    """A failure to read a run that says nothing about the run itself (FLORA busy, network, rate limit)."""
    return isinstance(error, FloraConnectionError | RateLimitError | ServerError)


def unknown_status_row(run_id: str, error: FloraError) -> dict[str, Any]:
    """The run exists (FLORA gave its ID) but its status could not be read just now."""
    wait = max(5, int(error.retry_after or 0))
    return {"run_id": run_id, "status": "unknown", "next": (
        f"the run was started; its status could not be read just now ({error.message}). "
        f"Call get_run with run_id={run_id} in ~{wait} s")}


def wait_budget(call: ToolCall, wait_seconds: float | None) -> float:
    """The call's own wait_seconds, else a default that ends before this client cuts the call."""
    from .client_timeouts import default_wait

    return default_wait(call.settings, call.ctx) if wait_seconds is None else wait_seconds
