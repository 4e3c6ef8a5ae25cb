"""Following runs inside one tool call: bounded waits, polling shaped by the estimate, progress.

A wait never outlives `wait_seconds` (capped at MAX_WAIT_SECONDS, under the ~60 s clients allow);
when it runs out the caller gets the current state and a plain next step. Cancellation by the
client cancels the sleep and stops polling.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio

from ..config import MAX_WAIT_SECONDS
from ..errors import FloraError
from ..telemetry import traced_wait
from .session import ToolCall

if TYPE_CHECKING:
    from ..models import Run

MIN_INTERVAL = 0.25
MAX_INTERVAL = 5.0


def first_interval(estimated_seconds: int | None) -> float:
    """Poll about ten times over the estimate, within FLORA's suggested 2-5 s for long runs."""
    if not estimated_seconds:
        return 1.0
    return min(max(estimated_seconds / 10, MIN_INTERVAL), MAX_INTERVAL)


def status_line(run: Run) -> str:
    return f"{run.status}, {run.progress:.0f}%"


@traced_wait
async def follow(call: ToolCall, run_ids: list[str], wait_seconds: float,
                 estimated_seconds: int | None = None) -> list[Run | FloraError]:
    """Poll the runs until all are finished or the wait is over; one progress stream for all.

    A run that cannot be read (unknown ID, say) comes back as its FloraError, in its place.
    """
    wait_seconds = min(max(wait_seconds, 0.0), MAX_WAIT_SECONDS)
    deadline = time.monotonic() + wait_seconds
    runs: dict[str, Run | FloraError] = {}
    interval = first_interval(estimated_seconds)
    last_reported: float | None = None
    while True:
        pending = [r for r in run_ids if r not in runs or not _done(runs[r])]
        if len(pending) == 1:  # the common case: no task group to set up on the per-call hot path
            await _refresh(call, pending[0], runs)
        else:
            async with anyio.create_task_group() as tg:
                for run_id in pending:
                    tg.start_soon(_refresh, call, run_id, runs)
        ordered = [runs[r] for r in run_ids]
        total_progress = sum(100.0 if _done(r) else r.progress for r in ordered) / len(ordered)
        if total_progress != last_reported:
            last_reported = total_progress
            done = sum(_done(r) for r in ordered)
            first = ordered[0]
            message = status_line(first) if len(ordered) == 1 and not isinstance(first, FloraError) else f"{done}/{len(ordered)} finished"
            await call.progress(round(total_progress, 1), 100, message)
        remaining = deadline - time.monotonic()
        if all(_done(r) for r in ordered) or remaining <= 0:
            return ordered
        await anyio.sleep(min(interval, remaining))
        interval = min(interval * 1.5, MAX_INTERVAL)


def _done(run: Run | FloraError) -> bool:
    return isinstance(run, FloraError) or run.finished


async def _refresh(call: ToolCall, run_id: str, runs: dict[str, Run | FloraError]) -> None:
    try:
        runs[run_id] = await call.client.get_run(run_id)
    except FloraError as exc:
        runs[run_id] = exc


def seconds_left(run: Run, estimated_seconds: int | None) -> int:
    """A rough 'check back in' figure for an unfinished run."""
    if estimated_seconds and run.progress:
        return max(2, int(estimated_seconds * (100 - run.progress) / 100))
    if estimated_seconds:
        return max(2, int(estimated_seconds))
    return 10
