"""MCP Tasks (`io.modelcontextprotocol/tasks`): a paid start or get_run answered with a task handle.

A client that opts in (2026-07-28: the extension in the request's `_meta` client capabilities) gets a
task instead of a wait: the tool runs with wait_seconds=0 (the paid
start goes through the ledger exactly as always), and the task records the FLORA run IDs it follows.
FLORA's run is the work, so nothing runs in the background: `tasks/get` reads the runs' status through
the shared poll (flora_mcp.polling: one FLORA read per run per interval however many ask) and, once
every run has settled, answers with get_run's result, which it then keeps.

Task records live in the ledger's shared store (put/get only), named by the ledger's user ID and an
unguessable task ID: any process answers `tasks/get` (the first one may be gone), and another user's
task ID is simply not found. FLORA cannot cancel a run: `tasks/cancel` stops the waiting and says the
run goes on and is charged, with its run ID.

The 2025-11-25 experimental form (`params.task`, `tasks/result`) is not served: the installed SDK sieves
every 2025-11-25 `tools/call` result through that revision's CallToolResult, which drops a
CreateTaskResult's `task`. A 2025-11-25 client that sends `params.task` gets the ordinary result (the
tools advertise no `execution.taskSupport`, so such a client should not ask).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.server import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolRequestParams, CallToolResult, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict, Field

from ..ledger.errors import LedgerUnavailable
from ..polling import interval_for

logger = logging.getLogger("flora_mcp.server")

TASKS = "io.modelcontextprotocol/tasks"
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
TASK_TOOLS = frozenset({"start_generation", "start_generations", "run_action", "run_technique", "run_canvas_action",
                        "get_run"})
TTL_SECONDS = 24 * 3600  # a task is kept a day (its runs' outputs outlive it in FLORA)
SETTLED = ("completed", "failed")


class TaskIdParams(RequestParams):
    """tasks/get, tasks/cancel: {taskId}."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")
    task_id: str = Field(alias="taskId")


OpenCall = Callable[[Context], Awaitable[Any]]


class TaskRecords:
    """Task records in the shared store: one JSON value per (user, task)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def load(self, user: str, task_id: str) -> dict[str, Any] | None:
        text = await self.store.get(f"task:{user}:{task_id}")
        return json.loads(text) if text else None

    async def save(self, record: dict[str, Any]) -> None:
        record["updated"] = time.time()
        left = max(1.0, record["created"] + TTL_SECONDS - time.time())
        await self.store.put(f"task:{record['user']}:{record['task_id']}", json.dumps(record), left)


def opted_in(params: Any, ctx: Any) -> bool:
    """Did this request declare the extension in its client capabilities (2026-07-28)? The server then
    decides; we make a task for every task-capable tool."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    for meta in (getattr(ctx, "meta", None), getattr(params, "meta", None)):
        meta = meta.model_dump(by_alias=True) if hasattr(meta, "model_dump") else meta
        capabilities = (meta or {}).get(CLIENT_CAPABILITIES_META) or {}
        if isinstance(capabilities, dict) and TASKS in (capabilities.get("extensions") or {}):
            return True
    return False


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _run_ids(structured: dict[str, Any]) -> list[str]:
    """The unfinished runs an answer leaves to follow (one row, or a batch's rows)."""
    rows = structured.get("runs") if isinstance(structured.get("runs"), list) else [structured]
    return [r["run_id"] for r in rows if isinstance(r, dict) and r.get("run_id")
            and r.get("status") not in SETTLED]


