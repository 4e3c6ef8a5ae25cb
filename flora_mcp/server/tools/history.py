"""list_runs: what was started through this server and what was spent, from the ledger."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import anyio
from pydantic import Field

from ...config import budget_usd
from ...errors import FloraError
from ...ledger import Query, book
from ..arguments import ProjectParam, ToolArgs
from ..runs import observe_status
from ..toolcall import ToolCall
from ..tooling import ToolResult, ToolSpec


class ListRuns(ToolArgs):
    project_id: ProjectParam = None
    status: Annotated[Literal["unfinished", "completed", "failed"] | None,
                      Field(description="unfinished: not settled yet")] = None
    limit: Annotated[int | None, Field(ge=1, le=100, description="Default 20")] = None


LIST_COLUMNS = ["run_id", "tool", "model", "status", "usd", "project_id", "age", "prompt"]
_TOOL_SHORT = {"start_generation": "generation", "start_generations": "generation", "run_action": "action",
               "run_technique": "technique"}


async def list_runs(req: ListRuns, call: ToolCall) -> ToolResult:
    """The user's paid starts from the ledger, newest first (a page filtered in the store), with the budget
    window's totals of the runs the filter matches."""
    following = await call.ledger.following(call.user_id)
    if following:
        await _refresh_unfinished(call, following)
    window_hours = call.settings.budget_window_hours
    query = Query(project_id=req.project_id, status=req.status, limit=req.limit or 20)
    page = await call.ledger.page(call.user_id, query, window_hours * 3600)
    shown, now = page.rows, time.time()
    projects = {r.get("project_id") for r in shown}
    columns = LIST_COLUMNS if len(projects) > 1 else [c for c in LIST_COLUMNS if c != "project_id"]
    # A start whose process died mid-POST stays 'starting' in the ledger: to the agent it is unknown.
    # usd: the final charge once settled, else what the budget holds for it (as the budget counts it).
    table = [[r.get("run_id") or f"key:{r['key']}", _TOOL_SHORT.get(r["tool"], r["tool"]), r.get("model"),
              "unknown" if book.is_stale_start(r, now) else r["status"], round(book.counted_usd(r), 4)]
             + ([r.get("project_id")] if len(projects) > 1 else []) + [_age(now - r["created"]), r.get("label")]
             for r in shown]
    totals: dict[str, Any] = {"window_hours": window_hours, "charged_usd": round(page.spent_usd, 4),
                              "held_usd": round(page.held_usd, 4)}
    filtered = query != Query(limit=query.limit)
    budget = budget_usd(call.settings)
    if budget is not None:  # the budget is the account's: what is left counts every run, not just these
        spent, held = (await call.ledger.totals(call.user_id, window_hours * 3600) if filtered
                       else (page.spent_usd, page.held_usd))
        totals |= {"budget_usd": budget, "left_usd": round(max(budget - spent - held, 0.0), 4)}
    note = ("usd: final charge once completed/failed, else the amount held for it; held_usd: held for unfinished "
            "runs")
    if filtered:
        note += "; charged_usd and held_usd: the runs matching this filter (left_usd: the whole account)"
    result: dict[str, Any] = {"columns": columns, "runs": table, "totals": totals, "note": note}
    if len(projects) == 1 and shown:
        result["project_id"] = projects.pop()  # every run shown is in this project
    if page.matching > len(shown):
        result["more"] = page.matching - len(shown)
    return ToolResult(result)


async def _refresh_unfinished(call: ToolCall, rows: list[dict[str, Any]]) -> None:
    """Ask FLORA about unfinished runs once, so totals settle without a get_run per run."""

    async def refresh(run_id: str) -> None:
        try:
            await observe_status(call, await call.client.get_run(run_id))
        except FloraError:
            pass  # the row keeps its last known status

    with anyio.move_on_after(5):
        async with anyio.create_task_group() as tg:
            for row in rows:
                tg.start_soon(refresh, row["run_id"])


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    if seconds < 172800:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


TOOLS = [
    ToolSpec("list_runs", "Runs started through this server, newest first, and what was spent (budget left).",
             ListRuns, list_runs, "core", read_only=True, idempotent=True),
]
