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
from ..polling import run_polls, wait_for_news
from ..telemetry import traced_wait
from .toolcall import ToolCall

if TYPE_CHECKING:
    from ..models import Run

def status_line(run: Run) -> str:
    return f"{run.status}, {run.progress:.0f}%"


@traced_wait
async def follow(call: ToolCall, run_ids: list[str], wait_seconds: float,
                 estimated_seconds: int | None = None) -> list[Run | FloraError]:
    """Follow the runs until all are finished or the wait is over; one progress stream for all.

    Waiters share each run's polls (flora_mcp.polling): however many calls, agents or processes wait
    on a run, FLORA is asked about it about once per interval. A run that cannot be read (unknown ID,
    say) comes back as its FloraError, in its place.
    """
    wait_seconds = min(max(wait_seconds, 0.0), MAX_WAIT_SECONDS)
    deadline = time.monotonic() + wait_seconds
    estimates = {r: call.user_state.estimates.get(r) or estimated_seconds for r in run_ids}
    for run_id in [r for r, e in estimates.items() if not e]:  # started in another process: the ledger knows
        row = await call.ledger.run(call.user_id, run_id)
        if row and row.get("estimated_seconds"):
            estimates[run_id] = call.user_state.estimates[run_id] = row["estimated_seconds"]
    last_reported: float | None = None
    async with run_polls(call.ledger).watch(call.user_id, run_ids, estimates) as polls:
        while True:
            due = [p for p in polls if p.seconds_until_due() == 0]
            if len(due) == 1:  # the common case: no task group to set up on the per-call hot path
                await due[0].refresh(call.client)
            elif due:
                async with anyio.create_task_group() as tg:
                    for poll in due:
                        tg.start_soon(poll.refresh, call.client)
            ordered = [p.answer.value for p in polls if p.answer is not None]
            if len(ordered) < len(polls):
                continue  # a refresh was cut short (its first answer comes from the next one)
            total_progress = sum(100.0 if _done(r) else r.progress for r in ordered) / len(ordered)
            if total_progress != last_reported:
                last_reported = total_progress
                done = sum(_done(r) for r in ordered)
                first = ordered[0]
                message = status_line(first) if len(ordered) == 1 and not isinstance(first, FloraError) \
                    else f"{done}/{len(ordered)} finished"
                await call.progress(round(total_progress, 1), 100, message)
            remaining = deadline - time.monotonic()
            if all(_done(r) for r in ordered) or remaining <= 0:
                return ordered
            pending = [p for p in polls if not _done(p.answer.value)]
            await wait_for_news(pending, min(remaining, min(p.seconds_until_due() for p in pending)))


def _done(run: Run | FloraError) -> bool:
    return isinstance(run, FloraError) or run.finished


def seconds_left(run: Run, estimated_seconds: int | None) -> int:
    """A rough 'check back in' figure for an unfinished run."""
    if estimated_seconds and run.progress:
        return max(2, int(estimated_seconds * (100 - run.progress) / 100))
    if estimated_seconds:
        return max(2, int(estimated_seconds))
    return 10