class TasksExtension(Extension):
    identifier = TASKS

    def __init__(self) -> None:
        self.server: Any = None
        self.open_call: OpenCall | None = None

    def bind(self, server: Any, open_call: OpenCall) -> None:
        """The server and per-call opener (the extension is made before the server, as the SDK asks)."""
        self.server, self.open_call = server, open_call

    def methods(self) -> list[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [MethodBinding("tasks/get", TaskIdParams, self._get, protocol_versions=modern),
                MethodBinding("tasks/cancel", TaskIdParams, self._cancel, protocol_versions=modern)]

    # --- tools/call --------------------------------------------------------------------------------
    async def intercept_tool_call(self, params: CallToolRequestParams, ctx: Any, call_next: Any) -> Any:
        if params.name not in TASK_TOOLS or not opted_in(params, ctx):
            return await call_next(ctx)
        # The wait is the task's: the call itself only starts (or reads) and answers at once.
        params.arguments = {**(params.arguments or {}), "wait_seconds": 0}
        first = await call_next(ctx)
        call = await self._call(ctx, params)
        structured = first.structured_content if isinstance(first, CallToolResult) else None
        now = time.time()
        record: dict[str, Any] = {
            "task_id": secrets.token_urlsafe(24), "user": call.user_id, "tool": params.name, "created": now,
            "run_ids": [], "status": "working", "facts": {}, "result": None}
        run_ids = _run_ids(structured) if isinstance(structured, dict) and not first.is_error else []
        if run_ids:
            record["run_ids"] = run_ids
            record["facts"] = {k: structured[k] for k in ("idempotency_key", "reused", "reused_note", "model",
                                                           "estimated_usd") if k in structured}
            record["estimated_seconds"] = max((call.user_state.estimates.get(r) or 0) for r in run_ids) or None
        else:  # settled already, refused, or nothing to follow: the task holds the answer as it is
            record["status"], record["result"] = "completed", _dump(first)
        try:
            await self._records(call).save(record)
        except LedgerUnavailable as exc:  # the start is made: its own answer (run_id, key) beats no answer
            logger.warning("task for %s not kept, answered without one: %s", params.name, exc.message)
            return first
        return self._created(record)

    # --- tasks/* -----------------------------------------------------------------------------------
    async def _get(self, ctx: Any, params: TaskIdParams) -> dict[str, Any]:
        call, record = await self._load(ctx, params)
        record = await self._advance(ctx, call, record, wait_seconds=0)
        return self._detailed(record)

    async def _cancel(self, ctx: Any, params: TaskIdParams) -> dict[str, Any]:
        call, record = await self._load(ctx, params)
        if record["status"] == "working":
            record["status"] = "cancelled"
            record["status_message"] = _cancel_note(record)
            try:
                await self._records(call).save(record)
            except LedgerUnavailable as exc:
                raise MCPError(code=INTERNAL_ERROR, message=f"Task not cancelled, try again shortly: "
                               f"{exc.message}") from None
        return {}

    # --- helpers -------------------------------------------------------------------------------------
    async def _call(self, ctx: Any, params: Any = None) -> Any:
        assert self.open_call is not None and self.server is not None, "bind() first"
        return await self.open_call(Context(request_context=ctx, mcp_server=self.server, input_params=params))

    def _records(self, call: Any) -> TaskRecords:
        return TaskRecords(call.ledger.shared)

    async def _load(self, ctx: Any, params: TaskIdParams) -> tuple[Any, dict[str, Any]]:
        if not opted_in(params, ctx):  # the spec's -32021 for a client that did not declare the extension
            require_client_extension(ctx, TASKS)
        call = await self._call(ctx)
        try:
            record = await self._records(call).load(call.user_id, params.task_id)
        except LedgerUnavailable as exc:
            raise MCPError(code=INTERNAL_ERROR, message=f"Task not read, try again shortly: {exc.message}. "
                           "A run it follows goes on; get_run(run_id) reads it") from None
        if record is None:  # never made, expired, or another user's: the same answer for all three
            raise MCPError(code=INVALID_PARAMS, message="Failed to retrieve task: Task not found")
        return call, record

    async def _advance(self, ctx: Any, call: Any, record: dict[str, Any], *, wait_seconds: float) -> dict[str, Any]:
        """Read the task's runs (shared poll); once all have settled, keep get_run's answer as its result."""
        if record["status"] != "working":
            return record
        from ..errors import FloraError
        from .waiting import follow, status_line

        runs = await follow(call, record["run_ids"], wait_seconds, record.get("estimated_seconds"))
        done = [r for r in runs if isinstance(r, FloraError) or r.finished]
        if len(done) < len(runs):
            record["status_message"] = status_line(runs[0]) if len(runs) == 1 else \
                f"{len(done)}/{len(runs)} runs finished"
            return record  # progress is not saved: every read is as fresh as the shared poll
        run_id: Any = record["run_ids"][0] if len(record["run_ids"]) == 1 and record["tool"] != "start_generations" \
            else record["run_ids"]
        final = await self.server.call_tool("get_run", {"run_id": run_id, "wait_seconds": 0},
                                            Context(request_context=ctx, mcp_server=self.server))
        result = _dump(final)
        if isinstance(result.get("structuredContent"), dict):
            result["structuredContent"] = result["structuredContent"] | record["facts"]
        record["status"], record["result"], record["status_message"] = "completed", result, None
        try:
            await self._records(call).save(record)
        except LedgerUnavailable as exc:  # the answer stands; the next tasks/get rebuilds it
            logger.warning("finished task not kept: %s", exc.message)
        return record

    def _task(self, record: dict[str, Any]) -> dict[str, Any]:
        task = {"taskId": record["task_id"], "status": record["status"], "createdAt": _iso(record["created"]),
                "lastUpdatedAt": _iso(record.get("updated", record["created"])), "ttlMs": TTL_SECONDS * 1000,
                "pollIntervalMs": int(interval_for(record.get("estimated_seconds"), 1) * 1000)}
        if record.get("status_message"):
            task["statusMessage"] = record["status_message"]
        return task

    def _created(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"resultType": "task", **self._task(record)}

    def _detailed(self, record: dict[str, Any]) -> dict[str, Any]:
        task = self._task(record) | {"resultType": "complete"}
        if record["status"] == "completed":
            task["result"] = record["result"]
        return task


def _dump(result: Any) -> dict[str, Any]:
    if isinstance(result, CallToolResult):
        return result.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dict(result or {})


def _cancel_note(record: dict[str, Any]) -> str:
    runs = ", ".join(record["run_ids"])
    return (f"Stopped waiting. FLORA cannot cancel a run: {runs} goes on and is charged; its outputs will appear "
            f"in the project. Follow it with get_run(run_id={record['run_ids'][0] if len(record['run_ids']) == 1 else record['run_ids']}).")
